package canary

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/npllm/npllm/actions/tuning"
)

// A program is every process whose comm is its name: CPU in cores summed
// over them (processes seen in both reads), memory as their summed RSS.
//
// Finding them means reading every process's stat (~14 µs each here; a
// scan every 5 s cost the daemon 30 ms of CPU a second while other tests
// ran thousands of processes), so the pids are remembered and only they
// are read, with a full scan every rescanEvery (or when none of them is
// left): a process of the program started in between is counted from the
// next scan. For a workload that forks many short processes, watch its
// unit (unit.cpu reads one cgroup file) rather than a program.
const rescanEvery = 30 * time.Second

type pidSet struct {
	at   time.Time
	pids []uint64
}

// programProcs returns the program's processes.
func (s *Source) programProcs(program string) ([]procStat, error) {
	s.mu.Lock()
	known, ok := s.pids[program]
	s.mu.Unlock()
	if ok && time.Since(known.at) < rescanEvery {
		var out []procStat
		buf := make([]byte, 0, 1024)
		for _, pid := range known.pids {
			if st, ok := s.readStat(pid, buf); ok && st.comm == program {
				out = append(out, st)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	all, err := s.procs()
	if err != nil {
		return nil, err
	}
	var out []procStat
	set := pidSet{at: time.Now()}
	for _, st := range all {
		if st.comm == program {
			out = append(out, st)
			set.pids = append(set.pids, st.pid)
		}
	}
	s.mu.Lock()
	if s.pids == nil || len(s.pids) >= maxMarks {
		s.pids = map[string]pidSet{}
	}
	s.pids[program] = set
	s.mu.Unlock()
	return out, nil
}

func (s *Source) procRoot() string {
	if s.ProcRoot == "" {
		return "/proc"
	}
	return s.ProcRoot
}

func (s *Source) readStat(pid uint64, buf []byte) (procStat, bool) {
	f, err := os.Open(filepath.Join(s.procRoot(), strconv.FormatUint(pid, 10), "stat"))
	if err != nil {
		return procStat{}, false // exited
	}
	n, _ := f.Read(buf[:cap(buf)])
	f.Close()
	st, ok := parseStat(buf[:n])
	st.pid = pid
	return st, ok
}

// procStat is what the canary needs of /proc/PID/stat.
type procStat struct {
	pid      uint64
	comm     string
	ticks    uint64 // utime + stime
	start    uint64
	rssPages uint64
}

// procs reads every process's stat with a plain read and a minimal parse
// (procfs's general parser cost ~37 µs a process here).
func (s *Source) procs() ([]procStat, error) {
	entries, err := os.ReadDir(s.procRoot())
	if err != nil {
		return nil, err
	}
	out := make([]procStat, 0, len(entries))
	buf := make([]byte, 0, 1024)
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if st, ok := s.readStat(pid, buf); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// parseStat reads comm (between the first "(" and the last ")": a comm
// may hold both) and fields 14, 15 (utime, stime), 22 (starttime) and 24
// (rss in pages) of proc_pid_stat(5).
func parseStat(b []byte) (procStat, bool) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procStat{}, false
	}
	st := procStat{comm: string(b[open+1 : closing])}
	fields := bytes.Fields(b[closing+1:]) // fields[0] is field 3 (state)
	if len(fields) < 22 {
		return procStat{}, false
	}
	num := func(i int) uint64 { v, _ := strconv.ParseUint(string(fields[i-3]), 10, 64); return v }
	st.ticks, st.start, st.rssPages = num(14)+num(15), num(22), num(24)
	return st, true
}

func (s *Source) programCPU(ctx context.Context, program string) (float64, error) {
	read := func() (mark, error) {
		procs, err := s.programProcs(program)
		if err != nil {
			return mark{}, err
		}
		m := mark{at: time.Now(), perPID: map[uint64]uint64{}}
		for _, st := range procs {
			m.perPID[st.pid<<32|st.start&0xffffffff] = st.ticks
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
	procs, err := s.programProcs(program)
	if err != nil {
		return 0, err
	}
	var rss uint64
	for _, st := range procs {
		rss += st.rssPages * uint64(os.Getpagesize())
	}
	if len(procs) == 0 {
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
