package sensors

import "sort"

// Ordering of process listings, shared by the procfs walk and the task
// iterator.

// topProcesses orders the first limit rows of procs as sortProcesses would
// and returns them; with a small limit it selects instead of sorting the
// whole table (10,000 rows for a top-10).
func topProcesses(procs []Process, by string, limit int) []Process {
	if limit <= 0 || limit*8 > len(procs) {
		sortProcesses(procs, by)
		if limit > 0 && len(procs) > limit {
			procs = procs[:limit]
		}
		return procs
	}
	less := processOrder(by)
	top := make([]Process, 0, limit+1)
	for i := range procs {
		if len(top) == limit && !less(&procs[i], &top[limit-1]) {
			continue
		}
		j := len(top)
		if j == limit {
			j--
		} else {
			top = append(top, Process{})
		}
		for ; j > 0 && less(&procs[i], &top[j-1]); j-- {
			top[j] = top[j-1]
		}
		top[j] = procs[i]
	}
	return top
}

func sortProcesses(procs []Process, by string) {
	less := processOrder(by)
	sort.SliceStable(procs, func(i, j int) bool { return less(&procs[i], &procs[j]) })
}

// processOrder: largest key first, then lowest pid.
func processOrder(by string) func(a, b *Process) bool {
	key := func(p *Process) float64 {
		switch by {
		case "memory":
			return float64(p.RSSBytes)
		case "io":
			return float64(p.IOReadBytes + p.IOWriteBytes)
		default:
			return p.CPUPercent
		}
	}
	return func(a, b *Process) bool {
		ka, kb := key(a), key(b)
		if ka != kb {
			return ka > kb
		}
		return a.PID < b.PID
	}
}
