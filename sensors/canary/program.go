package canary

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/procfs"

	"github.com/npllm/npllm/actions/tuning"
)

// A program is every process whose comm is its name: CPU in cores summed
// over them (processes seen in both reads), memory as their summed RSS.

func (s *Source) procs() ([]procfs.ProcStat, error) {
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, err
	}
	all, err := fs.AllProcs()
	if err != nil {
		return nil, err
	}
	out := make([]procfs.ProcStat, 0, len(all))
	for _, p := range all {
		if st, err := p.Stat(); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

func (s *Source) programCPU(ctx context.Context, program string) (float64, error) {
	read := func() (mark, error) {
		all, err := s.procs()
		if err != nil {
			return mark{}, err
		}
		m := mark{at: time.Now(), perPID: map[uint64]uint64{}}
		for _, st := range all {
			if st.Comm == program {
				m.perPID[uint64(st.PID)<<32|st.Starttime&0xffffffff] = uint64(st.UTime + st.STime)
			}
		}
		return m, nil
	}
	prev, now, err := s.window(ctx, "program.cpu|"+program, read)
	if err != nil {
		return 0, err
	}
	dt := now.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return 0, nil
	}
	var ticks uint64
	for k, v := range now.perPID {
		if p, ok := prev.perPID[k]; ok && v >= p {
			ticks += v - p
		}
	}
	return float64(ticks) / userHZ / dt, nil
}

// userHZ is the unit of /proc/PID/stat times (USER_HZ, 100 on Linux).
const userHZ = 100

func (s *Source) programMemory(program string) (float64, error) {
	all, err := s.procs()
	if err != nil {
		return 0, err
	}
	var rss int
	found := false
	for _, st := range all {
		if st.Comm == program {
			rss += st.ResidentMemory()
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no process named %q is running", program)
	}
	return float64(rss), nil
}

// Baseline is the program's learned normal, when exactly one user has
// one (a name two users run means two different programs): for
// program.memory the median peak RSS of its runs, for program.cpu the
// median of CPU time over lifetime of runs that lived at least a second.
// Units and machine-wide metrics have no learned baseline.
func (s *Source) Baseline(_ context.Context, w tuning.Watch) (float64, bool) {
	if s.Baselines == nil || (w.Metric != tuning.MetricProgramMemory && w.Metric != tuning.MetricProgramCPU) {
		return 0, false
	}
	var uids []uint32
	for _, k := range s.Baselines.Keys() {
		if k.Program == w.Target {
			uids = append(uids, k.UID)
		}
	}
	if len(uids) != 1 {
		return 0, false
	}
	bl, ok := s.Baselines.Get(uids[0], w.Target)
	if !ok {
		return 0, false
	}
	var vals []float64
	if w.Metric == tuning.MetricProgramMemory {
		for _, v := range bl.RSS {
			vals = append(vals, float64(v))
		}
	} else {
		for i := range min(len(bl.CPU), len(bl.Lifetime)) {
			if bl.Lifetime[i] >= uint64(time.Second) {
				vals = append(vals, float64(bl.CPU[i])/float64(bl.Lifetime[i]))
			}
		}
	}
	if len(vals) < 3 { // too few runs to call anything normal
		return 0, false
	}
	slices.Sort(vals)
	return vals[len(vals)/2], true
}
