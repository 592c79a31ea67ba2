package sensors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// The "processes" sensor is the on-demand process table behind GetProcesses
// and GetProcess. It scans /proc only when asked, so an idle daemon costs
// nothing here.
//
// Its ladder: bpf_iter (an eBPF task iterator ranks every process in one
// read; /proc is opened only for the processes returned) → procfs (a walk
// of /proc per listing).
func init() {
	Register(Registration{
		Name:        "processes",
		Description: "process table (cpu, memory, io, unit), read on demand",
		DefaultOn:   true,
		Variants: []Variant{
			{Name: "bpf_iter", Start: startProcessesIter},
			{Name: "procfs", Start: startProcesses},
		},
	})
}

// ErrNoSuchProcess is returned (wrapped) for a pid that does not exist.
var ErrNoSuchProcess = errors.New("no such process")

// MaxCmdline bounds the command line returned for a process.
const MaxCmdline = 4096

// userHZ is the kernel's USER_HZ, the unit of /proc/pid/stat times; it is
// 100 on every Linux architecture that npllm supports.
const userHZ = 100

// Process is one row of the process table.
type Process struct {
	PID, PPID    uint32
	UID          uint32
	User         string
	Comm         string
	Cmdline      string
	State        string
	StartTime    uint64 // clock ticks since boot: field 22 of /proc/pid/stat
	Nice         int32
	Threads      uint32
	RSSBytes     uint64
	CPUPercent   float64 // of one CPU, over the sampling window
	IOReadBytes  uint64
	IOWriteBytes uint64
	Cgroup       string
	Unit         string
	KernelThread bool

	cpuTicks uint64 // utime+stime when read
	runNS    uint64 // CPU time in ns (task iterator only)
	hasUID   bool   // UID already known (task iterator)
}

// ListOptions selects and orders processes.
type ListOptions struct {
	SortBy string // "cpu" (default), "memory", "io"
	Limit  int    // 0 = all
	UID    *uint32
}

// ValidSortKeys are the accepted ListOptions.SortBy values.
var ValidSortKeys = []string{"cpu", "memory", "io"}

type procKey struct {
	pid   uint32
	start uint64
}

type cpuSample struct {
	ticks uint64
	at    time.Time
}

// ProcessTable reads processes from procfs. CPU percentages need two
// samples: the table remembers the last two per (pid, start_time), and
// measures against the newer one that is at least cpuMinDelta old; when it
// has none it takes a second sample after cpuWindow. Keeping two means
// calls in quick succession (an MCP client polling system_status) always
// find a baseline instead of each waiting cpuWindow.
type ProcessTable struct {
	fs   procfs.FS
	root string

	iter *taskIter // nil: walk /proc

	mu    sync.Mutex
	prev  map[procKey]cpuHistory
	scans uint64
}

// cpuHistory holds a process's two most recent samples, older first.
type cpuHistory [2]cpuSample

// baseline picks the newest sample in [cpuMinDelta, cpuMaxAge] before now.
func (h cpuHistory) baseline(now time.Time) (cpuSample, bool) {
	for _, s := range []cpuSample{h[1], h[0]} {
		if age := now.Sub(s.at); !s.at.IsZero() && age >= cpuMinDelta && age <= cpuMaxAge {
			return s, true
		}
	}
	return cpuSample{}, false
}

// record adds a sample unless the newest is younger than cpuMinDelta (it
// would push out the only usable baseline).
func (h cpuHistory) record(s cpuSample) cpuHistory {
	if !h[1].at.IsZero() && s.at.Sub(h[1].at) < cpuMinDelta {
		return h
	}
	return cpuHistory{h[1], s}
}

const (
	cpuWindow   = 250 * time.Millisecond
	cpuMaxAge   = 30 * time.Second
	cpuMinDelta = 100 * time.Millisecond
)

func startProcesses(_ context.Context, env *Env) (Running, error) {
	return NewProcessTable(env.ProcRoot)
}

func startProcessesIter(_ context.Context, env *Env) (Running, error) {
	t, err := NewProcessTable(env.ProcRoot)
	if err != nil {
		return nil, err
	}
	if env.ProcRoot != "" && env.ProcRoot != "/proc" {
		// The iterator sees this kernel's tasks, not another procfs.
		return nil, &Unavailable{Reason: "procfs at " + env.ProcRoot + " is not this kernel's"}
	}
	if t.iter, err = openTaskIter(); err != nil {
		return nil, err
	}
	// The iterator reports the kernel's (initial namespace's) pids: in a
	// pid namespace they would not match /proc and the callers' pids.
	procs, err := t.iter.snapshot()
	self := slices.IndexFunc(procs, func(p Process) bool { return p.PID == uint32(os.Getpid()) })
	if err != nil || self < 0 {
		t.iter.Close()
		return nil, &Unavailable{Reason: "the task iterator does not see this process under its pid (a pid namespace?)"}
	}
	return t, nil
}

// NewProcessTable opens the process table on a procfs mount.
func NewProcessTable(procRoot string) (*ProcessTable, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, &Unavailable{Reason: "procfs: " + err.Error(), Fix: "mount /proc"}
	}
	return &ProcessTable{fs: fs, root: procRoot, prev: map[procKey]cpuHistory{}}, nil
}

func (t *ProcessTable) Counters() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]uint64{"scans": t.scans}
}

func (t *ProcessTable) Close() error {
	if t.iter != nil {
		t.iter.Close()
	}
	return nil
}

// List returns processes sorted and limited as asked. Reading /proc costs
// tens of microseconds per file here, so only what the sort and the filter
// need is read for every process (stat; status for a uid filter, io for an
// io sort); the rest only for the processes returned.
func (t *ProcessTable) List(opts ListOptions) ([]Process, error) {
	if t.iter != nil {
		return t.listIter(opts)
	}
	procs, err := t.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	out := make([]Process, 0, len(procs))
	handles := make(map[uint32]procfs.Proc, len(procs))
	for _, p := range procs {
		info, err := t.readStat(p)
		if err != nil {
			continue // exited while we looked
		}
		if opts.UID != nil {
			t.readOwner(p, &info)
			if info.UID != *opts.UID {
				continue
			}
		}
		if opts.SortBy == "io" {
			t.readIO(p, &info)
		}
		handles[info.PID] = p
		out = append(out, info)
	}
	t.fillCPU(out, opts.UID == nil, t.resampleProcfs)
	sortProcesses(out, opts.SortBy)
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	for i := range out {
		p := handles[out[i].PID]
		if opts.UID == nil {
			t.readOwner(p, &out[i])
		}
		if opts.SortBy != "io" {
			t.readIO(p, &out[i])
		}
		t.readDetails(p, &out[i])
	}
	return out, nil
}

// Get returns one process with all details.
func (t *ProcessTable) Get(pid uint32) (Process, error) {
	if pid == 0 {
		return Process{}, fmt.Errorf("pid 0: %w", ErrNoSuchProcess)
	}
	p, err := t.fs.Proc(int(pid))
	if err != nil {
		return Process{}, fmt.Errorf("pid %d: %w", pid, ErrNoSuchProcess)
	}
	info, err := t.readStat(p)
	if err != nil {
		return Process{}, err
	}
	t.readOwner(p, &info)
	t.readIO(p, &info)
	t.readDetails(p, &info)
	one := []Process{info}
	t.fillCPU(one, false, t.resampleProcfs)
	return one[0], nil
}

// readStat reads /proc/pid/stat: identity, state, memory, CPU time.
func (t *ProcessTable) readStat(p procfs.Proc) (Process, error) {
	st, err := p.Stat()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Process{}, fmt.Errorf("pid %d: %w", p.PID, ErrNoSuchProcess)
		}
		return Process{}, fmt.Errorf("pid %d: %w", p.PID, err)
	}
	return Process{
		PID: uint32(st.PID), PPID: uint32(st.PPID), Comm: st.Comm, State: st.State,
		StartTime: st.Starttime, Nice: int32(st.Nice), Threads: uint32(st.NumThreads),
		RSSBytes:     uint64(max(st.ResidentMemory(), 0)),
		KernelThread: isKernelThread(st.PID, st.PPID),
		cpuTicks:     uint64(st.UTime + st.STime),
	}, nil
}

// readOwner adds the real uid (/proc/pid/status) and the user name.
func (t *ProcessTable) readOwner(p procfs.Proc, info *Process) {
	if status, err := p.NewStatus(); err == nil {
		info.UID = uint32(status.UIDs[0])
	}
	info.User = UserName(info.UID)
}

func (t *ProcessTable) readIO(p procfs.Proc, info *Process) {
	if pio, err := p.IO(); err == nil {
		info.IOReadBytes, info.IOWriteBytes = pio.ReadBytes, pio.WriteBytes
	}
}

// readDetails adds the cgroup, unit and command line.
func (t *ProcessTable) readDetails(p procfs.Proc, info *Process) {
	info.Cgroup, info.Unit = readCgroup(path.Join(t.root, strconv.Itoa(p.PID), "cgroup"))
	info.Cmdline = t.cmdline(p.PID)
}

// isKernelThread: kernel threads are kthreadd (pid 2) and its children.
func isKernelThread(pid, ppid int) bool { return pid == 2 || ppid == 2 }

// fillCPU computes CPUPercent against the remembered sample of each process;
// when any is missing, too fresh or too old, it samples again after
// cpuWindow and uses that window instead. It forgets processes that are gone
// (after a full listing) so the memory stays the size of the table.
func (t *ProcessTable) fillCPU(procs []Process, fullListing bool, resample func([]Process)) {
	now := time.Now()
	// Per-row slices, not maps: at 10,000 processes two maps per call were
	// a large share of a listing's time and garbage.
	type row struct {
		base cpuSample
		ok   bool
		hist cpuHistory
	}
	rows := make([]row, len(procs))
	t.mu.Lock()
	known := 0
	for i, p := range procs {
		h := t.prev[procKey{p.PID, p.StartTime}]
		rows[i].hist = h
		if s, ok := h.baseline(now); ok {
			rows[i].base, rows[i].ok = s, true
			known++
		}
	}
	t.mu.Unlock()

	// A cold table (first call, or none recent) samples twice; otherwise
	// processes new since the last call are measured over their lifetime,
	// so one new process does not make every call wait cpuWindow.
	if known == 0 {
		for i, p := range procs {
			first := cpuSample{ticks: p.cpuTicks, at: now}
			rows[i] = row{base: first, ok: true, hist: cpuHistory{{}, first}}
		}
		time.Sleep(cpuWindow)
		resample(procs)
		now = time.Now()
	}
	uptime := t.uptime()

	t.mu.Lock()
	defer t.mu.Unlock()
	t.scans++
	if fullListing || len(t.prev) > 1<<16 {
		clear(t.prev) // forget processes that are gone
	}
	for i := range procs {
		cur := cpuSample{ticks: procs[i].cpuTicks, at: now}
		s, ok := rows[i].base, rows[i].ok
		switch {
		case ok && cur.at.After(s.at) && cur.ticks >= s.ticks:
			procs[i].CPUPercent = 100 * float64(cur.ticks-s.ticks) / userHZ / cur.at.Sub(s.at).Seconds()
		case !ok && uptime > 0:
			if age := uptime - float64(procs[i].StartTime)/userHZ; age > 0 {
				procs[i].CPUPercent = min(100*float64(cur.ticks)/userHZ/age, 100*float64(procs[i].Threads))
			}
		}
		t.prev[procKey{procs[i].PID, procs[i].StartTime}] = rows[i].hist.record(cur)
	}
}

// uptime is seconds since boot (0 if unreadable).
func (t *ProcessTable) uptime() float64 {
	data, err := os.ReadFile(path.Join(t.root, "uptime"))
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(data) + " 0")[0], 64)
	return f
}

// resampleProcfs re-reads each process's CPU time from /proc.
func (t *ProcessTable) resampleProcfs(procs []Process) {
	for i, p := range procs {
		if ticks, ok := t.cpuTicks(p.PID, p.StartTime); ok {
			procs[i].cpuTicks = ticks
		}
	}
}

func (t *ProcessTable) cpuTicks(pid uint32, start uint64) (uint64, bool) {
	p, err := t.fs.Proc(int(pid))
	if err != nil {
		return 0, false
	}
	st, err := p.Stat()
	if err != nil || st.Starttime != start {
		return 0, false
	}
	return uint64(st.UTime + st.STime), true
}

func (t *ProcessTable) cmdline(pid int) string {
	b, err := os.ReadFile(path.Join(t.root, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	if len(b) > MaxCmdline {
		b = b[:MaxCmdline]
	}
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

var userNames struct {
	sync.Mutex
	m map[uint32]string
}

// UserName names a uid ("1000" when it has no name), cached: user.LookupId
// reads /etc/passwd on every call.
func UserName(uid uint32) string {
	userNames.Lock()
	name, ok := userNames.m[uid]
	userNames.Unlock()
	if ok {
		return name
	}
	name = strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	userNames.Lock()
	if userNames.m == nil || len(userNames.m) > 4096 {
		userNames.m = map[uint32]string{}
	}
	userNames.m[uid] = name
	userNames.Unlock()
	return name
}

// readCgroup returns the process's cgroup v2 path (or the first hierarchy's
// on v1) and the systemd unit it belongs to, if any.
func readCgroup(file string) (cgroup, unit string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" || cgroup == "" {
			cgroup = parts[2]
		}
	}
	return cgroup, UnitFromCgroup(cgroup)
}

// UnitFromCgroup names the innermost systemd unit in a cgroup path:
// "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service" →
// "foo.service".
func UnitFromCgroup(cg string) string {
	parts := strings.Split(cg, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if strings.HasSuffix(p, ".service") || strings.HasSuffix(p, ".scope") {
			return p
		}
	}
	return ""
}
