package testbus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MemoryCgroup makes a cgroup limited to limit bytes of memory — cgroup v2
// when its memory controller is available, else v1 — with swap allowed
// only when swap is true (OOM tests want kills, pressure tests swapping),
// removes it when the test ends, and returns a function that moves a pid
// into it.
func MemoryCgroup(t testing.TB, limit int64, swap bool) func(pid int) {
	t.Helper()
	name := fmt.Sprintf("npllm-test-mem-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	write := func(path, value string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	var dir string
	if ctrl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(ctrl), "memory") {
		write("/sys/fs/cgroup/cgroup.subtree_control", "+memory")
		dir = filepath.Join("/sys/fs/cgroup", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(dir, "memory.max"), strconv.FormatInt(limit, 10))
		write(filepath.Join(dir, "memory.swap.max"), map[bool]string{false: "0", true: "max"}[swap])
	} else {
		dir = filepath.Join("/sys/fs/cgroup/memory", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("no cgroup v2 memory controller and no v1 one: %v", err)
		}
		write(filepath.Join(dir, "memory.limit_in_bytes"), strconv.FormatInt(limit, 10))
		os.WriteFile(filepath.Join(dir, "memory.swappiness"), []byte(map[bool]string{false: "0", true: "60"}[swap]), 0o644)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", dir)
	})
	return func(pid int) { write(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)) }
}

// ProcRSSKiB is a process's resident memory (VmRSS), 0 if unknown.
func ProcRSSKiB(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseUint(strings.Fields(line)[1], 10, 64)
			return kb
		}
	}
	return 0
}

// ProcCPU is a process's CPU time: the sum of its threads' schedstat run
// times (ns, finer than the 10 ms ticks of /proc/PID/stat); 0 when the
// process is gone.
func ProcCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	var sum time.Duration
	for _, p := range tasks {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that just ended
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}
