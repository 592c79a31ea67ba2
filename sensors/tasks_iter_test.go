package sensors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/npllm/npllm/bpf"
	"github.com/npllm/npllm/dbus/testbus"
)

func TestTaskRowLayoutMatchesTheCompiledStruct(t *testing.T) {
	var r bpf.TasksNpllmTaskRow
	for name, pair := range map[string][2]uintptr{
		"run_ns": {unsafe.Offsetof(r.RunNs), trRun}, "exit_state": {unsafe.Offsetof(r.ExitState), trExitState},
		"leader": {unsafe.Offsetof(r.Leader), trLeader}, "start": {unsafe.Offsetof(r.StartBoottimeNs), trStart},
		"rss": {unsafe.Offsetof(r.RssPages), trRSS}, "comm": {unsafe.Offsetof(r.Comm), trComm}, "size": {unsafe.Sizeof(r), trSize},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: C offset %d, decoder uses %d", name, pair[0], pair[1])
		}
	}
}

// The iterator's rows say what /proc says about the same processes: a
// sleeping child, this (multi-threaded) test process and kthreadd.
func TestTaskIteratorAgreesWithProc(t *testing.T) {
	testbus.Privileged(t)
	it, err := openTaskIter()
	if err != nil {
		t.Fatalf("task iterator on this kernel: %v", err)
	}
	defer it.Close()
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	for i := 0; ; i++ { // until it sleeps
		if id, err := ReadIdentity("/proc", uint32(child.Process.Pid)); err == nil && id.Comm == "sleep" {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child.Process.Pid)); strings.Contains(string(st), ") S ") {
				break
			}
		}
		if i == 200 {
			t.Fatal("child never slept")
		}
		time.Sleep(10 * time.Millisecond)
	}
	procs, err := it.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[uint32]Process{}
	for _, p := range procs {
		if _, dup := byPID[p.PID]; dup {
			t.Errorf("pid %d listed twice", p.PID)
		}
		byPID[p.PID] = p
	}
	table, _ := NewProcessTable("/proc")
	for _, pid := range []uint32{uint32(child.Process.Pid), uint32(os.Getpid()), 2} {
		h, err := table.fs.Proc(int(pid))
		if err != nil {
			t.Fatal(err)
		}
		want, err := table.readStat(h)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := byPID[pid]
		if !ok {
			t.Errorf("pid %d missing from the iterator's %d processes", pid, len(procs))
			continue
		}
		if got.PPID != want.PPID || got.Comm != want.Comm || got.StartTime != want.StartTime ||
			got.Threads != want.Threads || got.KernelThread != want.KernelThread || got.Nice != want.Nice {
			t.Errorf("pid %d: iterator %+v, /proc %+v", pid, got, want)
		}
		if d := int64(got.RSSBytes) - int64(want.RSSBytes); d > 1<<20 || d < -(1<<20) {
			t.Errorf("pid %d: rss %d from the iterator, %d from /proc", pid, got.RSSBytes, want.RSSBytes)
		}
		// Ticks vs the scheduler's ns: a few ticks apart at most.
		if d := int64(got.cpuTicks) - int64(want.cpuTicks); d > 5 || d < -5 {
			t.Errorf("pid %d: cpu %d ticks from the iterator, %d from /proc", pid, got.cpuTicks, want.cpuTicks)
		}
	}
	if got := byPID[uint32(child.Process.Pid)]; got.State != "S" || got.UID != uint32(os.Getuid()) {
		t.Errorf("sleeping child: state %q uid %d", got.State, got.UID)
	}
}

// The busy-loop test of the process table, on the iterator.
func TestProcessTableOnTheIteratorFindsABusyLoop(t *testing.T) {
	testbus.Privileged(t)
	table, err := startProcessesIter(context.TODO(), &Env{ProcRoot: "/proc"})
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	burn := exec.Command("sh", "-c", "while :; do :; done")
	if err := burn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { burn.Process.Kill(); burn.Wait() }()
	// The machine is shared with other busy tests: the loop must be near
	// the top, with its share measured, not necessarily first.
	list, err := table.(*ProcessTable).List(ListOptions{SortBy: "cpu", Limit: 8})
	if err != nil {
		t.Fatal(err)
	}
	var p *Process
	for i := range list {
		if list[i].PID == uint32(burn.Process.Pid) {
			p = &list[i]
		}
	}
	if p == nil || p.CPUPercent < 20 {
		t.Fatalf("the busy loop is not among the %d busiest: %+v", len(list), list)
	}
	if p.User == "" || p.Cmdline != "sh -c while :; do :; done" || p.State != "R" {
		t.Errorf("details of the busy loop: %+v", p)
	}
	uid := uint32(os.Getuid())
	mine, err := table.(*ProcessTable).List(ListOptions{SortBy: "memory", UID: &uid})
	if err != nil || len(mine) == 0 {
		t.Fatalf("by uid: %v, %d rows", err, len(mine))
	}
	for _, p := range mine {
		if p.UID != uid {
			t.Errorf("uid filter let through %+v", p)
		}
	}
}

// The top-N selection returns what a full sort would.
func TestTopProcessesSelectsWhatASortWould(t *testing.T) {
	procs := make([]Process, 500)
	for i := range procs {
		procs[i] = Process{PID: uint32(i + 1), CPUPercent: float64((i * 7919) % 37), RSSBytes: uint64((i * 104729) % 101)}
	}
	for _, by := range []string{"cpu", "memory"} {
		for _, limit := range []int{1, 5, 10, 60, 0} {
			want := append([]Process(nil), procs...)
			sortProcesses(want, by)
			if limit > 0 {
				want = want[:limit]
			}
			got := topProcesses(append([]Process(nil), procs...), by, limit)
			if len(got) != len(want) {
				t.Fatalf("%s/%d: %d rows, want %d", by, limit, len(got), len(want))
			}
			for i := range got {
				if got[i].PID != want[i].PID {
					t.Fatalf("%s/%d: row %d is pid %d, want %d", by, limit, i, got[i].PID, want[i].PID)
				}
			}
		}
	}
}

// Ranked on the iterator: one snapshot, both rankings, uids and names set.
func TestRankedOnTheIteratorFindsABusyLoopAndTheLargest(t *testing.T) {
	testbus.Privileged(t)
	run, err := startProcessesIter(context.TODO(), &Env{ProcRoot: "/proc"})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	table := run.(*ProcessTable)
	burn := exec.Command("sh", "-c", "while :; do :; done")
	if err := burn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { burn.Process.Kill(); burn.Wait() }()
	byCPU, byMem, err := table.Ranked(8, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range byCPU {
		found = found || (p.PID == uint32(burn.Process.Pid) && p.CPUPercent >= 20 && p.User != "")
	}
	if !found || len(byMem) != 10 {
		t.Fatalf("busy loop not among the busiest %+v, or %d by memory", byCPU, len(byMem))
	}
	for i := 1; i < len(byMem); i++ {
		if byMem[i].RSSBytes > byMem[i-1].RSSBytes {
			t.Fatalf("by memory out of order: %+v", byMem)
		}
	}
}

// In a pid namespace the iterator's pids (the kernel's) would not match
// /proc: the bpf_iter variant refuses, so the ladder falls back to procfs.
func TestTaskIteratorRefusesAPidNamespace(t *testing.T) {
	testbus.Privileged(t)
	if os.Getenv("NPLLM_TEST_IN_PIDNS") == "1" {
		_, err := startProcessesIter(context.TODO(), &Env{ProcRoot: "/proc"})
		var u *Unavailable
		if !errors.As(err, &u) {
			t.Fatalf("in a pid namespace: %v, want Unavailable", err)
		}
		return
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0],
		"-test.run=^TestTaskIteratorRefusesAPidNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), "NPLLM_TEST_IN_PIDNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("inside a pid namespace: %v\n%s", err, out)
	}
}
