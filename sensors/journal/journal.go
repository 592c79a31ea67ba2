// Package journal is npllmd's persistent event journal.
//
// Every event gets a seq that is strictly increasing across restarts, and
// is appended to segment files of our own (segment.go), the journald and
// auditd shape: an always-on log is written at its tail, read mostly near
// its tail and pruned at its head.
//
// Life of an event: Append buffers it; a flusher writes each batch with one
// write(2) every FlushInterval (at once for urgent kinds), and only then is
// it visible to Query and handed to OnCommit. The kernel holds what write
// returned, so kill -9 loses nothing a reader saw. fdatasync runs every
// SyncInterval and at once after an urgent event, so a power loss loses at
// most the events of the last SyncInterval (none before an urgent event
// that was written). Seqs are never reused: they are handed out only below
// a floor persisted (fsynced) ahead of them, and a restart continues above
// it, so a crash leaves a gap instead of a reuse.
//
// When the disk refuses a write the batch is kept and retried with backoff
// for RetryFor; OnCommit still gets it at once (alerts do not depend on the
// disk); after RetryFor the waiting events are dropped and counted, and
// Health says why.
package journal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/npllm/npllm/sensors"
)

// Options bound the journal.
type Options struct {
	FlushInterval time.Duration // group commit (write(2)); default 20 ms
	FlushEvents   int           // commit at once when this many wait; default 1024
	// SyncInterval is how often written events are fsynced (default 5 s):
	// what a power loss can lose. Urgent events are fsynced at once.
	SyncInterval time.Duration
	MaxEvents    int           // default 500,000; oldest segments are deleted
	MaxAge       time.Duration // default 7 days
	// MaxPending bounds the events waiting for a commit; Append refuses
	// beyond it (default 65,536). The same bound holds for events waiting
	// for a disk that refused them.
	MaxPending int
	// RetryFor is how long events the disk refused are retried before they
	// are dropped and counted (default 30 s).
	RetryFor time.Duration
	// SegmentEvents is the size of a segment in events (default MaxEvents/16,
	// at most 32,768): the granularity of pruning.
	SegmentEvents int
	Log           *slog.Logger
	// OnCommit receives the events of each commit, in seq order.
	OnCommit func([]sensors.Event)
}

// Journal is the event store.
type Journal struct {
	dir  string // <state>/journal
	lock *os.File
	opts Options
	log  *slog.Logger

	mu            sync.Mutex // the pending side
	nextSeq       uint64
	pending       []sensors.Event
	urgentPending bool
	kicked        bool      // a batch is complete: commit without gathering
	pendingSince  time.Time // oldest uncommitted event: Healthy's measure
	closed        bool
	writeErr      string // why the disk refuses writes (empty when fine)
	syncErr       string
	wake          chan struct{}
	done          chan struct{}

	commitMu  sync.Mutex // the writer's state below, one commit at a time
	active    *segment
	retry     []sensors.Event // refused by the disk, delivered, to be written
	retryFrom time.Time
	nextTry   time.Time
	backoff   time.Duration
	lastErr   error
	dirty     bool // written since the last fdatasync
	dirtyDir  bool // a segment created since the last fsync of the directory
	syncDue   time.Time
	reserved  uint64 // seqs below it may be written (the persisted floor)
	frames    []byte

	idx     sync.RWMutex // segs, their indexes and kindIDs; a Query holds RLock
	kindIDs map[string]uint16
	segs    []*segment
	total   int
	lastSeq atomic.Uint64 // last written

	c counters
}

type counters struct {
	written, droppedDisk, droppedEncode, writeErrors, syncs, urgentSyncs, syncErrors, tornCuts, movedAside, pruned atomic.Uint64
}

// Open opens (or creates) the journal in dir/journal, cutting a torn tail,
// moving damaged segments aside and migrating a bbolt journal.db of
// earlier versions.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 20 * time.Millisecond
	}
	if opts.FlushEvents <= 0 {
		opts.FlushEvents = 1024
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 5 * time.Second
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 500_000
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 65536
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 30 * time.Second
	}
	if opts.SegmentEvents <= 0 {
		opts.SegmentEvents = opts.MaxEvents / 16
	}
	opts.SegmentEvents = min(max(opts.SegmentEvents, 1), maxSegEvents)
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	j := &Journal{dir: filepath.Join(dir, "journal"), opts: opts, log: opts.Log.With("component", "journal"),
		wake: make(chan struct{}, 1), done: make(chan struct{}), kindIDs: map[string]uint16{}}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	lock, err := lockDir(j.dir)
	if err != nil {
		return nil, err
	}
	j.lock = lock
	if err := j.load(); err != nil {
		lock.Close()
		return nil, err
	}
	j.migrate(filepath.Join(dir, "journal.db"))
	j.nextSeq = max(j.lastSeq.Load()+1, j.readFloor())
	if err := j.reserve(j.nextSeq); err != nil {
		// A full disk must not keep the daemon down: writes retry later.
		j.log.Warn("cannot persist the seq floor", "err", err)
	}
	j.prune(time.Now())
	go j.flusher()
	return j, nil
}

// Append assigns the event its seq and time and buffers it for the next
// commit. It returns false, keeping nothing, when MaxPending events already
// wait (the disk is not keeping up): the caller counts the drop.
func (j *Journal) Append(ev sensors.Event) bool {
	urg := urgent(&ev)
	j.mu.Lock()
	if len(j.pending) >= j.opts.MaxPending {
		j.mu.Unlock()
		return false
	}
	ev.Seq = j.nextSeq
	j.nextSeq++
	if ev.TimeNS == 0 {
		ev.TimeNS = uint64(time.Now().UnixNano())
	}
	j.pending = append(j.pending, ev)
	n := len(j.pending)
	if n == 1 {
		j.pendingSince = time.Now()
	}
	j.urgentPending = j.urgentPending || urg
	j.mu.Unlock()
	if n == 1 || n >= j.opts.FlushEvents || urg {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Kick says a batch is complete (the rings were drained together): what is
// pending is written now instead of after FlushInterval, in the same
// burst of work as the reading (each wake-up of an idle daemon costs more
// than the write).
func (j *Journal) Kick() {
	j.mu.Lock()
	if len(j.pending) == 0 {
		j.mu.Unlock()
		return
	}
	j.kicked = true
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// flusher sleeps until Append signals the first pending event (an idle
// journal costs no wake-ups beyond a due fsync or retry), lets
// FlushInterval gather a batch unless an urgent event waits, commits.
func (j *Journal) flusher() {
	defer close(j.done)
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	due := time.NewTimer(time.Hour)
	due.Stop()
	for {
		if at := j.nextDue(); !at.IsZero() {
			due.Reset(time.Until(at))
		}
		select {
		case <-j.wake:
			due.Stop()
			j.mu.Lock()
			now := j.urgentPending || j.kicked || j.closed
			j.mu.Unlock()
			if !now {
				gather.Reset(j.opts.FlushInterval)
				select {
				case <-gather.C:
				case <-j.wake: // the batch is full or complete, an urgent event or Close
					gather.Stop()
				}
			}
		case <-due.C:
		}
		j.mu.Lock()
		closed := j.closed
		j.mu.Unlock()
		if closed {
			return
		}
		j.commit()
	}
}

// Sync writes buffered events now (visible to Query when it returns); they
// are fsynced at the next sync point.
func (j *Journal) Sync() error {
	j.commit()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.writeErr != "" {
		return errors.New(j.writeErr)
	}
	return nil
}

// Healthy reports an error when events have waited far longer than a
// commit takes (the flusher is stuck or the disk hangs): the watchdog's
// question. A disk that refuses writes is not a stuck pipeline (events
// still reach subscribers); Health reports that.
func (j *Journal) Healthy() error {
	j.mu.Lock()
	since := j.pendingSince
	j.mu.Unlock()
	if !since.IsZero() {
		if waited := time.Since(since); waited > 10*time.Second {
			return fmt.Errorf("journal: events waiting %s for a commit", waited.Round(time.Second))
		}
	}
	return nil
}

// Health says whether the journal stores what it is given, and if not why.
func (j *Journal) Health() (ok bool, reason string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.writeErr != "":
		return false, j.writeErr
	case j.syncErr != "":
		return false, j.syncErr
	}
	return true, ""
}

// Counters of the journal, for the Sensors property.
func (j *Journal) Counters() map[string]uint64 {
	j.idx.RLock()
	segs, total := len(j.segs), j.total
	j.idx.RUnlock()
	return map[string]uint64{
		"journal_events": uint64(total), "journal_segments": uint64(segs),
		"journal_written": j.c.written.Load(), "journal_dropped_disk": j.c.droppedDisk.Load(),
		"journal_dropped_encode": j.c.droppedEncode.Load(), "journal_write_errors": j.c.writeErrors.Load(),
		"journal_syncs": j.c.syncs.Load(), "journal_urgent_syncs": j.c.urgentSyncs.Load(),
		"journal_sync_errors": j.c.syncErrors.Load(), "journal_torn_cuts": j.c.tornCuts.Load(),
		"journal_moved_aside": j.c.movedAside.Load(), "journal_pruned_segments": j.c.pruned.Load(),
	}
}

// LastSeq is the seq of the last written event (0 if none ever).
func (j *Journal) LastSeq() uint64 { return j.lastSeq.Load() }

// Close writes and fsyncs what is buffered, persists the exact next seq
// and closes the files.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	// The flusher waits at one of its receives; keep signalling until it ends.
	for {
		select {
		case j.wake <- struct{}{}:
			continue
		case <-j.done:
		}
		break
	}
	j.commitMu.Lock()
	j.nextTry = time.Time{} // one last try for events the disk refused
	j.commitMu.Unlock()
	j.commit()
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	var errs []error
	if n := len(j.retry); n > 0 {
		j.c.droppedDisk.Add(uint64(n))
		errs = append(errs, fmt.Errorf("journal: %d events the disk refused are lost at close", n))
	}
	errs = append(errs, j.fsync(false))
	j.mu.Lock()
	next := j.nextSeq
	j.mu.Unlock()
	errs = append(errs, j.writeFloor(next))
	j.idx.Lock()
	for _, s := range j.segs {
		errs = append(errs, s.f.Close())
	}
	j.segs = nil
	j.idx.Unlock()
	errs = append(errs, j.lock.Close())
	return errors.Join(errs...)
}
