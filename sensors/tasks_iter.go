package sensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cilium/ebpf/link"

	"github.com/npllm/npllm/bpf"
)

// taskIter reads the whole process table in one read() of an eBPF task
// iterator (bpf/tasks.bpf.c): a row per thread, summed here per process.
// Walking /proc instead costs three syscalls and a parse per process, and
// the alert engine samples every 10 s: with 3,000 sleeping processes that
// was 3% of a core for an idle daemon (issue 17).
type taskIter struct {
	objs bpf.TasksObjects
	link *link.Iter

	mu    sync.Mutex
	buf   []byte
	index map[uint32]int
	comms map[string]string // interned: most processes share a few names
	reads uint64
}

func openTaskIter() (*taskIter, error) {
	spec, err := bpf.LoadTasks()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	it := &taskIter{index: map[uint32]int{}, comms: map[string]string{}}
	if err := spec.LoadAndAssign(&it.objs, nil); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	it.link, err = link.AttachIter(link.IterOptions{Program: it.objs.DumpTask})
	if err != nil {
		it.objs.Close()
		return nil, fmt.Errorf("attach iter/task: %w", err)
	}
	return it, nil
}

func (it *taskIter) Close() {
	it.link.Close()
	it.objs.Close()
}

// Offsets of struct npllm_task_row (bpf/tasks.h).
const (
	trTID, trTGID, trRun, trPPID, trUID, trFlags, trState = 0, 4, 8, 16, 20, 24, 28
	trExitState, trNice, trThreads, trLeader, trStart     = 32, 36, 40, 44, 48
	trRSS, trComm, trSize                                 = 56, 64, 80
)

const pfKthread = 0x00200000

var pageSize = uint64(os.Getpagesize())

// snapshot returns every process on the machine with the fields of
// /proc/PID/stat that List sorts and filters on (cpuTicks from the
// scheduler's precise run time).
func (it *taskIter) snapshot() ([]Process, error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	rd, err := it.link.Open()
	if err != nil {
		return nil, fmt.Errorf("open task iterator: %w", err)
	}
	defer rd.Close()
	it.buf = it.buf[:0]
	for {
		if len(it.buf) == cap(it.buf) {
			it.buf = append(it.buf, make([]byte, max(64<<10, cap(it.buf)))...)[:len(it.buf)]
		}
		n, err := rd.Read(it.buf[len(it.buf):cap(it.buf)])
		it.buf = it.buf[:len(it.buf)+n]
		if err == io.EOF || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read task iterator: %w", err)
		}
	}
	it.reads++
	le := binary.LittleEndian
	clear(it.index)
	var runOfThreads map[uint32]uint64
	procs := make([]Process, 0, len(it.buf)/trSize)
	for off := 0; off+trSize <= len(it.buf); off += trSize {
		r := it.buf[off : off+trSize]
		tgid, run := le.Uint32(r[trTGID:]), le.Uint64(r[trRun:])
		if r[trLeader] == 0 {
			if i, ok := it.index[tgid]; ok {
				procs[i].runNS += run
			} else { // a thread listed before its leader (pid wrap)
				if runOfThreads == nil {
					runOfThreads = map[uint32]uint64{}
				}
				runOfThreads[tgid] += run
			}
			continue
		}
		it.index[tgid] = len(procs)
		procs = append(procs, Process{
			PID: tgid, PPID: le.Uint32(r[trPPID:]), UID: le.Uint32(r[trUID:]),
			Comm:  it.comm(r[trComm : trComm+16]),
			State: taskState(le.Uint32(r[trState:]), le.Uint32(r[trExitState:])),
			// /proc/PID/stat field 22 is start_boottime in USER_HZ ticks.
			StartTime: le.Uint64(r[trStart:]) / nsPerTick, Nice: int32(le.Uint32(r[trNice:])),
			Threads: le.Uint32(r[trThreads:]), RSSBytes: le.Uint64(r[trRSS:]) * pageSize,
			KernelThread: le.Uint32(r[trFlags:])&pfKthread != 0,
			runNS:        run, hasUID: true,
		})
	}
	for i := range procs {
		procs[i].runNS += runOfThreads[procs[i].PID]
		procs[i].cpuTicks = procs[i].runNS / nsPerTick
	}
	return procs, nil
}

func (it *taskIter) comm(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if s, ok := it.comms[string(b)]; ok {
		return s
	}
	if len(it.comms) >= 1<<14 {
		clear(it.comms)
	}
	s := string(b)
	it.comms[s] = s
	return s
}

// taskState is the letter /proc/PID/stat shows for a task's state.
func taskState(state, exit uint32) string {
	switch {
	case exit&0x20 != 0:
		return "X"
	case exit&0x10 != 0:
		return "Z"
	case state == 0:
		return "R"
	case state&0x402 == 0x402: // TASK_IDLE
		return "I"
	case state&0x1 != 0:
		return "S"
	case state&0x2 != 0:
		return "D"
	case state&0x4 != 0:
		return "T"
	case state&0x8 != 0:
		return "t"
	}
	return "S"
}

// listIter is List from one task-iterator snapshot: /proc is opened only
// for the processes returned (and for every process when sorting by io,
// which the iterator does not carry).
func (t *ProcessTable) listIter(opts ListOptions) ([]Process, error) {
	all, err := t.iter.snapshot()
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, p := range all {
		if opts.UID != nil && p.UID != *opts.UID {
			continue
		}
		if opts.SortBy == "io" {
			if h, err := t.fs.Proc(int(p.PID)); err == nil {
				t.readIO(h, &p)
			}
		}
		out = append(out, p)
	}
	t.fillCPU(out, opts.UID == nil, t.resampleIter)
	out = topProcesses(out, opts.SortBy, opts.Limit)
	for i := range out {
		out[i].User = UserName(out[i].UID)
		h, err := t.fs.Proc(int(out[i].PID))
		if err != nil {
			continue // exited since the snapshot
		}
		if opts.SortBy != "io" {
			t.readIO(h, &out[i])
		}
		t.readDetails(h, &out[i])
	}
	return out, nil
}

// resampleIter takes a second snapshot for a cold table's CPU window.
func (t *ProcessTable) resampleIter(procs []Process) {
	again, err := t.iter.snapshot()
	if err != nil {
		return
	}
	ticks := make(map[procKey]uint64, len(again))
	for _, p := range again {
		ticks[procKey{p.PID, p.StartTime}] = p.cpuTicks
	}
	for i, p := range procs {
		if v, ok := ticks[procKey{p.PID, p.StartTime}]; ok {
			procs[i].cpuTicks = v
		}
	}
}

// Ranked returns the cpuN busiest and the memN largest processes from one
// listing (the alert engine's sample every 10 s): one snapshot on the
// iterator, without the per-row /proc reads the rules do not use (io,
// cgroup, command line). On procfs it is two List calls, as before.
func (t *ProcessTable) Ranked(cpuN, memN int) (byCPU, byMem []Process, err error) {
	if t.iter == nil {
		if byCPU, err = t.List(ListOptions{SortBy: "cpu", Limit: cpuN}); err != nil {
			return nil, nil, err
		}
		byMem, err = t.List(ListOptions{SortBy: "memory", Limit: memN})
		return byCPU, byMem, err
	}
	all, err := t.iter.snapshot()
	if err != nil {
		return nil, nil, err
	}
	t.fillCPU(all, true, t.resampleIter)
	byCPU = append([]Process(nil), topProcesses(all, "cpu", cpuN)...)
	byMem = topProcesses(all, "memory", memN)
	for _, list := range [][]Process{byCPU, byMem} {
		for i := range list {
			list[i].User = UserName(list[i].UID)
		}
	}
	return byCPU, byMem, nil
}
