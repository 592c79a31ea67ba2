package journal

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/npllm/npllm/sensors"
)

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

// Query returns up to max written events after afterSeq that match f, and
// the seq to pass as afterSeq next time: the last event returned when max
// cut the answer short, otherwise the last written seq. It seeks by seq
// and time, and a kind, pid or uid filter reads only the records its
// postings name (the smallest of them), so its cost follows the answer,
// not the journal. It never writes: an event is visible at most
// FlushInterval after it happened.
func (j *Journal) Query(afterSeq uint64, max int, f Filter) (uint64, []sensors.Event, error) {
	max = maxInt(max, 1)
	last := j.LastSeq()
	if afterSeq == math.MaxUint64 { // nothing can follow it (and +1 would wrap to the start)
		return last, nil, nil
	}
	var out []sensors.Event
	j.idx.RLock()
	defer j.idx.RUnlock()
	si := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].next() > afterSeq+1 })
	ri := 0
	if si < len(j.segs) {
		ri = j.segs[si].recordsFrom(afterSeq + 1)
	}
	if f.SinceNS > 0 {
		if sj := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].maxTime >= f.SinceNS }); sj > si {
			si, ri = sj, 0
		}
		if si < len(j.segs) {
			ri = maxInt(ri, j.segs[si].timeFrom(f.SinceNS))
		}
	}
	for ; si < len(j.segs); si, ri = si+1, 0 {
		s := j.segs[si]
		cand, all := j.candidates(s, &f)
		r := &segReader{s: s, span: 1}
		if all {
			r.span = 256
		}
		start := ri
		if !all { // postings are sorted: skip to the first at or after ri
			start = sort.Search(len(cand), func(x int) bool { return int(cand[x]) >= ri })
		}
		for k := start; ; k++ {
			i := k
			if !all {
				if k >= len(cand) {
					break
				}
				i = int(cand[k])
			} else if i >= s.n() {
				break
			}
			if s.first+uint64(i) > last {
				return last, out, nil
			}
			p, err := r.payload(i)
			if err != nil {
				return last, out, fmt.Errorf("event %d: %w", s.first+uint64(i), err)
			}
			ev, err := decode(p)
			if err != nil {
				return last, out, fmt.Errorf("event %d: %w", s.first+uint64(i), err)
			}
			if !f.match(&ev) {
				continue
			}
			if len(out) == max {
				return out[len(out)-1].Seq, out, nil
			}
			out = append(out, ev)
		}
	}
	return last, out, nil
}

// candidates intersects, in memory, the postings the filter names (a
// union over its kinds), so that only matching records are read; or all
// records when the filter names none.
func (j *Journal) candidates(s *segment, f *Filter) ([]uint16, bool) {
	var sets [][]uint16
	if f.PID != nil {
		sets = append(sets, s.pidPostings(*f.PID))
	}
	if f.UID != nil {
		sets = append(sets, s.uidPostings(*f.UID))
	}
	if len(f.Kinds) > 0 {
		var lists [][]uint16
		size := 0
		for i, k := range f.Kinds {
			id, ok := j.kindIDs[k]
			if !ok && len(j.kindIDs) >= otherKinds {
				id, ok = otherKinds, true
			}
			if l := s.kindPostings(id, ok); len(l) > 0 && !slices.Contains(f.Kinds[:i], k) {
				lists = append(lists, l)
				size += len(l)
			}
		}
		sets = append(sets, unionPostings(lists, size))
	}
	if len(sets) == 0 {
		return nil, true
	}
	slices.SortFunc(sets, func(a, b []uint16) int { return len(a) - len(b) })
	out := sets[0]
	for _, other := range sets[1:] {
		out = intersect(out, other)
	}
	return out, false
}

// intersect keeps the records of a (the shorter) that are in b.
func intersect(a, b []uint16) []uint16 {
	out := make([]uint16, 0, len(a))
	for _, x := range a {
		k, found := slices.BinarySearch(b, x)
		if found {
			out = append(out, x)
		}
		b = b[k:]
	}
	return out
}

// unionPostings merges sorted postings of distinct kinds.
func unionPostings(lists [][]uint16, size int) []uint16 {
	switch len(lists) {
	case 0:
		return []uint16{}
	case 1:
		return lists[0]
	}
	out := make([]uint16, 0, size)
	for {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0] < lists[best][0]) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, lists[best][0])
		lists[best] = lists[best][1:]
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
