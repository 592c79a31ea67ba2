package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/sensors"
)

// reserveChunk is how far ahead of the seqs in use the persisted floor
// runs: a crash skips at most this many seqs, and the floor file is
// rewritten (and fsynced) once per this many events.
const reserveChunk = 1 << 20

const otherKinds = 1<<16 - 1

// commit takes the pending batch and writes it (or queues it for a retry),
// hands it to OnCommit, fsyncs when due and prunes.
func (j *Journal) commit() {
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	j.mu.Lock()
	batch := j.pending
	j.pending = nil
	j.pendingSince = time.Time{}
	urg := j.urgentPending
	j.urgentPending = false
	j.kicked = false
	j.mu.Unlock()
	now := time.Now()
	j.store(batch, now)
	if (j.dirty || j.dirtyDir) && (urg || !now.Before(j.syncDue)) {
		j.fsync(urg)
	}
	j.prune(now)
}

// store writes the events refused earlier and batch, in seq order. The
// batch goes to OnCommit whether the disk took it or not: alerts do not
// wait for the disk, and they get every event once, in seq order.
func (j *Journal) store(batch []sensors.Event, now time.Time) {
	queue := batch
	if len(j.retry) > 0 {
		queue = append(j.retry, batch...)
	}
	if len(queue) == 0 {
		return
	}
	if len(j.retry) == 0 {
		j.retryFrom = now // the oldest event waiting for the disk arrived now
	}
	if j.backoff > 0 && now.Before(j.nextTry) {
		j.retry = queue
		j.deliver(batch)
		j.bound(now)
		return
	}
	n, err := j.write(queue, now)
	j.deliver(batch)
	if err != nil {
		j.retry = append([]sensors.Event(nil), queue[n:]...)
		j.failed(err, now)
		j.bound(now)
		return
	}
	j.retry = nil
	if j.backoff > 0 {
		j.backoff, j.nextTry = 0, time.Time{}
		j.log.Info("journal writes resumed", "dropped_disk", j.c.droppedDisk.Load())
		j.setWriteErr("")
	}
}

func (j *Journal) deliver(batch []sensors.Event) {
	if j.opts.OnCommit != nil && len(batch) > 0 {
		j.opts.OnCommit(batch)
	}
}

func (j *Journal) failed(err error, now time.Time) {
	j.c.writeErrors.Add(1)
	if j.backoff == 0 {
		j.log.Warn("journal write failed; keeping the events and retrying", "dir", j.dir, "err", err)
	}
	j.backoff = min(max(2*j.backoff, 100*time.Millisecond), 5*time.Second)
	j.nextTry = now.Add(j.backoff)
	j.lastErr = err
	j.degraded()
}

// degraded states Health's reason from the writer's state.
func (j *Journal) degraded() {
	j.setWriteErr(fmt.Sprintf("journal: cannot write: %v (%d events waiting for the disk, %d dropped)",
		j.lastErr, len(j.retry), j.c.droppedDisk.Load()))
}

// bound drops the events the disk refused beyond MaxPending, or all of
// them once the disk has refused for RetryFor, counting every one.
func (j *Journal) bound(now time.Time) {
	drop := len(j.retry) - j.opts.MaxPending
	if now.Sub(j.retryFrom) >= j.opts.RetryFor {
		drop = len(j.retry)
	}
	if drop <= 0 {
		return
	}
	j.c.droppedDisk.Add(uint64(drop))
	j.log.Warn("journal gave up on events the disk refused", "dropped", drop, "dropped_disk", j.c.droppedDisk.Load())
	j.retry = j.retry[drop:]
	if len(j.retry) == 0 {
		j.retry = nil
	}
	j.degraded()
}

func (j *Journal) setWriteErr(s string) {
	j.mu.Lock()
	j.writeErr = s
	j.mu.Unlock()
}

// write appends events to segments, one pwrite per run of contiguous seqs
// that fits the active segment, and indexes them once written. It returns
// how many events it wrote (or skipped as unencodable).
func (j *Journal) write(evs []sensors.Event, now time.Time) (int, error) {
	done := 0
	for done < len(evs) {
		s, err := j.segmentFor(evs[done].Seq, now)
		if err != nil {
			return done, err
		}
		end := done + 1
		for end < len(evs) && end-done < j.opts.SegmentEvents-s.n() && evs[end].Seq == evs[end-1].Seq+1 {
			end++
		}
		if err := j.reserve(evs[end-1].Seq); err != nil {
			return done, err
		}
		j.frames = j.frames[:0]
		skip := false
		for k := done; k < end; k++ {
			start := len(j.frames)
			b, err := appendEncoded(append(j.frames, make([]byte, frameHeaderLen)...), &evs[k])
			if err == nil && len(b)-start-frameHeaderLen > maxRecord {
				err = fmt.Errorf("record of %d bytes exceeds %d", len(b)-start-frameHeaderLen, maxRecord)
			}
			if err == nil && start > 0 && s.size+int64(len(b)) > maxSegmentSize {
				end = k // the segment is full: the rest goes to the next one
				break
			}
			if err != nil {
				if j.c.droppedEncode.Add(1) == 1 {
					j.log.Error("event cannot be encoded; dropped", "kind", evs[k].Kind, "err", err)
				}
				end, skip = k, true
				break
			}
			p := b[start+frameHeaderLen:]
			binary.LittleEndian.PutUint32(b[start:], uint32(len(p)))
			binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(p, castagnoli))
			j.frames = b
		}
		if end > done {
			if err := s.appendFrames(j.frames); err != nil {
				return done, err
			}
			j.index(s, evs[done:end])
			j.lastSeq.Store(evs[end-1].Seq)
			j.c.written.Add(uint64(end - done))
			j.markDirty(now)
		}
		done = end
		if skip {
			done++
		}
	}
	return done, nil
}

// index makes written records visible to Query.
func (j *Journal) index(s *segment, evs []sensors.Event) {
	j.idx.Lock()
	defer j.idx.Unlock()
	off := s.size
	for i := range evs {
		ev := &evs[i]
		h := header{seq: ev.Seq, timeNS: ev.TimeNS, pid: ev.PID, uid: ev.UID, hasUID: ev.HasUID}
		s.add(&h, j.kindID([]byte(ev.Kind)), off)
		off += frameHeaderLen + int64(binary.LittleEndian.Uint32(j.frames[off-s.size:]))
	}
	s.size = off
	j.total += len(evs)
}

func (j *Journal) markDirty(now time.Time) {
	if !j.dirty && !j.dirtyDir {
		j.syncDue = now.Add(j.opts.SyncInterval)
	}
	j.dirty = true
}

// segmentFor returns the segment the record with this seq goes to,
// starting a new one when the active one is full, old, or the seq does
// not follow its last.
func (j *Journal) segmentFor(seq uint64, now time.Time) (*segment, error) {
	s := j.active
	if s != nil && s.next() == seq && s.n() < j.opts.SegmentEvents && s.size < maxSegmentSize &&
		now.Sub(s.born) < j.opts.MaxAge/16 {
		return s, nil
	}
	var prevMax uint64
	if s != nil {
		// The rolled segment is no longer covered by the periodic sync.
		j.fsync(false)
		j.idx.Lock()
		s.seal()
		if s.n() == 0 {
			j.segs = j.segs[:len(j.segs)-1]
			s.f.Close()
			os.Remove(s.path)
		}
		j.idx.Unlock()
		j.active = nil
	}
	j.idx.RLock()
	if len(j.segs) > 0 {
		prevMax = j.segs[len(j.segs)-1].maxTime
	}
	j.idx.RUnlock()
	ns, err := createSegment(j.dir, seq, prevMax)
	if err != nil {
		return nil, err
	}
	j.idx.Lock()
	j.segs = append(j.segs, ns)
	j.idx.Unlock()
	j.active = ns
	if !j.dirty && !j.dirtyDir {
		j.syncDue = now.Add(j.opts.SyncInterval)
	}
	j.dirtyDir = true
	return ns, nil
}

// fsync makes written events durable; a failure degrades Health until a
// later sync succeeds.
func (j *Journal) fsync(urg bool) error {
	if !j.dirty && !j.dirtyDir {
		return nil
	}
	var err error
	if j.dirty && j.active != nil {
		err = unix.Fdatasync(int(j.active.f.Fd()))
	}
	if j.dirtyDir {
		err = errors.Join(err, syncDir(j.dir))
	}
	j.c.syncs.Add(1)
	if urg {
		j.c.urgentSyncs.Add(1)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.c.syncErrors.Add(1)
		if j.syncErr == "" {
			j.log.Error("journal fsync failed: events written since the last sync may be lost on power loss", "err", err)
		}
		j.syncErr = fmt.Sprintf("journal: fsync failed: %v", err)
		return err
	}
	j.dirty, j.dirtyDir, j.syncErr = false, false, ""
	return nil
}

// prune deletes whole segments from the head: beyond MaxEvents, or all of
// whose events are older than MaxAge. Its cost does not grow with the
// journal.
func (j *Journal) prune(now time.Time) {
	cutoff := uint64(now.Add(-j.opts.MaxAge).UnixNano())
	var gone []*segment
	j.idx.Lock()
	for len(j.segs) > 1 && (j.total-j.segs[0].n() >= j.opts.MaxEvents || j.segs[0].maxTime < cutoff) {
		gone = append(gone, j.segs[0])
		j.total -= j.segs[0].n()
		j.segs = j.segs[1:]
	}
	j.idx.Unlock()
	// Unlinking a few MiB takes the file system a while: not under the
	// index lock that queries wait for.
	for _, s := range gone {
		s.f.Close()
		if err := os.Remove(s.path); err != nil {
			j.log.Warn("journal prune", "err", err)
		}
		j.c.pruned.Add(1)
	}
}

// kindID numbers kinds journal-wide (the writer adds under idx.Lock or
// before any reader exists).
func (j *Journal) kindID(kind []byte) uint16 {
	if id, ok := j.kindIDs[string(kind)]; ok {
		return id
	}
	if len(j.kindIDs) >= otherKinds {
		// Past 65,535 distinct kinds (sensors define a few dozen) the rest
		// share one posting list; Query still checks each record's kind.
		return otherKinds
	}
	id := uint16(len(j.kindIDs))
	j.kindIDs[string(kind)] = id
	return id
}

// reserve makes sure seq is below the persisted floor, renewing the floor
// half a chunk ahead so that one failed renewal does not stop writes.
func (j *Journal) reserve(seq uint64) error {
	if seq+reserveChunk/2 < j.reserved {
		return nil
	}
	err := j.writeFloor(seq + reserveChunk)
	if err == nil {
		j.reserved = seq + reserveChunk
		return nil
	}
	if seq < j.reserved {
		return nil
	}
	return fmt.Errorf("persist the seq floor: %w", err)
}

func (j *Journal) floorPath() string { return filepath.Join(j.dir, "seq.floor") }

// writeFloor persists v (seqs below it may be in use) atomically.
func (j *Journal) writeFloor(v uint64) error {
	b := binary.LittleEndian.AppendUint64(nil, v)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := j.floorPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, j.floorPath())
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(j.dir)
}

// readFloor returns the persisted floor (0 if none); a damaged one is
// moved aside.
func (j *Journal) readFloor() uint64 {
	b, err := os.ReadFile(j.floorPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		j.moveAside(j.floorPath(), fmt.Errorf("seq floor unreadable (%d bytes, %v)", len(b), err))
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// nextDue is when the flusher must wake without new events: a due fsync
// or retry (zero: nothing due).
func (j *Journal) nextDue() time.Time {
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	var at time.Time
	if j.dirty || j.dirtyDir {
		at = j.syncDue
	}
	if len(j.retry) > 0 && (at.IsZero() || j.nextTry.Before(at)) {
		at = j.nextTry
	}
	return at
}
