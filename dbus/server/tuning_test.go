package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Tuning trials through the real npllmd on the private bus, with real
// polkitd and the real kernel knob vm.swappiness. Every test puts the
// original value back in Cleanup, whatever happened.

const swappinessPath = "/proc/sys/vm/swappiness"

func swappiness(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(swappinessPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// keepSwappiness restores the value at cleanup and returns it with a value
// a trial can set (different from it).
func keepSwappiness(t testing.TB) (orig int, other string) {
	t.Helper()
	orig = swappiness(t)
	t.Cleanup(func() {
		if err := os.WriteFile(swappinessPath, []byte(strconv.Itoa(orig)), 0o644); err != nil {
			t.Errorf("restore vm.swappiness: %v", err)
		}
	})
	v := 37
	if orig == v {
		v = 38
	}
	return orig, strconv.Itoa(v)
}

func waitTrial(t *testing.T, c *client.Client, id string, state string, within time.Duration) api.Trial {
	t.Helper()
	deadline := time.Now().Add(within)
	var last api.Trial
	for time.Now().Before(deadline) {
		trials, err := c.GetTrials(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range trials {
			if tr.ID == id {
				last = tr
			}
		}
		if last.State == state {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("trial %s is %q after %v, want %q (%+v)", id, last.State, within, state, last)
	return last
}

func tuningEvents(t *testing.T, c *client.Client) []api.Event {
	t.Helper()
	kinds := []string{api.KindTuningStarted, api.KindTuningRegressed, api.KindTuningReverted, api.KindTuningConfirmed, api.KindTuningEnded}
	// Events are journaled in groups every 20 ms.
	time.Sleep(100 * time.Millisecond)
	_, evs, err := c.GetEvents(context.Background(), 0, 1000, client.EventFilter{Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func kindsOf(evs []api.Event, trial string) []string {
	var out []string
	for _, e := range evs {
		if e.Tuning != nil && e.Tuning.Trial == trial {
			out = append(out, e.Kind)
		}
	}
	return out
}

func TestTrialThroughTheBusConfirmedIsKeptPastItsLease(t *testing.T) {
	_, _, c := startDaemon(t)
	orig, v := keepSwappiness(t)
	ctx := context.Background()
	id, err := c.StartTrial(ctx, client.TrialRequest{Changes: map[string]string{"vm.swappiness": v},
		Canary: 200 * time.Millisecond, Lease: 1500 * time.Millisecond, Workload: "tunewire-test"}, client.TuneCall{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strconv.Itoa(swappiness(t)); got != v {
		t.Fatalf("vm.swappiness = %s during the trial, want %s", got, v)
	}
	tr := waitTrial(t, c, id, api.TrialAwaiting, 5*time.Second)
	if len(tr.Changes) != 1 || tr.Changes[0].Old != strconv.Itoa(orig) || tr.Changes[0].New != v {
		t.Fatalf("trial changes = %+v, want %d → %s", tr.Changes, orig, v)
	}
	if err := c.ConfirmTrial(ctx, id, client.TuneCall{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Unix(0, int64(tr.LeaseEndsNS))) + 700*time.Millisecond)
	if got := strconv.Itoa(swappiness(t)); got != v {
		t.Fatalf("vm.swappiness = %s after the lease of a confirmed trial, want %s", got, v)
	}
	waitTrial(t, c, id, api.TrialConfirmed, time.Second)
	if got := kindsOf(tuningEvents(t, c), id); strings.Join(got, ",") != "tuning.started,tuning.confirmed" {
		t.Errorf("journal has %v for the trial, want started, confirmed", got)
	}
	hist, err := c.GetTrialHistory(ctx, "tunewire-test")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].ID != id || hist[0].Outcome != "confirmed" {
		t.Errorf("history = %+v, want the confirmed trial", hist)
	}
}

func TestTrialThroughTheBusUnconfirmedIsRevertedAtItsLease(t *testing.T) {
	_, _, c := startDaemon(t)
	orig, v := keepSwappiness(t)
	id, err := c.StartTrial(context.Background(), client.TrialRequest{Changes: map[string]string{"vm.swappiness": v},
		Canary: 200 * time.Millisecond, Lease: time.Second}, client.TuneCall{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strconv.Itoa(swappiness(t)); got != v {
		t.Fatalf("vm.swappiness = %s during the trial, want %s", got, v)
	}
	tr := waitTrial(t, c, id, api.TrialReverted, 5*time.Second)
	if got := swappiness(t); got != orig {
		t.Fatalf("vm.swappiness = %d after the lease, want %d back", got, orig)
	}
	if !strings.Contains(tr.Reason, "lease") {
		t.Errorf("reason %q does not name the lease", tr.Reason)
	}
	// Over: neither confirmed nor reverted again, and nobody is asked.
	for _, err := range []error{c.ConfirmTrial(context.Background(), id, client.TuneCall{}), c.RevertTrial(context.Background(), id, client.TuneCall{})} {
		if api.ErrorName(err) != api.ErrConflict {
			t.Errorf("confirm/revert of a reverted trial: %v, want %s", err, api.ErrConflict)
		}
	}
	if got := kindsOf(tuningEvents(t, c), id); strings.Join(got, ",") != "tuning.started,tuning.reverted" {
		t.Errorf("journal has %v for the trial, want started, reverted", got)
	}
}

// noTrial checks that nothing happened: the knob, the trials, the journal.
func noTrial(t *testing.T, c *client.Client, orig int) {
	t.Helper()
	if got := swappiness(t); got != orig {
		t.Errorf("vm.swappiness = %d, want %d untouched", got, orig)
	}
	trials, err := c.GetTrials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 0 {
		t.Errorf("GetTrials = %+v, want none", trials)
	}
	if evs := tuningEvents(t, c); len(evs) != 0 {
		t.Errorf("journal has tuning events %+v, want none", evs)
	}
}

func TestTrialRefusedToAUserChangesNothing(t *testing.T) {
	b, _, c := startDaemon(t)
	alice, _ := users(t)
	orig, v := keepSwappiness(t)
	// npllmctl asks with interactive authorization allowed; there is no
	// polkit agent, so polkit's auth_admin cannot be satisfied.
	cmd := alice.Command(b, bin("npllmctl"), "tune", "try", "vm.swappiness="+v, "--canary", "200ms", "--lease", "1s")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("npllmctl tune try as %s: %v, want exit status 1\n%s", alice.Name, err, out)
	}
	if !strings.Contains(string(out), "not authorized") && !strings.Contains(string(out), "authentication is required") {
		t.Errorf("npllmctl said %q, want a refusal in words", out)
	}
	// The same through a raw call without interaction: a named refusal.
	res := asUser(t, b, alice, "act", actArgs{Method: "StartTrial", Value: v})
	if res.Error != api.ErrNotAuthorized && res.Error != api.ErrInteractiveAuthorizationRequired {
		t.Errorf("StartTrial as %s: %q %q, want a polkit refusal", alice.Name, res.Error, res.Message)
	}
	noTrial(t, c, orig)
}

func TestTrialWithInvalidArgumentsIsRefusedAndChangesNothing(t *testing.T) {
	_, _, c := startDaemon(t)
	orig, v := keepSwappiness(t)
	ctx := context.Background()
	dev := ""
	if entries, _ := os.ReadDir("/sys/block"); len(entries) > 0 {
		dev = entries[0].Name()
	}
	for _, tc := range []struct {
		name    string
		changes map[string]dbus.Variant
		opts    map[string]dbus.Variant
	}{
		{"swappiness 500", map[string]dbus.Variant{"vm.swappiness": dbus.MakeVariant("500")}, nil},
		{"unknown sysctl", map[string]dbus.Variant{"vm.no_such_knob": dbus.MakeVariant("1")}, nil},
		{"sysctl not allow-listed", map[string]dbus.Variant{"kernel.panic": dbus.MakeVariant("1")}, nil},
		{"scheduler the device does not list", map[string]dbus.Variant{"block.scheduler@" + dev: dbus.MakeVariant("no-such-sched")}, nil},
		{"device path escape", map[string]dbus.Variant{"block.read_ahead_kb@../../etc": dbus.MakeVariant("256")}, nil},
		{"value of the wrong type", map[string]dbus.Variant{"vm.swappiness": dbus.MakeVariant(true)}, nil},
		{"no changes", map[string]dbus.Variant{}, nil},
		{"canary too short", map[string]dbus.Variant{"vm.swappiness": dbus.MakeVariant(v)}, map[string]dbus.Variant{"canary_ms": dbus.MakeVariant(uint32(1))}},
		{"option of the wrong type", map[string]dbus.Variant{"vm.swappiness": dbus.MakeVariant(v)}, map[string]dbus.Variant{"lease_ms": dbus.MakeVariant("10m")}},
		{"unknown metric", map[string]dbus.Variant{"vm.swappiness": dbus.MakeVariant(v)}, map[string]dbus.Variant{"watch": dbus.MakeVariant([]string{"psi.nothing"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts == nil {
				opts = map[string]dbus.Variant{}
			}
			err := c.Conn().Object(api.BusName, api.ObjectPath).CallWithContext(ctx, api.Interface+".StartTrial", 0, tc.changes, opts).Err
			if api.ErrorName(err) != api.ErrInvalidArgument {
				t.Errorf("StartTrial(%v, %v) = %v, want %s", tc.changes, opts, err, api.ErrInvalidArgument)
			}
		})
	}
	for _, method := range []string{"ConfirmTrial", "RevertTrial"} {
		err := c.Conn().Object(api.BusName, api.ObjectPath).CallWithContext(ctx, api.Interface+"."+method, 0, "0123456789abcdef", map[string]dbus.Variant{}).Err
		if api.ErrorName(err) != api.ErrNotFound {
			t.Errorf("%s of an unknown trial = %v, want %s", method, err, api.ErrNotFound)
		}
	}
	noTrial(t, c, orig)
}

func TestDaemonKilledDuringATrialIsRevertedBeforeTheNextOwnsItsName(t *testing.T) {
	state := t.TempDir()
	b, d, c := startDaemon(t, "--state-dir="+state)
	orig, v := keepSwappiness(t)
	id, err := c.StartTrial(context.Background(), client.TrialRequest{Changes: map[string]string{"vm.swappiness": v},
		Canary: time.Minute, Lease: 10 * time.Minute}, client.TuneCall{})
	if err != nil {
		t.Fatal(err)
	}
	// The journal commits every 20 ms; a kill before that would lose the
	// event (the undo set is in tuning.json regardless).
	if got := kindsOf(tuningEvents(t, c), id); len(got) != 1 {
		t.Fatalf("journal has %v before the kill, want tuning.started", got)
	}
	d.Kill() // SIGKILL: no Close, no revert
	if got := strconv.Itoa(swappiness(t)); got != v {
		t.Fatalf("vm.swappiness = %s after kill -9, want the trial's %s still", got, v)
	}
	d2 := b.DaemonForTest(t, bin("npllmd"), "--state-dir="+state)
	// DaemonForTest returns as soon as the new npllmd owns the name: the
	// revert must already have happened.
	if got := swappiness(t); got != orig {
		t.Fatalf("vm.swappiness = %d when the new npllmd owned its name, want %d back", got, orig)
	}
	if !strings.Contains(d2.Log(), id) {
		t.Errorf("the new npllmd's log does not name trial %s:\n%s", id, d2.Log())
	}
	got := kindsOf(tuningEvents(t, c), id)
	if strings.Join(got, ",") != "tuning.started,tuning.reverted" {
		t.Errorf("journal has %v for the trial, want started, reverted", got)
	}
}

func TestNpllmctlTuneListTryConfirmAsRoot(t *testing.T) {
	b, _, _ := startDaemon(t)
	orig, v := keepSwappiness(t)
	ctl := func(args ...string) []byte {
		t.Helper()
		out, err := root.Command(b, bin("npllmctl"), args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("npllmctl %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	var list struct {
		Tunables []api.Tunable `json:"tunables"`
	}
	if err := json.Unmarshal(ctl("tune", "list", "--json"), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tu := range list.Tunables {
		if tu.Name == "vm.swappiness" {
			found = true
			if tu.Current != strconv.Itoa(orig) || !tu.Available || tu.Max != 200 {
				t.Errorf("vm.swappiness row = %+v, want current %d, available, max 200", tu, orig)
			}
		}
	}
	if !found {
		t.Fatalf("tune list has no vm.swappiness: %+v", list.Tunables)
	}
	if text := string(ctl("tune", "list")); !strings.Contains(text, "vm.swappiness") {
		t.Errorf("tune list prints no vm.swappiness:\n%s", text)
	}
	var tr api.Trial
	if err := json.Unmarshal(ctl("tune", "try", "vm.swappiness="+v, "--canary", "200ms", "--lease", "5s", "--json"), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.ID == "" || strconv.Itoa(swappiness(t)) != v {
		t.Fatalf("tune try gave %+v and vm.swappiness %d, want a trial setting %s", tr, swappiness(t), v)
	}
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitTrial(t, client.NewClient(conn), tr.ID, api.TrialAwaiting, 5*time.Second)
	if out := string(ctl("tune", "confirm", tr.ID)); !strings.Contains(out, "confirmed") {
		t.Errorf("tune confirm said %q", out)
	}
	waitTrial(t, client.NewClient(conn), tr.ID, api.TrialConfirmed, time.Second)
	if strconv.Itoa(swappiness(t)) != v {
		t.Errorf("vm.swappiness = %d after confirm, want %s", swappiness(t), v)
	}
}

// A protected program whose CPU falls during the canary: the daemon's own
// metrics (program.cpu from /proc) see it, the trial is reverted, and the
// alert tuning.regressed names the figures. The fall is caused by the test
// (SIGSTOP), as a knob's effect on CPU is not reproducible here.
func TestTrialRegressionIsRevertedAndAlerted(t *testing.T) {
	_, _, c := startDaemon(t)
	orig, v := keepSwappiness(t)
	burn := burner(t, "nptune-burn")
	time.Sleep(300 * time.Millisecond)
	id, err := c.StartTrial(context.Background(), client.TrialRequest{Changes: map[string]string{"vm.swappiness": v},
		Canary: 5 * time.Second, Lease: 20 * time.Second, Every: 200 * time.Millisecond,
		Watch: []string{"program.cpu:nptune-burn"}, Workload: "nptune-burn"}, client.TuneCall{})
	if err != nil {
		t.Fatal(err)
	}
	burn.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	tr := waitTrial(t, c, id, api.TrialReverted, 4*time.Second)
	t.Logf("reverted %v after SIGSTOP: %s", time.Since(stopped).Round(time.Millisecond), tr.Reason)
	if got := swappiness(t); got != orig {
		t.Fatalf("vm.swappiness = %d after the regression, want %d back", got, orig)
	}
	if len(tr.Before) != 1 || tr.Before[0].Value < 0.2 {
		t.Errorf("before = %+v, want the burner's CPU (≥ 0.2 cores)", tr.Before)
	}
	got := kindsOf(tuningEvents(t, c), id)
	if strings.Join(got, ",") != "tuning.started,tuning.regressed,tuning.reverted" {
		t.Errorf("journal has %v for the trial, want started, regressed, reverted", got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.ActiveAlerts {
			if a.Kind == api.KindTuningRegressed && strings.Contains(a.Summary, id) {
				if !strings.Contains(a.Summary, "program.cpu") {
					t.Errorf("alert summary %q does not name the metric", a.Summary)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tuning.regressed alert for %s in %+v", id, st.ActiveAlerts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An administrator can grant tune to a user with a rule that checks the
// details npllmd passes (the changes, whether a model asked): the rule
// below allows vm.swappiness to one value only.
func TestTrialGrantedByARuleThatChecksTheDetails(t *testing.T) {
	b, _, c := startDaemon(t)
	alice, _ := users(t)
	orig, v := keepSwappiness(t)
	rule := `polkit.addRule(function(action, subject) {
  if (action.id == "org.npllm.Assistant.tune" && subject.user == "npllm-alice" &&
      action.lookup("automated") == "false" &&
      action.lookup("changes") == "vm.swappiness: ` + strconv.Itoa(orig) + ` → ` + v + `")
    return polkit.Result.YES;
});`
	if err := b.WriteRule("50-alice-tune.rules", rule); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.RemoveRule("50-alice-tune.rules") })
	other := "39"
	if strconv.Itoa(orig) == other {
		other = "41"
	}
	// Outside the rule polkit's default applies: auth_admin, which a
	// call without interaction gets as InteractiveAuthorizationRequired.
	if res := asUser(t, b, alice, "act", actArgs{Method: "StartTrial", Value: other}); res.Error != api.ErrInteractiveAuthorizationRequired {
		t.Errorf("StartTrial %s (not in the rule) as alice: %q %s, want InteractiveAuthorizationRequired", other, res.Error, res.Message)
	}
	noTrial(t, c, orig)
	if res := asUser(t, b, alice, "act", actArgs{Method: "StartTrial", Value: v}); res.Error != "" {
		t.Fatalf("StartTrial %s as alice with the rule: %s %s", v, res.Error, res.Message)
	}
	if got := strconv.Itoa(swappiness(t)); got != v {
		t.Errorf("vm.swappiness = %s after alice's granted trial, want %s", got, v)
	}
}

// The daemon's own metric source: PSI from the snapshot and block-I/O p99
// from the kernel histogram are read before the apply; a metric whose
// sensor is off (runq_latency, off by default) is a named error and the
// trial never starts.
func TestTrialReadsTheDaemonsMetricsOrRefusesWithoutThem(t *testing.T) {
	_, _, c := startDaemon(t)
	orig, v := keepSwappiness(t)
	ctx := context.Background()
	_, err := c.StartTrial(ctx, client.TrialRequest{Changes: map[string]string{"vm.swappiness": v}, Watch: []string{"runq.p99"}}, client.TuneCall{})
	if api.ErrorName(err) != api.ErrNotSupported || !strings.Contains(api.ErrorMessage(err), "runq_latency") {
		t.Errorf("trial watching runq.p99 with its sensor off: %v, want NotSupported naming runq_latency", err)
	}
	noTrial(t, c, orig)
	watch := []string{"psi.cpu.some", "psi.memory.some", "psi.io.full", "blockio.p99"}
	id, err := c.StartTrial(ctx, client.TrialRequest{Changes: map[string]string{"vm.swappiness": v}, Watch: watch,
		Canary: 30 * time.Second, Lease: time.Minute}, client.TuneCall{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.RevertTrial(ctx, id, client.TuneCall{})
	trials, err := c.GetTrials(ctx)
	if err != nil || len(trials) != 1 {
		t.Fatalf("GetTrials = %+v, %v", trials, err)
	}
	before := trials[0].Before
	if len(before) != len(watch) {
		t.Fatalf("before = %+v, want a figure per watched metric", before)
	}
	for i, f := range before {
		if f.Metric != watch[i] || f.Value < 0 || (strings.HasPrefix(f.Metric, "psi.") && f.Value > 100) {
			t.Errorf("figure %d = %+v, want %s within range", i, f, watch[i])
		}
	}
}
