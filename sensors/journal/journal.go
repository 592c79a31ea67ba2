// Package journal is npllmd's persistent event journal.
//
// Every event gets a seq that is strictly increasing across restarts. The
// store is bbolt (one file, copy-on-write B+tree, fsync per transaction:
// after a crash the file holds exactly the last committed transaction). To
// keep fsyncs off the event path, Append only buffers; a flusher commits
// every FlushInterval or FlushEvents events, whichever comes first, and only
// then are the events visible to GetEvents and subscribers. So nothing a
// reader has seen can be lost by kill -9, and a seq is never shown twice:
// buffered events that die with the process were never shown, and the next
// seq comes from the committed meta record.
package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/npllm/npllm/sensors"
)

var (
	bucketEvents = []byte("events")
	bucketMeta   = []byte("meta")
	keyNextSeq   = []byte("next_seq")
)

// Options bound the journal.
type Options struct {
	FlushInterval time.Duration // default 20 ms
	FlushEvents   int           // default 1024
	MaxEvents     int           // default 500,000; oldest are pruned
	MaxAge        time.Duration // default 7 days
	// OnCommit receives the events of each commit, in seq order.
	OnCommit func([]sensors.Event)
}

// Journal is the event store.
type Journal struct {
	db   *bolt.DB
	opts Options

	syncMu  sync.Mutex // one commit at a time, in seq order
	mu      sync.Mutex
	nextSeq uint64
	pending []sensors.Event
	lastSeq uint64 // last committed
	wake    chan struct{}
	done    chan struct{}
	closed  bool
	commits uint64
}

// Open opens (or creates) dir/journal.db.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 20 * time.Millisecond
	}
	if opts.FlushEvents <= 0 {
		opts.FlushEvents = 1024
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 500_000
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "journal.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", dir, err)
	}
	j := &Journal{db: db, opts: opts, nextSeq: 1, wake: make(chan struct{}, 1), done: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketEvents); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyNextSeq); len(v) == 8 {
			j.nextSeq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise journal: %w", err)
	}
	j.lastSeq = j.nextSeq - 1
	go j.flusher()
	return j, nil
}

// Append assigns the event its seq and time and buffers it for the next commit.
func (j *Journal) Append(ev sensors.Event) {
	j.mu.Lock()
	ev.Seq = j.nextSeq
	j.nextSeq++
	if ev.TimeNS == 0 {
		ev.TimeNS = uint64(time.Now().UnixNano())
	}
	j.pending = append(j.pending, ev)
	full := len(j.pending) >= j.opts.FlushEvents
	j.mu.Unlock()
	if full {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
}

func (j *Journal) flusher() {
	defer close(j.done)
	t := time.NewTicker(j.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-j.wake:
		}
		j.mu.Lock()
		closed := j.closed
		j.mu.Unlock()
		if err := j.Sync(); err != nil && !closed {
			fmt.Fprintln(os.Stderr, "journal commit:", err)
		}
		if closed {
			return
		}
	}
}

// Sync commits buffered events now.
func (j *Journal) Sync() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	batch := j.pending
	j.pending = nil
	next := j.nextSeq
	j.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	j.commits++
	prune := j.commits%64 == 0
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		b.FillPercent = 1.0 // append-only keys
		for i := range batch {
			val, err := encode(&batch[i])
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(batch[i].Seq), val); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keyNextSeq, seqKey(next)); err != nil {
			return err
		}
		if prune {
			return j.prune(b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.lastSeq = batch[len(batch)-1].Seq
	j.mu.Unlock()
	if j.opts.OnCommit != nil {
		j.opts.OnCommit(batch)
	}
	return nil
}

// prune drops events beyond MaxEvents or older than MaxAge.
func (j *Journal) prune(b *bolt.Bucket) error {
	excess := b.Stats().KeyN - j.opts.MaxEvents
	cutoff := uint64(time.Now().Add(-j.opts.MaxAge).UnixNano())
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if excess <= 0 {
			var head struct {
				T uint64 `json:"t"`
			}
			if json.Unmarshal(v, &head) == nil && head.T >= cutoff {
				break
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
		excess--
	}
	return nil
}

// LastSeq is the seq of the last committed event (0 if none ever).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastSeq
}

// Filter selects events.
type Filter struct {
	Kinds   []string // any of these; empty = all
	PID     *uint32
	UID     *uint32
	SinceNS uint64
}

func (f *Filter) match(ev *sensors.Event) bool {
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, ev.Kind) {
		return false
	}
	if f.PID != nil && ev.PID != *f.PID {
		return false
	}
	if f.UID != nil && (!ev.HasUID || ev.UID != *f.UID) {
		return false
	}
	return ev.TimeNS >= f.SinceNS
}

// Query returns up to max committed events after afterSeq that match f,
// and the seq to pass as afterSeq next time: the last event returned when
// max cut the answer short, otherwise the last committed seq.
func (j *Journal) Query(afterSeq uint64, max int, f Filter) (uint64, []sensors.Event, error) {
	if err := j.Sync(); err != nil {
		return 0, nil, err
	}
	last := j.LastSeq()
	var out []sensors.Event
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(afterSeq + 1)); k != nil; k, v = c.Next() {
			ev, err := decode(v)
			if err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if ev.Seq > last {
				break
			}
			if !f.match(&ev) {
				continue
			}
			if len(out) == max {
				last = out[len(out)-1].Seq
				break
			}
			out = append(out, ev)
		}
		return nil
	})
	return last, out, err
}

// Close commits what is buffered and closes the store.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	<-j.done
	err := j.Sync()
	return errors.Join(err, j.db.Close())
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// Stored form: JSON with each field tagged by its D-Bus type, so values
// come back with the type they went in with.
type stored struct {
	Seq    uint64                `json:"s"`
	T      uint64                `json:"t"`
	Kind   string                `json:"k"`
	PID    uint32                `json:"p,omitempty"`
	UID    *uint32               `json:"u,omitempty"`
	Fields map[string]typedValue `json:"f"`
}

type typedValue struct {
	Sig string          `json:"g"`
	V   json.RawMessage `json:"v"`
}

func encode(ev *sensors.Event) ([]byte, error) {
	s := stored{Seq: ev.Seq, T: ev.TimeNS, Kind: ev.Kind, PID: ev.PID, Fields: make(map[string]typedValue, len(ev.Fields))}
	if ev.HasUID {
		uid := ev.UID
		s.UID = &uid
	}
	for k, v := range ev.Fields {
		var sig string
		switch v.(type) {
		case uint32:
			sig = "u"
		case uint64:
			sig = "t"
		case int32:
			sig = "i"
		case int64:
			sig = "x"
		case string:
			sig = "s"
		case bool:
			sig = "b"
		case []string:
			sig = "as"
		default:
			return nil, fmt.Errorf("field %s of %s has unsupported type %T", k, ev.Kind, v)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		s.Fields[k] = typedValue{sig, raw}
	}
	return json.Marshal(s)
}

func decode(data []byte) (sensors.Event, error) {
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return sensors.Event{}, err
	}
	ev := sensors.Event{Seq: s.Seq, TimeNS: s.T, Kind: s.Kind, PID: s.PID, Fields: make(map[string]any, len(s.Fields))}
	if s.UID != nil {
		ev.UID, ev.HasUID = *s.UID, true
	}
	for k, tv := range s.Fields {
		var err error
		dec := json.NewDecoder(bytes.NewReader(tv.V))
		switch tv.Sig {
		case "u":
			var v uint32
			err = dec.Decode(&v)
			ev.Fields[k] = v
		case "t":
			var v uint64
			err = dec.Decode(&v)
			ev.Fields[k] = v
		case "i":
			var v int32
			err = dec.Decode(&v)
			ev.Fields[k] = v
		case "x":
			var v int64
			err = dec.Decode(&v)
			ev.Fields[k] = v
		case "s":
			var v string
			err = dec.Decode(&v)
			ev.Fields[k] = v
		case "b":
			var v bool
			err = dec.Decode(&v)
			ev.Fields[k] = v
		case "as":
			var v []string
			err = dec.Decode(&v)
			ev.Fields[k] = v
		default:
			err = fmt.Errorf("unknown type %q", tv.Sig)
		}
		if err != nil {
			return sensors.Event{}, fmt.Errorf("field %s: %w", k, err)
		}
	}
	return ev, nil
}
