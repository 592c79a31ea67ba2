package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/systemd/statefile"
)

// lockDir keeps a second npllmd (or a test) from writing the same journal;
// the kernel drops the lock when the process dies, kill -9 included.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal lock: %w", err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("journal %s is in use by another process: %w", dir, err)
		}
	}
}

// load scans the segment files in seq order: a torn tail of the last one
// (a write cut by a power loss) is cut off, a damaged earlier segment is
// moved aside; whatever is good is kept and the journal starts.
func (j *Journal) load() error {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal directory: %w", err)
	}
	var firsts []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || len(name) != 16 {
			continue
		}
		if first, err := strconv.ParseUint(name, 16, 64); err == nil && segmentName(first) == e.Name() {
			firsts = append(firsts, first)
		}
	}
	slices.Sort(firsts)
	for i, first := range firsts {
		path := filepath.Join(j.dir, segmentName(first))
		last := i == len(firsts)-1
		var prevMax uint64
		if len(j.segs) > 0 {
			prevMax = j.segs[len(j.segs)-1].maxTime
		}
		s, err := scanSegment(path, first, prevMax, j.kindID)
		if s == nil {
			if st, serr := os.Stat(path); last && serr == nil && st.Size() < segHeaderLen {
				// Created but its header never reached the disk.
				j.log.Warn("journal: removed a segment cut short at creation", "path", path, "bytes", st.Size())
				j.c.tornCuts.Add(1)
				os.Remove(path)
				continue
			}
			j.moveAside(path, err)
			continue
		}
		if len(j.segs) > 0 && s.first < j.segs[len(j.segs)-1].next() {
			s.f.Close()
			j.moveAside(path, fmt.Errorf("seqs from %d overlap the previous segment", s.first))
			continue
		}
		if err != nil && !last {
			s.f.Close()
			j.moveAside(path, err)
			continue
		}
		if err != nil {
			st, _ := s.f.Stat()
			if terr := s.f.Truncate(s.size); terr != nil {
				s.f.Close()
				j.moveAside(path, errors.Join(err, terr))
				continue
			}
			j.c.tornCuts.Add(1)
			j.log.Warn("journal: torn tail cut", "path", path, "offset", s.size, "bytes_cut", st.Size()-s.size, "err", err)
		}
		j.segs = append(j.segs, s)
		j.total += s.n()
	}
	for _, s := range j.segs {
		s.seal()
	}
	if n := len(j.segs); n > 0 {
		last := j.segs[n-1]
		j.lastSeq.Store(last.next() - 1)
		if last.n() < j.opts.SegmentEvents {
			last.unseal()
			j.active = last
		}
	}
	return nil
}

// moveAside renames damaged state with a timestamp, so it can be looked at
// and never stops the daemon.
func (j *Journal) moveAside(path string, why error) {
	j.c.movedAside.Add(1)
	attrs := statefile.Attrs(path, why)
	to, err := statefile.MoveAside(path, "damaged")
	if err != nil {
		j.log.Error("journal: cannot move a damaged file aside", append(attrs, "err", err)...)
		return
	}
	j.log.Error("journal: damaged file moved aside; starting with the rest", append(attrs, "moved_to", to)...)
}

// migrate takes the events and the next seq of a bbolt journal.db of
// earlier versions (when no segments exist yet), then moves the file
// aside. A file bbolt cannot read is moved aside as damaged.
func (j *Journal) migrate(path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	if len(j.segs) == 0 {
		n, err := j.importBolt(path)
		if err != nil {
			j.moveAside(path, fmt.Errorf("bbolt journal unreadable after %d events: %w", n, err))
			return
		}
		j.log.Info("journal: migrated the bbolt journal", "events", n, "next_seq", j.readFloor())
	}
	aside, err := statefile.MoveAside(path, "migrated")
	if err != nil {
		j.log.Warn("journal: cannot move the old bbolt journal aside", "path", path, "err", err)
		return
	}
	j.log.Warn("journal: the old bbolt journal was moved aside; delete it when no longer wanted",
		"path", path, "moved_to", aside)
}

func (j *Journal) importBolt(path string) (n int, err error) {
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some damaged pages
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var next uint64
	err = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte("meta")); meta != nil {
			if v := meta.Get([]byte("next_seq")); len(v) == 8 {
				next = uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
					uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7])
			}
		}
		b := tx.Bucket([]byte("events"))
		if b == nil {
			return nil
		}
		batch := make([]sensors.Event, 0, 4096)
		flush := func() error {
			_, err := j.write(batch, time.Now())
			n += len(batch)
			batch = batch[:0]
			return err
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			ev, err := decode(v)
			if err != nil {
				return err
			}
			if batch = append(batch, ev); len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	if err == nil {
		err = errors.Join(j.fsync(false), j.writeFloor(max(next, j.lastSeq.Load()+1)))
	}
	return n, err
}
