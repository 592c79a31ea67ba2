package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
)

// Baselines learn each program's normal from its finished runs (the
// process.exit events): peak RSS, CPU time and lifetime of its last
// baselineWindow runs, an EWMA of peak RSS, and how often it crashed.
// Programs are keyed by comm (the kernel's 15-character process name),
// which exit events, the process table and alerts all share. They are
// persisted as JSON in the state directory, written atomically.
type Baselines struct {
	path string

	mu    sync.Mutex
	byKey map[string]*Baseline
	dirty bool
}

// Baseline is one program's learned normal.
type Baseline struct {
	Program    string   `json:"program"`
	Runs       uint64   `json:"runs"`
	Crashes    uint64   `json:"crashes"`
	RSS        []uint64 `json:"rss_bytes"`   // peak RSS of the last runs
	CPU        []uint64 `json:"cpu_ns"`      // CPU time of the last runs
	Lifetime   []uint64 `json:"lifetime_ns"` // wall time of the last runs
	EWMARSS    float64  `json:"ewma_rss_bytes"`
	LastSeenNS int64    `json:"last_seen_ns"`
}

const (
	baselineWindow = 64   // runs kept per program
	maxPrograms    = 4096 // least recently seen programs are forgotten beyond this
	ewmaWeight     = 0.2
)

// OpenBaselines loads path (a missing file is an empty set).
func OpenBaselines(path string) (*Baselines, error) {
	b := &Baselines{path: path, byKey: map[string]*Baseline{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	var list []*Baseline
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, bl := range list {
		b.byKey[bl.Program] = bl
	}
	return b, nil
}

// Observe records one finished run.
func (b *Baselines) Observe(program string, maxRSS, cpuNS, lifetimeNS uint64, crashed bool, now time.Time) {
	if program == "" || maxRSS == 0 {
		return // the procfs fallback does not know peak RSS
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, ok := b.byKey[program]
	if !ok {
		if len(b.byKey) >= maxPrograms {
			b.evictOldest()
		}
		bl = &Baseline{Program: program, EWMARSS: float64(maxRSS)}
		b.byKey[program] = bl
	}
	bl.Runs++
	if crashed {
		bl.Crashes++
	}
	bl.RSS = pushWindow(bl.RSS, maxRSS)
	bl.CPU = pushWindow(bl.CPU, cpuNS)
	bl.Lifetime = pushWindow(bl.Lifetime, lifetimeNS)
	bl.EWMARSS = ewmaWeight*float64(maxRSS) + (1-ewmaWeight)*bl.EWMARSS
	bl.LastSeenNS = now.UnixNano()
	b.dirty = true
}

func pushWindow(w []uint64, v uint64) []uint64 {
	w = append(w, v)
	if len(w) > baselineWindow {
		w = w[len(w)-baselineWindow:]
	}
	return w
}

func (b *Baselines) evictOldest() {
	var oldest string
	var at int64
	for k, bl := range b.byKey {
		if oldest == "" || bl.LastSeenNS < at {
			oldest, at = k, bl.LastSeenNS
		}
	}
	delete(b.byKey, oldest)
}

// Get returns a copy of one program's baseline.
func (b *Baselines) Get(program string) (Baseline, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, ok := b.byKey[program]
	if !ok {
		return Baseline{}, false
	}
	c := *bl
	c.RSS, c.CPU, c.Lifetime = slices.Clone(bl.RSS), slices.Clone(bl.CPU), slices.Clone(bl.Lifetime)
	return c, true
}

// Forget drops a program's baseline; it reports whether there was one.
func (b *Baselines) Forget(program string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.byKey[program]
	delete(b.byKey, program)
	b.dirty = b.dirty || ok
	return ok
}

// Programs lists the programs with a baseline.
func (b *Baselines) Programs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.byKey))
	for k := range b.byKey {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Save writes the baselines if they changed (temporary file, fsync,
// rename: a crash leaves the old file or the new one).
func (b *Baselines) Save() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	list := make([]*Baseline, 0, len(b.byKey))
	for _, bl := range b.byKey {
		list = append(list, bl)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Program < list[j].Program })
	data, err := json.Marshal(list)
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

// Percentile of a window (nearest rank); 0 for an empty window.
func Percentile(w []uint64, q float64) uint64 {
	if len(w) == 0 {
		return 0
	}
	s := slices.Clone(w)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
