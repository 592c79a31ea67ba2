package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// Kernel tests: real eBPF programs see real OOM kills, TCP connections,
// signals, syscalls and block I/O, and the daemon serves what they saw.

// flockFailures is how many failing flock(2) calls the flock-fail helper
// makes: a count nothing else on the machine will produce for that pid.
const flockFailures = 333

// runKernelHelper runs helper processes that need no bus.
func runKernelHelper(op string) int {
	switch op {
	case "hog":
		// Wait until the test has put us in a memory-limited cgroup, then
		// touch memory until the OOM killer ends us.
		fmt.Fscanln(os.Stdin)
		var chunks [][]byte
		for i := 0; i < 4096; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			chunks = append(chunks, b)
		}
		fmt.Fprintln(os.Stderr, "hog survived 4 GiB:", len(chunks))
		return 1
	case "footprint":
		// Hold NPLLM_FOOTPRINT_MIB of touched memory for NPLLM_FOOTPRINT_MS.
		mib, _ := strconv.Atoi(os.Getenv("NPLLM_FOOTPRINT_MIB"))
		ms, _ := strconv.Atoi(os.Getenv("NPLLM_FOOTPRINT_MS"))
		b := make([]byte, mib<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		b[len(b)-1] = 2
		return 0
	case "thrash":
		// Two threads each touch 64 MiB over and over for 20 s: in a
		// 32 MiB cgroup with swap, every pass swaps, and tasks stall on
		// memory (PSI). It starts once the test has moved it into the
		// cgroup.
		fmt.Fscanln(os.Stdin)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := make([]byte, 64<<20)
				for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
					for j := 0; j < len(b); j += 4096 {
						b[j]++
					}
				}
			}()
		}
		wg.Wait()
		return 0
	case "flock-fail":
		for range flockFailures {
			syscall.Syscall(syscall.SYS_FLOCK, ^uintptr(0), syscall.LOCK_EX, 0) // fd -1: EBADF
		}
		return 0
	}
	return 2
}

// memoryCgroup is a memory-limited cgroup without swap (OOM kills).
func memoryCgroup(t testing.TB, limit int64) func(pid int) {
	return testbus.MemoryCgroup(t, limit, false)
}

// zramSwap gives the machine 512 MiB of compressed swap in RAM for one
// test (memory pressure needs swapping, not OOM kills), unless it already
// has swap.
func zramSwap(t testing.TB) {
	t.Helper()
	if swaps, _ := os.ReadFile("/proc/swaps"); strings.Count(string(swaps), "\n") > 1 {
		return
	}
	size, err := os.ReadFile("/sys/block/zram0/disksize")
	if err != nil || strings.TrimSpace(string(size)) != "0" {
		t.Fatalf("no swap and no free zram device to make some (memory pressure needs swap): %v %q", err, size)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	if err := os.WriteFile("/sys/block/zram0/disksize", []byte("512M"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("mkswap", "/dev/zram0")
	run("swapon", "/dev/zram0")
	t.Cleanup(func() {
		exec.Command("swapoff", "/dev/zram0").Run()
		os.WriteFile("/sys/block/zram0/reset", []byte("1"), 0o644)
	})
}

// startHog starts the hog helper in a fresh memory-limited cgroup and lets
// it allocate; it returns the process, already waited for.
func startHog(t testing.TB, addToCgroup func(int)) *exec.Cmd {
	t.Helper()
	hog := exec.Command(bin("self"))
	hog.Env = append(os.Environ(), "NPLLM_TEST_HELPER=hog")
	in, err := hog.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	addToCgroup(hog.Process.Pid)
	io.WriteString(in, "go\n")
	err = hog.Wait()
	if ws, ok := hog.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog was not OOM-killed: %v", err)
	}
	return hog
}

func TestRealOOMKillInAMemoryLimitedCgroupIsJournaled(t *testing.T) {
	b, _, c := startDaemon(t)
	if row := sensorRow(t, c, "oom"); row.Variant != "tp_btf" {
		t.Fatalf("oom sensor: %+v", row)
	}
	hog := startHog(t, memoryCgroup(t, 48<<20))
	pid := uint32(hog.Process.Pid)
	evs := allEvents(t, c, map[string]any{"kind": "oom.kill", "pid": pid}, func(evs []map[string]dbus.Variant) bool { return len(evs) > 0 })
	if len(evs) != 1 {
		t.Fatalf("oom.kill events for pid %d: %v", pid, evs)
	}
	ev := evs[0]
	if ev["comm"].Value() != "self" || ev["uid"].Value() != uint32(0) {
		t.Errorf("comm %v uid %v", ev["comm"], ev["uid"])
	}
	if rss := ev["rss_bytes"].Value().(uint64); rss < 16<<20 || rss > 64<<20 {
		t.Errorf("rss_bytes %d, want about the 48 MiB limit", rss)
	}
	if cg := ev["cgroup"].Value().(string); !strings.Contains(cg, "npllm-test-mem") {
		t.Errorf("cgroup %q", cg)
	}
	// npllmctl shows it, one JSON object per line, with --json last.
	out, err := ctl(b, "events", "--kind", "oom.kill", "--after", "0", "--limit", "1000", "--json").Output()
	if err != nil {
		t.Fatalf("npllmctl events --kind oom.kill --json: %v", err)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["kind"] != "oom.kill" {
			t.Errorf("--kind oom.kill printed %v", m["kind"])
		}
		found = found || (m["pid"] == float64(pid) && m["comm"] == "self")
	}
	if !found {
		t.Errorf("npllmctl events --kind oom.kill --json lacks pid %d:\n%s", pid, out)
	}
}

// Without eBPF the kmsg variant reads the kernel's own OOM report.
func TestOOMKillFromKmsgWhenForced(t *testing.T) {
	_, _, c := startDaemon(t, "--force-variant=oom=kmsg")
	if row := sensorRow(t, c, "oom"); row.Variant != "kmsg" {
		t.Fatalf("oom sensor: %+v", row)
	}
	hog := startHog(t, memoryCgroup(t, 48<<20))
	pid := uint32(hog.Process.Pid)
	evs := allEvents(t, c, map[string]any{"kind": "oom.kill", "pid": pid}, func(evs []map[string]dbus.Variant) bool { return len(evs) > 0 })
	if len(evs) != 1 || evs[0]["comm"].Value() != "self" || evs[0]["rss_bytes"].Value().(uint64) < 16<<20 {
		t.Fatalf("oom.kill events for pid %d: %v", pid, evs)
	}
}

func TestTCPConnectionOverLoopbackIsJournaledWithPortsAndBytes(t *testing.T) {
	_, _, c := startDaemon(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(conn, buf); err != nil {
			served <- err
			return
		}
		_, err = conn.Write(make([]byte, 500))
		served <- err
	}()
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(make([]byte, 1000))
	io.ReadFull(conn, make([]byte, 500))
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	conn.Close()
	listenPort := uint32(ln.Addr().(*net.TCPAddr).Port)
	clientPort := uint32(conn.LocalAddr().(*net.TCPAddr).Port)

	find := func(evs []map[string]dbus.Variant, kind string, sport, dport uint32) map[string]dbus.Variant {
		for _, ev := range evs {
			if ev["kind"].Value() == kind && ev["sport"].Value() == sport && ev["dport"].Value() == dport {
				return ev
			}
		}
		return nil
	}
	kinds := map[string]any{"kind": []string{"tcp.connect", "tcp.accept", "tcp.close"}}
	evs := allEvents(t, c, kinds, func(evs []map[string]dbus.Variant) bool {
		return find(evs, "tcp.close", clientPort, listenPort) != nil && find(evs, "tcp.close", listenPort, clientPort) != nil
	})
	connect := find(evs, "tcp.connect", clientPort, listenPort)
	if connect == nil || connect["pid"].Value() != uint32(os.Getpid()) || connect["daddr"].Value() != "127.0.0.1" || connect["family"].Value() != "ipv4" {
		t.Errorf("tcp.connect: %v", connect)
	}
	if accept := find(evs, "tcp.accept", listenPort, clientPort); accept == nil {
		t.Errorf("no tcp.accept on port %d", listenPort)
	}
	client := find(evs, "tcp.close", clientPort, listenPort)
	if client == nil || client["tx_bytes"].Value() != uint64(1000) || client["rx_bytes"].Value() != uint64(500) || client["pid"].Value() != uint32(os.Getpid()) {
		t.Errorf("client tcp.close: %v", client)
	}
	server := find(evs, "tcp.close", listenPort, clientPort)
	if server == nil || server["tx_bytes"].Value() != uint64(500) || server["rx_bytes"].Value() != uint64(1000) || server["pid"].Value() != uint32(os.Getpid()) {
		t.Errorf("server tcp.close: %v", server)
	}
	if d, _ := client["duration_ns"].Value().(uint64); d == 0 || d > uint64(time.Minute) {
		t.Errorf("duration_ns %d", d)
	}
}

func TestFatalSignalsAreJournaledWithSenderAndTarget(t *testing.T) {
	_, _, c := startDaemon(t)
	victim := exec.Command("sleep", "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	victim.Process.Signal(syscall.SIGTERM)
	victim.Wait()
	hup := exec.Command("sleep", "60")
	hup.Start()
	hup.Process.Signal(syscall.SIGHUP) // not a signal the sensor reports
	hup.Wait()
	pid := uint32(victim.Process.Pid)
	evs := allEvents(t, c, map[string]any{"kind": "signal.sent"}, func(evs []map[string]dbus.Variant) bool {
		for _, ev := range evs {
			if ev["target_pid"].Value() == pid {
				return true
			}
		}
		return false
	})
	var got map[string]dbus.Variant
	for _, ev := range evs {
		switch ev["target_pid"].Value() {
		case pid:
			got = ev
		case uint32(hup.Process.Pid):
			t.Errorf("SIGHUP was reported: %v", ev)
		}
	}
	if got == nil || got["signal"].Value() != int32(15) || got["sender_pid"].Value() != uint32(os.Getpid()) ||
		got["target_comm"].Value() != "sleep" || got["code"].Value() != int32(0) {
		t.Errorf("signal.sent: %v", got)
	}
}

func TestSyscallSensorIsOffUntilRootSwitchesItOnThenCountsErrors(t *testing.T) {
	b, d, c := startDaemon(t)
	ctx := context.Background()
	if row := sensorRow(t, c, "syscalls"); row.State != "disabled" {
		t.Fatalf("syscalls sensor should be off by default: %+v", row)
	}
	if _, err := c.GetSyscallStats(ctx, client.SyscallQuery{}); api.ErrorName(err) != api.ErrNotSupported || !strings.Contains(api.ErrorMessage(err), "switched off") {
		t.Fatalf("stats while off: %v", err)
	}
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	res := asUser(t, b, alice, "act", actArgs{Method: "SetSensorEnabled", Value: "syscalls", Verb: "on"})
	if res.Error != api.ErrInteractiveAuthorizationRequired && res.Error != api.ErrNotAuthorized {
		t.Fatalf("a user switched the syscall sensor on: %+v", res)
	}
	if row := sensorRow(t, c, "syscalls"); row.State != "disabled" {
		t.Fatalf("after refusal: %+v", row)
	}
	if err := c.Conn().Object(api.BusName, api.ObjectPath).Call(api.Interface+".SetSensorEnabled", 0, "nonsense", true, map[string]dbus.Variant{}).Err; api.ErrorName(err) != api.ErrInvalidArgument {
		t.Fatalf("unknown sensor: %v", err)
	}
	if err := c.Conn().Object(api.BusName, api.ObjectPath).Call(api.Interface+".SetSensorEnabled", 0, "syscalls", true, map[string]dbus.Variant{}).Err; err != nil {
		t.Fatalf("root: %v", err)
	}
	helper := exec.Command(bin("self"))
	helper.Env = append(os.Environ(), "NPLLM_TEST_HELPER=flock-fail")
	if err := helper.Run(); err != nil {
		t.Fatal(err)
	}
	rows, err := c.GetSyscallStats(ctx, client.SyscallQuery{PID: uint32(helper.Process.Pid), Syscall: "flock"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("rows for the helper's flock: %v", rows)
	}
	r := rows[0]
	if r.Count != uint64(flockFailures) || r.Errors != uint64(flockFailures) || r.Errnos["EBADF"] != flockFailures || r.Comm != "self" {
		t.Errorf("flock row: %v", r)
	}
	if _, err := c.GetSyscallStats(ctx, client.SyscallQuery{Syscall: "frobnicate"}); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("unknown syscall name: %v", err)
	}
	// npllmctl shows the same row.
	out, err := ctl(b, "syscalls", "--pid", strconv.Itoa(helper.Process.Pid)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "flock") || !strings.Contains(string(out), "EBADF=333") {
		t.Errorf("npllmctl syscalls: %v\n%s", err, out)
	}
	if err := c.Conn().Object(api.BusName, api.ObjectPath).Call(api.Interface+".SetSensorEnabled", 0, "syscalls", false, map[string]dbus.Variant{}).Err; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Log(), "sensor switched") {
		t.Error("switching a sensor was not logged")
	}
}

func TestHistogramsAreReadFromTheKernel(t *testing.T) {
	b, _, c := startDaemon(t, "--enable-sensor=runq_latency")
	ctx := context.Background()
	// Block I/O the kernel must send to the disk: direct writes and reads.
	f := filepath.Join(t.TempDir(), "io")
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+f, "bs=64k", "count=32", "oflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if out, err := exec.Command("dd", "if="+f, "of=/dev/null", "bs=64k", "iflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	for _, tc := range []struct{ name, series string }{{"runq_latency", "all"}, {"block_io_latency", "read"}, {"block_io_latency", "write"}} {
		h, err := c.GetHistogram(ctx, tc.name, tc.series)
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.name, tc.series, err)
		}
		counts := h.Counts
		var sum uint64
		for _, n := range counts {
			sum += n
		}
		if sum == 0 || sum != h.Total || len(h.BucketLow) != len(counts) {
			t.Errorf("%s/%s: %v", tc.name, tc.series, h)
		}
		if tc.name == "block_io_latency" && sum < 32 {
			t.Errorf("%s: %d samples after 32 direct requests", tc.series, sum)
		}
		if p50, p99 := h.P50, h.P99; p50 == 0 || p99 < p50 {
			t.Errorf("%s: p50 %d p99 %d", tc.name, p50, p99)
		}
	}
	if _, err := c.GetHistogram(ctx, "block_io_latency", "sideways"); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("unknown series: %v", err)
	}
	if _, err := c.GetHistogram(ctx, "nope", ""); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("unknown histogram: %v", err)
	}
	out, err := ctl(b, "hist", "runq_latency").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "runq_latency (all)") || !strings.Contains(string(out), "*") {
		t.Errorf("npllmctl hist: %v\n%s", err, out)
	}
}

// ctl runs npllmctl as root on the test bus.
func ctl(b *testbus.Bus, args ...string) *exec.Cmd {
	cmd := exec.Command(bin("npllmctl"), args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	return cmd
}
