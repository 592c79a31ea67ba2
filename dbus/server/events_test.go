package server_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// wireEvents calls GetEvents with a raw filter and returns the events as
// sent: these tests check the wire format itself (the typed client's
// decoding is tested in dbus/api).
func wireEvents(c *client.Client, after uint64, max uint32, filter map[string]any) (uint64, []map[string]dbus.Variant, error) {
	var last uint64
	var evs []map[string]dbus.Variant
	err := c.Conn().Object(api.BusName, api.ObjectPath).Call(api.Interface+".GetEvents", 0, after, max, api.Options(filter)).Store(&last, &evs)
	return last, evs, err
}

// allEvents pages through GetEvents until it has seen what the daemon has
// committed, waiting up to 5 s for until to hold.
func allEvents(t *testing.T, c *client.Client, filter map[string]any, until func([]map[string]dbus.Variant) bool) []map[string]dbus.Variant {
	t.Helper()
	var out []map[string]dbus.Variant
	var seq uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		last, evs, err := wireEvents(c, seq, 1000, filter)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		seq = last
		if len(evs) == 0 {
			if until(out) || time.Now().After(deadline) {
				return out
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func sensorRow(t *testing.T, c *client.Client, name string) api.SensorStatus {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sensors {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sensor %q", name)
	return api.SensorStatus{}
}

// sensorCounters reads one sensor's counters from GetSensorDetails.
func sensorCounters(t testing.TB, c *client.Client, name string) map[string]uint64 {
	t.Helper()
	det, err := c.GetSensorDetails(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, ok := det[name]
	if !ok {
		t.Fatalf("no sensor %q in GetSensorDetails", name)
	}
	return d.Counters
}

func waitForRefresh() { time.Sleep(1200 * time.Millisecond) }

func TestProcessSensorRunsOnEBPFAndSaysWhyBetterVariantsWereSkipped(t *testing.T) {
	_, _, c := startDaemon(t)
	if row := sensorRow(t, c, "process"); row.State != "running" || row.Variant != "tp_btf" {
		t.Fatalf("process sensor: %+v", row)
	}
	_, _, c = startDaemon(t, "--force-variant=process=raw_tp")
	row := sensorRow(t, c, "process")
	skipped, _ := row.Details["skipped"].Value().([]string)
	if row.Variant != "raw_tp" || len(skipped) != 1 || !strings.HasPrefix(skipped[0], "tp_btf: ") {
		t.Fatalf("forced raw_tp: variant %q skipped %q", row.Variant, skipped)
	}
}

func TestEveryOneOf300ExecsIsJournaledWithExitCodesAndSignals(t *testing.T) {
	_, _, c := startDaemon(t)
	pids := map[uint32]bool{}
	for i := 0; i < 300; i++ {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids[uint32(cmd.Process.Pid)] = true
	}
	seven := exec.Command("sh", "-c", "exit 7")
	seven.Run()
	segv := exec.Command("sh", "-c", "kill -SEGV $$")
	segv.Run()
	want := func(evs []map[string]dbus.Variant) bool { return exitOf(evs, segv.Process.Pid) != nil }
	evs := allEvents(t, c, map[string]any{"kind": []string{"process.exec", "process.exit"}}, want)
	for _, ev := range evs {
		if ev["kind"].Value() == "process.exec" {
			delete(pids, ev["pid"].Value().(uint32))
		}
	}
	if len(pids) > 0 {
		t.Errorf("%d of 300 execs missing from the journal", len(pids))
	}
	if ev := exitOf(evs, seven.Process.Pid); ev == nil || ev["exit_code"].Value() != int32(7) {
		t.Errorf("sh -c 'exit 7': %v", ev)
	}
	if ev := exitOf(evs, segv.Process.Pid); ev == nil || ev["signal"].Value() != uint32(11) {
		t.Errorf("killed by SIGSEGV: %v", ev)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i]["seq"].Value().(uint64) <= evs[i-1]["seq"].Value().(uint64) {
			t.Fatalf("seq not increasing: %v then %v", evs[i-1]["seq"], evs[i]["seq"])
		}
	}
}

func exitOf(evs []map[string]dbus.Variant, pid int) map[string]dbus.Variant {
	for _, ev := range evs {
		if ev["kind"].Value() == "process.exit" && ev["pid"].Value() == uint32(pid) {
			return ev
		}
	}
	return nil
}

func TestForcedProcfsFallbackStillReportsExecAndExit(t *testing.T) {
	_, _, c := startDaemon(t, "--force-variant=process=procfs")
	row := sensorRow(t, c, "process")
	skipped, _ := row.Details["skipped"].Value().([]string)
	if row.Variant != "procfs" || len(skipped) != 2 || !strings.Contains(skipped[0], "forced") {
		t.Fatalf("procfs variant: %q skipped %q", row.Variant, skipped)
	}
	cmd := exec.Command("sleep", "0.5")
	cmd.Run()
	pid := uint32(cmd.Process.Pid)
	evs := allEvents(t, c, map[string]any{"pid": pid}, func(evs []map[string]dbus.Variant) bool { return len(evs) >= 2 })
	kinds := map[string]bool{}
	for _, ev := range evs {
		kinds[ev["kind"].Value().(string)] = true
	}
	if !kinds["process.exec"] || !kinds["process.exit"] {
		t.Errorf("procfs fallback for pid %d: %v", pid, evs)
	}
}

func TestJournalSurvivesKill9AndSeqContinues(t *testing.T) {
	b := testbus.ForTest(t)
	state := filepath.Join(t.TempDir(), "state")
	d := b.DaemonForTest(t, bin("npllmd"), "--state-dir="+state)
	conn, _ := b.Connect()
	defer conn.Close()
	c := client.NewClient(conn)
	marker := exec.Command("sh", "-c", "exit 42")
	marker.Run()
	before := allEvents(t, c, nil, func(evs []map[string]dbus.Variant) bool { return exitOf(evs, marker.Process.Pid) != nil })
	if exitOf(before, marker.Process.Pid) == nil {
		t.Fatal("marker exit not journaled")
	}
	lastBefore := before[len(before)-1]["seq"].Value().(uint64)
	d.Cmd.Process.Signal(syscall.SIGKILL)
	d.Wait(5 * time.Second)

	b.DaemonForTest(t, bin("npllmd"), "--state-dir="+state)
	exec.Command("true").Run()
	after := allEvents(t, c, nil, func(evs []map[string]dbus.Variant) bool {
		return len(evs) > 0 && evs[len(evs)-1]["seq"].Value().(uint64) > lastBefore
	})
	if ev := exitOf(after, marker.Process.Pid); ev == nil || ev["exit_code"].Value() != int32(42) {
		t.Fatal("an event read before kill -9 is gone after the restart")
	}
	seen := map[uint64]bool{}
	for _, ev := range after {
		s := ev["seq"].Value().(uint64)
		if seen[s] {
			t.Fatalf("seq %d reused", s)
		}
		seen[s] = true
	}
	if after[len(after)-1]["seq"].Value().(uint64) <= lastBefore {
		t.Fatal("no new events after the restart")
	}
}

func TestStormBeyondTheQueueCountsDropsAndDaemonKeepsAnswering(t *testing.T) {
	_, d, c := startDaemon(t, "--event-queue=16")
	// ~3000 short processes as fast as the shell can fork them.
	if out, err := exec.Command("sh", "-c", "i=0; while [ $i -lt 3000 ]; do /bin/true & i=$((i+1)); done; wait").CombinedOutput(); err != nil {
		t.Fatalf("storm: %v %s", err, out)
	}
	waitForRefresh()
	cnt := sensorCounters(t, c, "event-pipeline")
	dropped, queued := cnt["dropped_queue"], cnt["queued"]
	if dropped == 0 {
		t.Errorf("no drops counted with a 16-event queue after 3000 processes (queued %d)", queued)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("daemon stopped answering: %v", err)
	}
	if kb := testbus.ProcRSSKiB(d.Cmd.Process.Pid); kb > 200*1024 {
		t.Errorf("npllmd RSS %d kB after the storm", kb)
	}
	t.Logf("storm: %d queued, %d dropped at the queue", queued, dropped)
}

func TestOtherUsersSeeEventsButNotTheirArguments(t *testing.T) {
	b, _, c := startDaemon(t)
	alice, _ := users(t)
	mine := alice.Command(b, "/bin/echo", "alice-secret")
	mine.Run()
	theirs := exec.Command("/bin/echo", "root-secret")
	theirs.Run()
	allEvents(t, c, nil, func(evs []map[string]dbus.Variant) bool { return exitOf(evs, theirs.Process.Pid) != nil })
	out, err := alice.Command(b, bin("npllmctl"), "--json", "events", "--kind", "process.exec", "--limit", "1000", "--after", "1").Output()
	if err != nil {
		t.Fatalf("npllmctl events as alice: %v", err)
	}
	text := string(out)
	if !strings.Contains(text, "alice-secret") {
		t.Errorf("alice does not see her own exec's argv")
	}
	if strings.Contains(text, "root-secret") {
		t.Errorf("alice sees root's argv")
	}
	if !strings.Contains(text, `"pid": `+strconv.Itoa(theirs.Process.Pid)) && !strings.Contains(text, `"pid":`+strconv.Itoa(theirs.Process.Pid)) {
		t.Errorf("alice does not see that root's process ran at all")
	}
}
