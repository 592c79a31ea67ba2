package alerts

import (
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Baselines learn each program's normal from its finished runs (the
// process.exit events): peak RSS, CPU time and lifetime of its last
// baselineWindow runs, an EWMA of peak RSS, and how often it crashed.
//
// A baseline belongs to a user: it is keyed by (uid, program), the program
// being comm (the kernel's 15-character process name, which exit events,
// the process table and alerts share). comm is chosen by whoever runs the
// program, so a key without the uid would let any user teach npllmd that
// a 2 GiB "postgres" is normal for root. Eviction is per user too: a user
// is held to maxPerUser programs, and when the whole set is full the user
// with the most programs loses their least recently seen one, so a flood
// of names from one user never flushes another user's (or root's)
// baselines. Persisted as JSON in the state directory (baselines_file.go).
type Baselines struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	byKey   map[Key]*Baseline
	perUser map[uint32]int
	dirty   bool
}

// Key names one baseline.
type Key struct {
	UID     uint32
	Program string
}

// Baseline is one program's learned normal for one user.
type Baseline struct {
	UID        uint32   `json:"uid"`
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
	maxPerUser     = 1024 // programs kept per user
	maxPrograms    = 4096 // programs kept in all
	maxProgramLen  = 64   // comm is at most 15 bytes today; room for longer names
	ewmaWeight     = 0.2
)

func newBaselines(path string, log *slog.Logger) *Baselines {
	if log == nil {
		log = slog.Default()
	}
	return &Baselines{path: path, log: log, byKey: map[Key]*Baseline{}, perUser: map[uint32]int{}}
}

// Observe records one finished run of program by uid.
func (b *Baselines) Observe(uid uint32, program string, maxRSS, cpuNS, lifetimeNS uint64, crashed bool, now time.Time) {
	if program == "" || len(program) > maxProgramLen || maxRSS == 0 {
		return // the procfs fallback does not know peak RSS
	}
	k := Key{uid, program}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, ok := b.byKey[k]
	if !ok {
		switch {
		case b.perUser[uid] >= maxPerUser:
			b.evictOldest(uid)
		case len(b.byKey) >= maxPrograms:
			b.evictOldest(b.biggestUser())
		}
		bl = &Baseline{UID: uid, Program: program, EWMARSS: float64(maxRSS)}
		b.add(bl)
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

func (b *Baselines) add(bl *Baseline) {
	b.byKey[Key{bl.UID, bl.Program}] = bl
	b.perUser[bl.UID]++
}

func (b *Baselines) remove(k Key) bool {
	if _, ok := b.byKey[k]; !ok {
		return false
	}
	delete(b.byKey, k)
	if b.perUser[k.UID]--; b.perUser[k.UID] <= 0 {
		delete(b.perUser, k.UID)
	}
	return true
}

func pushWindow(w []uint64, v uint64) []uint64 {
	w = append(w, v)
	if len(w) > baselineWindow {
		w = w[len(w)-baselineWindow:]
	}
	return w
}

// biggestUser is the uid with the most programs (the lowest uid on a tie,
// so root is never chosen while another user has as many).
func (b *Baselines) biggestUser() uint32 {
	var best uint32
	n := -1
	for uid, c := range b.perUser {
		if c > n || (c == n && uid > best) {
			best, n = uid, c
		}
	}
	return best
}

// evictOldest forgets uid's least recently seen program.
func (b *Baselines) evictOldest(uid uint32) {
	var oldest Key
	var at int64
	found := false
	for k, bl := range b.byKey {
		if k.UID == uid && (!found || bl.LastSeenNS < at) {
			oldest, at, found = k, bl.LastSeenNS, true
		}
	}
	if found {
		b.remove(oldest)
	}
}

// Get returns a copy of uid's baseline of program.
func (b *Baselines) Get(uid uint32, program string) (Baseline, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, ok := b.byKey[Key{uid, program}]
	if !ok {
		return Baseline{}, false
	}
	c := *bl
	c.RSS, c.CPU, c.Lifetime = slices.Clone(bl.RSS), slices.Clone(bl.CPU), slices.Clone(bl.Lifetime)
	return c, true
}

// Forget drops uid's baseline of program; it reports whether there was one.
func (b *Baselines) Forget(uid uint32, program string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	ok := b.remove(Key{uid, program})
	b.dirty = b.dirty || ok
	return ok
}

// Keys lists every baseline's key, by uid then program.
func (b *Baselines) Keys() []Key {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Key, 0, len(b.byKey))
	for k := range b.byKey {
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func compareKeys(a, b Key) int {
	switch {
	case a.UID != b.UID:
		return map[bool]int{true: -1, false: 1}[a.UID < b.UID]
	case a.Program < b.Program:
		return -1
	case a.Program > b.Program:
		return 1
	}
	return 0
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
