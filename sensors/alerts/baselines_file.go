package alerts

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/npllm/npllm/systemd/statefile"
)

// baselinesVersion 2: keyed by (uid, program). Version 1 was a bare JSON
// array keyed by program only; its entries cannot be given to a user after
// the fact (any user may have taught them), so such a file is moved aside.
const baselinesVersion = 2

type baselinesFile struct {
	Version   int         `json:"version"`
	Baselines []*Baseline `json:"baselines"`
}

// OpenBaselines loads path. A missing file is an empty set; a file that
// cannot be read or trusted (damaged, truncated, an older format) is
// renamed aside with a timestamp, logged with msgid.StateMovedAside, and
// learning starts afresh: damaged state never stops the daemon.
func OpenBaselines(path string, log *slog.Logger) *Baselines {
	b := newBaselines(path, log)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b
	}
	if err == nil {
		var list []*Baseline
		if list, err = decodeBaselines(data); err == nil {
			// Most recently seen first, so each user's list is in LRU order.
			slices.SortStableFunc(list, func(x, y *Baseline) int { return cmp.Compare(y.LastSeenNS, x.LastSeenNS) })
			for _, bl := range list {
				b.add(bl, false)
			}
			return b
		}
	}
	b.moveAside(err)
	return b
}

var errOldBaselines = errors.New("baselines of version 1, keyed by program only")

func decodeBaselines(data []byte) ([]*Baseline, error) {
	if d := bytes.TrimSpace(data); len(d) > 0 && d[0] == '[' {
		var v1 []*Baseline
		if err := json.Unmarshal(d, &v1); err != nil {
			return nil, err
		}
		for i, bl := range v1 {
			if bl == nil || bl.Program == "" {
				return nil, fmt.Errorf("baseline %d of a version 1 file: no program", i)
			}
		}
		return nil, errOldBaselines
	}
	var f baselinesFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the baselines")
	}
	if f.Version != baselinesVersion {
		return nil, fmt.Errorf("version %d, want %d", f.Version, baselinesVersion)
	}
	if len(f.Baselines) > maxPrograms {
		return nil, fmt.Errorf("%d baselines, more than the %d kept", len(f.Baselines), maxPrograms)
	}
	seen := map[Key]bool{}
	perUser := map[uint32]int{}
	for i, bl := range f.Baselines {
		if err := bl.check(); err != nil {
			return nil, fmt.Errorf("baseline %d: %w", i, err)
		}
		k := Key{bl.UID, bl.Program}
		if seen[k] {
			return nil, fmt.Errorf("baseline %d: uid %d program %q twice", i, bl.UID, bl.Program)
		}
		seen[k] = true
		if perUser[bl.UID]++; perUser[bl.UID] > maxPerUser {
			return nil, fmt.Errorf("uid %d has more than %d baselines", bl.UID, maxPerUser)
		}
	}
	return f.Baselines, nil
}

// check refuses what Observe could never have produced.
func (bl *Baseline) check() error {
	switch {
	case bl == nil:
		return errors.New("null")
	case bl.Program == "" || len(bl.Program) > maxProgramLen:
		return fmt.Errorf("program name of %d bytes", len(bl.Program))
	case len(bl.RSS) > baselineWindow || len(bl.CPU) > baselineWindow || len(bl.Lifetime) > baselineWindow:
		return fmt.Errorf("%q: more than %d runs in a window", bl.Program, baselineWindow)
	case math.IsNaN(bl.EWMARSS) || math.IsInf(bl.EWMARSS, 0) || bl.EWMARSS < 0:
		return fmt.Errorf("%q: ewma_rss_bytes %g", bl.Program, bl.EWMARSS)
	case bl.Crashes > bl.Runs:
		return fmt.Errorf("%q: more crashes than runs", bl.Program)
	}
	return nil
}

// moveAside renames the file to "<name>.damaged-<UTC time>" (or ".v1-…"
// for the older format) so that it can still be looked at.
func (b *Baselines) moveAside(why error) {
	tag := "damaged"
	if errors.Is(why, errOldBaselines) {
		tag = "v1"
	}
	attrs := statefile.Attrs(b.path, why)
	aside, err := statefile.MoveAside(b.path, tag)
	if err != nil {
		b.log.Error("cannot move a damaged state file aside; starting with fresh baselines, the file is overwritten at the next save",
			append(attrs, "err", err)...)
		return
	}
	b.log.Warn("state file moved aside; starting with fresh baselines", append(attrs, "moved_to", aside)...)
}

// Save writes the baselines if they changed (temporary file, fsync,
// rename: a crash leaves the old file or the new one).
func (b *Baselines) Save() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	f := baselinesFile{Version: baselinesVersion, Baselines: make([]*Baseline, 0, b.total)}
	for _, u := range b.users {
		for el := u.lru.Front(); el != nil; el = el.Next() {
			f.Baselines = append(f.Baselines, el.Value.(*Baseline))
		}
	}
	slices.SortFunc(f.Baselines, func(x, y *Baseline) int { return compareKeys(Key{x.UID, x.Program}, Key{y.UID, y.Program}) })
	data, err := json.Marshal(f)
	b.dirty = false
	b.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.path), ".baselines-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), b.path)
}
