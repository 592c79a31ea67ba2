package alerts

import (
	"cmp"
	"container/list"
	"log/slog"
	"slices"
	"strings"
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

	mu    sync.Mutex
	users map[uint32]*userBaselines
	total int
	dirty bool
}

// userBaselines are one user's, least recently seen at the back, so that
// eviction costs O(1) and not a scan of the whole set.
type userBaselines struct {
	lru       *list.List // of *Baseline
	byProgram map[string]*list.Element
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
	return &Baselines{path: path, log: log, users: map[uint32]*userBaselines{}}
}

func (b *Baselines) get(k Key) (*list.Element, *userBaselines) {
	u := b.users[k.UID]
	if u == nil {
		return nil, nil
	}
	return u.byProgram[k.Program], u
}

// Observe records one finished run of program by uid.
func (b *Baselines) Observe(uid uint32, program string, maxRSS, cpuNS, lifetimeNS uint64, crashed bool, now time.Time) {
	if program == "" || len(program) > maxProgramLen || maxRSS == 0 {
		return // the procfs fallback does not know peak RSS
	}
	k := Key{uid, program}
	b.mu.Lock()
	defer b.mu.Unlock()
	var bl *Baseline
	if el, u := b.get(k); el != nil {
		u.lru.MoveToFront(el)
		bl = el.Value.(*Baseline)
	} else {
		switch {
		case u != nil && u.lru.Len() >= maxPerUser:
			b.evictOldest(uid)
		case b.total >= maxPrograms:
			b.evictOldest(b.biggestUser())
		}
		bl = &Baseline{UID: uid, Program: program, EWMARSS: float64(maxRSS)}
		b.add(bl, true)
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

// add puts bl in front (most recent) or at the back of its user's list.
func (b *Baselines) add(bl *Baseline, front bool) {
	u := b.users[bl.UID]
	if u == nil {
		u = &userBaselines{lru: list.New(), byProgram: map[string]*list.Element{}}
		b.users[bl.UID] = u
	}
	if front {
		u.byProgram[bl.Program] = u.lru.PushFront(bl)
	} else {
		u.byProgram[bl.Program] = u.lru.PushBack(bl)
	}
	b.total++
}

func (b *Baselines) remove(k Key) bool {
	el, u := b.get(k)
	if el == nil {
		return false
	}
	u.lru.Remove(el)
	delete(u.byProgram, k.Program)
	if u.lru.Len() == 0 {
		delete(b.users, k.UID)
	}
	b.total--
	return true
}

func pushWindow(w []uint64, v uint64) []uint64 {
	w = append(w, v)
	if len(w) > baselineWindow {
		w = w[len(w)-baselineWindow:]
	}
	return w
}

// biggestUser is the uid with the most programs (the highest uid on a
// tie, so root is never chosen while another user has as many).
func (b *Baselines) biggestUser() uint32 {
	var best uint32
	n := -1
	for uid, u := range b.users {
		if c := u.lru.Len(); c > n || (c == n && uid > best) {
			best, n = uid, c
		}
	}
	return best
}

// evictOldest forgets uid's least recently seen program.
func (b *Baselines) evictOldest(uid uint32) {
	if u := b.users[uid]; u != nil && u.lru.Len() > 0 {
		old := u.lru.Back().Value.(*Baseline)
		b.remove(Key{old.UID, old.Program})
	}
}

// Get returns a copy of uid's baseline of program.
func (b *Baselines) Get(uid uint32, program string) (Baseline, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	el, _ := b.get(Key{uid, program})
	if el == nil {
		return Baseline{}, false
	}
	bl := el.Value.(*Baseline)
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
	out := make([]Key, 0, b.total)
	for uid, u := range b.users {
		for p := range u.byProgram {
			out = append(out, Key{uid, p})
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func compareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.UID, b.UID), strings.Compare(a.Program, b.Program))
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
