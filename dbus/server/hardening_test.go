package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/journal"
	"github.com/npllm/npllm/systemd/msgid"
)

// The forgery: Configure's keys used to become audit fields, so
// "caller_uid=0 method=Forged result=ok" followed the real ones.
func TestForgedConfigureLeavesOneHonestAuditRecord(t *testing.T) {
	b, d, _ := startDaemon(t)
	alice, _ := users(t)
	forged := map[string]any{"settings": map[string]string{"caller_uid": "0", "method": "Forged", "result": "ok", "OBJECT_PID": "1"}}
	res := asUser(t, b, alice, "configure", forged)
	if res.Error != api.ErrInvalidArgument {
		t.Fatalf("forged Configure: %q %s, want InvalidArgument", res.Error, res.Message)
	}
	var recs []map[string][]string
	for deadline := time.Now().Add(3 * time.Second); len(recs) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		recs = logRecords(d.Log(), "audit")
	}
	if len(recs) != 1 {
		t.Fatalf("%d audit records, want one:\n%s", len(recs), d.Log())
	}
	r := recs[0]
	want := map[string]string{"method": "Configure", "caller_uid": strconv.Itoa(int(alice.UID)),
		"result": api.ErrInvalidArgument, "message_id": msgid.Audit}
	for k, v := range want {
		if len(r[k]) != 1 || r[k][0] != v {
			t.Errorf("audit record's %s = %q, want exactly [%q]", k, r[k], v)
		}
	}
	for k, vs := range r {
		if len(vs) != 1 {
			t.Errorf("audit record repeats %s: %q", k, vs)
		}
		if k == "OBJECT_PID" || k == "Forged" {
			t.Errorf("caller data became a key: %s", k)
		}
	}
	if s := r["settings"]; len(s) != 1 || !strings.Contains(s[0], "method=Forged") || !strings.HasPrefix(s[0], `"`) {
		t.Errorf("the caller's settings are not one quoted value: %q", s)
	}
}

// A user repeating a refused call fills no log: ten lines a minute, the
// rest counted where npllmctl sensors shows it.
func TestFailedPrivilegedCallsAreRateLimitedInTheLogAndCounted(t *testing.T) {
	b, d, c := startDaemon(t)
	alice, _ := users(t)
	res := asUser(t, b, alice, "configure", map[string]any{"settings": map[string]string{"no_such_key": strings.Repeat("x", 1000)}, "times": 40})
	if res.Error != api.ErrInvalidArgument {
		t.Fatalf("Configure: %q %s", res.Error, res.Message)
	}
	time.Sleep(200 * time.Millisecond)
	recs := logRecords(d.Log(), "audit")
	if len(recs) != 10 {
		t.Errorf("%d audit lines for 40 failed calls, want 10", len(recs))
	}
	for _, r := range recs {
		if s := r["settings"]; len(s) != 1 || len(s[0]) > 300 {
			t.Errorf("a 1000-byte value was logged as %d bytes", len(s[0]))
			break
		}
	}
	waitForRefresh()
	if n := sensorCounters(t, c, "event-pipeline")["audit_denials_not_logged"]; n != 30 {
		t.Errorf("audit_denials_not_logged = %v, want 30", n)
	}
}

func TestArgumentSizesAndTheKindFilterAreBounded(t *testing.T) {
	_, _, c := startDaemon(t)
	ctx := context.Background()
	kinds := func(entries, distinct int) []string {
		var k []string
		for i := range entries {
			k = append(k, fmt.Sprintf("kind.%d", i%distinct))
		}
		return k
	}
	if _, _, err := c.GetEventsWire(ctx, 0, 10, client.EventFilter{Kinds: kinds(64, 32)}); err != nil {
		t.Errorf("32 distinct kinds (64 entries): %v", err)
	}
	if _, _, err := c.GetEventsWire(ctx, 0, 10, client.EventFilter{Kinds: kinds(33, 33)}); api.ErrorName(err) != api.ErrInvalidArgument || !strings.Contains(api.ErrorMessage(err), "33 kinds") {
		t.Errorf("33 distinct kinds: %v", err)
	}
	if _, _, err := c.GetEventsWire(ctx, 0, 10, client.EventFilter{Kinds: kinds(65, 1)}); api.ErrorName(err) != api.ErrInvalidArgument || !strings.Contains(api.ErrorMessage(err), "at most 64") {
		t.Errorf("a 65-element array: %v", err)
	}
	obj := c.Conn().Object(api.BusName, api.ObjectPath)
	for name, call := range map[string]func() error{
		"2 KiB unit name": func() error { return obj.Call(api.Interface+".GetUnit", 0, strings.Repeat("a", 2048)+".service").Err },
		"33 options": func() error {
			o := map[string]dbus.Variant{}
			for i := range 33 {
				o[strconv.Itoa(i)] = dbus.MakeVariant(i)
			}
			return obj.Call(api.Interface+".GetProcesses", 0, o).Err
		},
		"variants 6 deep": func() error {
			v := dbus.MakeVariant(uint32(1))
			for range 5 {
				v = dbus.MakeVariant(v)
			}
			return obj.Call(api.Interface+".GetProcesses", 0, map[string]dbus.Variant{"limit": v}).Err
		},
	} {
		if err := call(); api.ErrorName(err) != api.ErrInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOtherUsersIOFiguresCgroupAndSyscallRowsAreWithheld(t *testing.T) {
	b, _, c := startDaemon(t)
	alice, _ := users(t)
	ctx := context.Background()
	if err := c.SetSensorEnabled(ctx, "syscalls", true, client.CallOptions{}); err != nil {
		t.Fatal(err)
	}
	rootsProc := startVictim(t, root)
	hers := startVictim(t, alice)
	keys := func(pid uint32) []string {
		res := asUser(t, b, alice, "process-wire", pid)
		if res.Error != "" {
			t.Fatalf("alice's GetProcess(%d): %s %s", pid, res.Error, res.Message)
		}
		var k []string
		json.Unmarshal(res.Value, &k)
		return k
	}
	theirs, own := keys(rootsProc.pid), keys(hers.pid)
	for _, k := range []string{"io_read_bytes", "io_write_bytes", "cgroup", "cmdline"} {
		if slices.Contains(theirs, k) {
			t.Errorf("alice sees %s of root's process: %v", k, theirs)
		}
	}
	if !slices.Contains(theirs, "io_withheld") {
		t.Errorf("root's process as alice sees it does not say its I/O is withheld: %v", theirs)
	}
	for _, k := range []string{"io_read_bytes", "io_write_bytes", "cmdline"} {
		if !slices.Contains(own, k) {
			t.Errorf("alice does not see %s of her own process: %v", k, own)
		}
	}
	// Root's processes make syscalls (this test, npllmd's clients): root
	// sees rows of uid 0, alice none.
	helper := exec.Command(bin("self"))
	helper.Env = append(os.Environ(), "NPLLM_TEST_HELPER=flock-fail")
	if err := helper.Run(); err != nil {
		t.Fatal(err)
	}
	rows, err := c.GetSyscallStats(ctx, client.SyscallQuery{Limit: 1000})
	if err != nil || !slices.ContainsFunc(rows, func(r api.SyscallStat) bool { return r.UID == 0 }) {
		t.Fatalf("root's GetSyscallStats has no rows of root: %v %d rows", err, len(rows))
	}
	res := asUser(t, b, alice, "syscall-pids", "-")
	var uids []uint32
	json.Unmarshal(res.Value, &uids)
	if res.Error != "" {
		t.Fatalf("alice's GetSyscallStats: %s %s", res.Error, res.Message)
	}
	for _, u := range uids {
		if u != alice.UID {
			t.Errorf("alice sees syscall rows of uid %d", u)
			break
		}
	}
}

// fillJournal writes n process.exit events into a journal at dir before
// npllmd opens it.
func fillJournal(t testing.TB, dir string, n int) {
	t.Helper()
	j, err := journal.Open(dir, journal.Options{MaxEvents: n + 100000})
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(time.Now().UnixNano())
	for i := 0; i < n; {
		ev := sensors.Event{TimeNS: now - uint64(n-i)*1000, Kind: "process.exit", PID: uint32(1000 + i%30000), UID: 1000, HasUID: true, Comm: "filler"}
		if j.Append(ev) {
			i++
		} else if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// Eight users' clients (three calls in flight each) asking for 32 kinds
// over a large journal for 20 s, half of them for none it holds (the scan
// that used to read everything), half for the kind it is full of (1,000
// events an answer): npllmd answers Ping and GetAll quickly, turns the
// surplus away with Busy, and keeps committing events.
func TestEightClientsHammeringGetEventsLeavePingAndGetAllFast(t *testing.T) {
	const events, seconds = 300000, 20
	loadBefore := loadAverage(t) // before this test's own load
	b := startBus(t)
	start := time.Now()
	fillJournal(t, filepath.Join(b.Dir, "state"), events)
	t.Logf("journal of %d events written in %v", events, time.Since(start).Round(time.Millisecond))
	_, c := startDaemonOn(t, b)
	alice, _ := users(t)
	ctx := context.Background()
	var kinds []string
	for _, k := range api.EventKinds {
		if k != "process.exit" && len(kinds) < 32 {
			kinds = append(kinds, k)
		}
	}
	for i := 0; len(kinds) < 32; i++ {
		kinds = append(kinds, fmt.Sprintf("none.%d", i))
	}
	seqBefore := sensorCounters(t, c, "event-pipeline")["journal_last_seq"]
	probe := func(d time.Duration) (ping, getall []time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			t0 := time.Now()
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			t1 := time.Now()
			if _, err := c.Status(ctx); err != nil {
				t.Fatalf("GetAll: %v", err)
			}
			ping, getall = append(ping, t1.Sub(t0)), append(getall, time.Since(t1))
			exec.Command("/bin/true").Run() // events to commit
		}
		return ping, getall
	}
	p99 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)*99/100]
	}
	// The same probe without the load first: this machine is shared, and
	// its own latency is the floor of any figure here.
	idlePing, idleGetAll := probe(3 * time.Second)

	var wg sync.WaitGroup
	results := make([]hammerResult, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := kinds
			if i%2 == 0 { // half ask for a kind the journal is full of: 1,000-event answers
				k = append([]string{"process.exit"}, kinds[1:]...)
			}
			res := asUser(t, b, alice, "hammer", hammerArgs{Seconds: seconds, Workers: 3, Kinds: k})
			if res.Error != "" {
				t.Errorf("hammer %d: %s %s", i, res.Error, res.Message)
			}
			json.Unmarshal(res.Value, &results[i])
		}()
	}
	time.Sleep(time.Second) // let them start
	ping, getall := probe((seconds - 3) * time.Second)
	wg.Wait()
	var total hammerResult
	for _, r := range results {
		total.OK += r.OK
		total.Busy += r.Busy
		total.Other += r.Other
		if r.OtherErr != "" {
			total.OtherErr = r.OtherErr
		}
	}
	t.Logf("idle: Ping p99 %v, GetAll p99 %v; load average before the test %.1f on %d CPUs", p99(idlePing), p99(idleGetAll), loadBefore, runtime.NumCPU())
	t.Logf("%d GetEvents answered, %d Busy, %d other; Ping p50 %v p99 %v, GetAll p50 %v p99 %v (%d samples)",
		total.OK, total.Busy, total.Other, ping[len(ping)/2], p99(ping), getall[len(getall)/2], p99(getall), len(ping))
	if total.Other > 0 {
		t.Errorf("%d GetEvents failed otherwise than Busy: %s", total.Other, total.OtherErr)
	}
	if total.OK == 0 || total.Busy == 0 {
		t.Errorf("answered %d, Busy %d: want both", total.OK, total.Busy)
	}
	// Goal: ≤ 50 ms. On a machine other jobs already load beyond its
	// cores (shared CI, several sessions' builds) the probe itself waits
	// for a CPU, so there only a hard bound is asserted: npllmd keeps
	// answering within 250 ms.
	busy := loadBefore > float64(runtime.NumCPU())
	for _, m := range []struct {
		name       string
		idle, load []time.Duration
	}{{"Ping", idlePing, ping}, {"GetAll", idleGetAll, getall}} {
		p, bound := p99(m.load), max(50*time.Millisecond, 2*p99(m.idle))
		switch {
		case p > 250*time.Millisecond:
			t.Errorf("%s p99 %v under load: npllmd stalls", m.name, p)
		case p > bound && !busy:
			t.Errorf("%s p99 %v under load, goal %v", m.name, p, bound)
		case p > bound:
			t.Logf("%s p99 %v under load: goal %v NOT MET, on a machine already loaded beyond its %d CPUs", m.name, p, bound, runtime.NumCPU())
		}
	}
	waitForRefresh()
	if after := sensorCounters(t, c, "event-pipeline")["journal_last_seq"]; after <= seqBefore {
		t.Errorf("no commits during the load: last seq %d → %d", seqBefore, after)
	}
}

// loadAverage is the 1-minute load average.
func loadAverage(t *testing.T) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	return f
}

// GetProcess shows a program's learned baseline to the same callers as
// GetBaseline: the process's owner and root, not another user.
func TestAnotherUsersBaselineIsNotShownByGetProcess(t *testing.T) {
	b, _, c := startDaemon(t)
	alice, _ := users(t)
	ctx := context.Background()
	// A copy of sleep under a name of this test's own: its comm is the name.
	name := fmt.Sprintf("blpriv%d", os.Getpid()%1000000)
	prog := filepath.Join(t.TempDir(), name)
	data, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 { // finished runs teach root's baseline
		if err := exec.Command(prog, "0").Run(); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command(prog, "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := sleeper.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		p, err := c.GetProcess(ctx, uint32(pid))
		if err == nil && p.Baseline != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("root never saw the baseline of its own %s: %v %+v", name, err, p)
		}
	}
	res := asUser(t, b, alice, "process-wire", pid)
	if res.Error != "" {
		t.Fatalf("alice's GetProcess(%d): %s %s", pid, res.Error, res.Message)
	}
	var keys []string
	json.Unmarshal(res.Value, &keys)
	if slices.Contains(keys, "baseline") {
		t.Errorf("alice sees the baseline of root's %s: %v", name, keys)
	}
}
