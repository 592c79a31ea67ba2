package tuning

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

var bg = context.Background()

func swapChange(v string) []Change { return []Change{{Knob: "vm.swappiness", Value: v}} }

func TestSwappinessTrialConfirmedIsKept(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, ev := newEngine(t, t.TempDir(), nil)
	id, err := e.Start(bg, swapChange(other), Options{Canary: 200 * time.Millisecond, Lease: 600 * time.Millisecond,
		Every: 20 * time.Millisecond, Workload: "make"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readKnob(t, swappiness); got != other {
		t.Fatalf("swappiness %s after Start, want %s", got, other)
	}
	started := ev.wait(t, EventStarted, time.Second)
	if c := started.Trial.Changes; len(c) != 1 || c[0].Old != orig || c[0].New != other {
		t.Fatalf("started event's undo set %+v, want %s→%s", c, orig, other)
	}
	if _, err := e.Confirm(id); !errors.Is(err, ErrTrialState) {
		t.Fatalf("Confirm during the canary: %v, want ErrTrialState", err)
	}
	waitState(t, e, id, StateAwaiting, time.Second)
	info, err := e.Confirm(id)
	if err != nil || info.State != StateConfirmed {
		t.Fatalf("Confirm: %+v %v", info, err)
	}
	ev.wait(t, EventConfirmed, time.Second)
	time.Sleep(800 * time.Millisecond) // past the lease
	if got := readKnob(t, swappiness); got != other {
		t.Fatalf("confirmed swappiness %s became %s", other, got)
	}
	if _, err := e.Revert(id); !errors.Is(err, ErrNoSuchTrial) {
		t.Fatalf("Revert of a confirmed trial: %v, want ErrNoSuchTrial", err)
	}
	h := e.History("make")
	if len(h) != 1 || h[0].Outcome != StateConfirmed || h[0].Changes[0].New != other {
		t.Fatalf("history %+v", h)
	}
	if left := stateTrials(t, e.dir); len(left) != 0 {
		t.Fatalf("state file still holds %+v", left)
	}
}

func TestUnconfirmedTrialRevertedWhenLeaseEnds(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, ev := newEngine(t, t.TempDir(), nil)
	id, err := e.Start(bg, swapChange(other), Options{Canary: 100 * time.Millisecond, Lease: 400 * time.Millisecond,
		Every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if left := stateTrials(t, e.dir); len(left) != 1 || left[0].ID != id || left[0].Changes[0].Old != orig {
		t.Fatalf("state file during the trial: %+v", left)
	}
	r := ev.wait(t, EventReverted, 2*time.Second)
	if !strings.Contains(r.Reason, "lease") {
		t.Fatalf("reverted because %q, want the lease", r.Reason)
	}
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s after the lease, want %s", got, orig)
	}
	if left := stateTrials(t, e.dir); len(left) != 0 {
		t.Fatalf("state file after the revert: %+v", left)
	}
	if tr := e.Trials(); len(tr) != 1 || tr[0].State != StateReverted {
		t.Fatalf("Trials %+v", tr)
	}
}

func TestInvalidChangesAreRefusedAndChangeNothing(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, ev := newEngine(t, t.TempDir(), nil)
	loopSched := readKnob(t, "/sys/block/loop0/queue/scheduler")
	cases := []struct {
		name    string
		changes []Change
		opts    Options
		want    error
	}{
		{"swappiness 500", swapChange("500"), Options{}, ErrInvalidArgument},
		{"swappiness not a number", swapChange("60; reboot"), Options{}, ErrInvalidArgument},
		{"unknown sysctl", []Change{{Knob: "vm.overcommit_memory", Value: "1"}}, Options{}, ErrUnknownKnob},
		{"unknown knob", []Change{{Knob: "no.such.knob", Value: "1"}}, Options{}, ErrUnknownKnob},
		{"scheduler the device does not list", []Change{{Knob: "block.scheduler", Target: "loop0", Value: "cfq"}}, Options{}, ErrInvalidArgument},
		{"device path escape", []Change{{Knob: "block.scheduler", Target: "../vda", Value: "none"}}, Options{}, ErrInvalidArgument},
		{"no such device", []Change{{Knob: "block.read_ahead_kb", Target: "nosuchdisk", Value: "256"}}, Options{}, ErrInvalidArgument},
		{"target on a machine-wide knob", []Change{{Knob: "vm.swappiness", Target: "vda", Value: other}}, Options{}, ErrInvalidArgument},
		{"value unchanged", swapChange(orig), Options{}, ErrInvalidArgument},
		{"same knob twice", append(swapChange(other), swapChange(other)...), Options{}, ErrInvalidArgument},
		{"no changes", nil, Options{}, ErrInvalidArgument},
		{"canary too short", swapChange(other), Options{Canary: time.Millisecond}, ErrInvalidArgument},
		{"lease shorter than canary", swapChange(other), Options{Canary: time.Second, Lease: time.Second}, ErrInvalidArgument},
		{"unknown metric", swapChange(other), Options{Watch: []Watch{{Metric: "psi.vibes"}}}, ErrInvalidArgument},
		{"watch without a metric source", swapChange(other), Options{Watch: []Watch{{Metric: MetricPSICPUSome}}}, ErrUnavailable},
		// The valid first change must not be applied when the second is bad.
		{"one bad among good", []Change{{Knob: "vm.swappiness", Value: other}, {Knob: "vm.dirty_ratio", Value: "0"}}, Options{}, ErrInvalidArgument},
	}
	for _, c := range cases {
		_, err := e.Start(bg, c.changes, c.opts)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s after refused trials, want %s", got, orig)
	}
	if got := readKnob(t, "/sys/block/loop0/queue/scheduler"); got != loopSched {
		t.Fatalf("loop0 scheduler %q, want %q", got, loopSched)
	}
	if k := ev.kinds(); len(k) != 0 {
		t.Fatalf("refused trials reported %v", k)
	}
	if left := stateTrials(t, e.dir); len(left) != 0 {
		t.Fatalf("refused trials recorded %+v", left)
	}
}

func TestOneTrialPerKnob(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, _ := newEngine(t, t.TempDir(), nil)
	id, err := e.Start(bg, swapChange(other), Options{Canary: time.Second, Lease: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(bg, swapChange(orig), Options{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second trial on the knob: %v, want ErrConflict", err)
	}
	if tun := e.Tunables(bg); findTunable(tun, "vm.swappiness", "").Trial != id {
		t.Fatalf("Tunables does not name trial %s as holding vm.swappiness", id)
	}
	if _, err := e.Revert(id); err != nil {
		t.Fatal(err)
	}
}

func TestForeignChangeEndsTrialAndStays(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, ev := newEngine(t, t.TempDir(), nil)
	ra := "/sys/block/loop0/queue/read_ahead_kb"
	origRA := readKnob(t, ra)
	t.Cleanup(func() { writeKnob(t, ra, origRA) })
	_, err := e.Start(bg, []Change{{Knob: "vm.swappiness", Value: other},
		{Knob: "block.read_ahead_kb", Target: "loop0", Value: "256"}},
		Options{Canary: 5 * time.Second, Lease: 10 * time.Second, Every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := readKnob(t, ra); got != "256" {
		t.Fatalf("read_ahead_kb %s, want 256", got)
	}
	foreign := "33"
	if orig == foreign || other == foreign {
		foreign = "34"
	}
	writeKnob(t, swappiness, foreign)
	end := ev.wait(t, EventEnded, time.Second)
	if !strings.Contains(end.Reason, "vm.swappiness") || !strings.Contains(end.Reason, foreign) {
		t.Fatalf("ended because %q", end.Reason)
	}
	time.Sleep(100 * time.Millisecond)
	if got := readKnob(t, swappiness); got != foreign {
		t.Fatalf("foreign swappiness %s was changed to %s", foreign, got)
	}
	if got := readKnob(t, ra); got != origRA {
		t.Fatalf("the trial's other knob read_ahead_kb is %s, want it reverted to %s", got, origRA)
	}
}

func TestRecoverAtStartRevertsTrialOfCrashedEngine(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	dir := t.TempDir()
	crashed := startCrashingChild(t, dir, other)
	if got := readKnob(t, swappiness); got != other {
		t.Fatalf("child applied %s, want %s", got, other)
	}
	if _, err := New(Config{StateDir: dir, Log: quiet}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second engine on a locked state dir: %v, want ErrBusy", err)
	}
	crashed() // kill -9
	ev := newEvents()
	e, err := New(Config{StateDir: dir, Record: ev.record, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.Start(bg, swapChange(orig), Options{}); !errors.Is(err, ErrNotRecovered) {
		t.Fatalf("Start before RecoverAtStart: %v, want ErrNotRecovered", err)
	}
	rec, err := e.RecoverAtStart(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 1 || rec[0].State != StateReverted {
		t.Fatalf("recovered %+v", rec)
	}
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s after recovery, want %s", got, orig)
	}
	if k := ev.kinds(); len(k) != 1 || k[0] != EventReverted {
		t.Fatalf("recovery reported %v", k)
	}
	if left := stateTrials(t, dir); len(left) != 0 {
		t.Fatalf("state file after recovery: %+v", left)
	}
}

func TestCanaryRegressionRevertsWithinOneSecond(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	m := &fakeMetrics{}
	e, ev := newEngine(t, t.TempDir(), m)
	_, err := e.Start(bg, swapChange(other), Options{Canary: 10 * time.Second, Lease: 20 * time.Second,
		Workload: "firefox", Watch: []Watch{{Metric: MetricPSIMemorySome}, {Metric: MetricUnitCPU, Target: "build.service"}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // a healthy sample or two first
	if k := ev.kinds(); len(k) != 1 {
		t.Fatalf("healthy canary reported %v", k)
	}
	m.setBad()
	reg := ev.wait(t, EventRegressed, 2*time.Second)
	rev := ev.wait(t, EventReverted, time.Second)
	revertedAt := time.Now()
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s after the regression, want %s", got, orig)
	}
	if lag := revertedAt.Sub(m.evidenceAt()); lag > time.Second {
		t.Fatalf("reverted %v after the evidence, goal ≤ 1 s", lag)
	}
	r := reg.Regression
	if r == nil || r.Metric != MetricPSIMemorySome || r.Before != 1 || r.After != 50 {
		t.Fatalf("regression figures %+v", r)
	}
	if !strings.Contains(rev.Reason, "psi.memory.some went from 1 to 50") {
		t.Fatalf("revert reason %q does not name the figures", rev.Reason)
	}
	h := e.History("firefox")
	if len(h) != 1 || len(h[0].Before) != 2 || h[0].After[0].Value != 50 {
		t.Fatalf("history %+v", h)
	}
}

func TestDamagedStateIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{StateDir: dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.RecoverAtStart(bg); err == nil || !strings.Contains(err.Error(), "moved to") || !errors.Is(err, ErrDamagedState) {
		t.Fatalf("RecoverAtStart on a damaged file: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, stateFile+".damaged-*")); len(m) != 1 {
		t.Fatalf("damaged file not kept aside: %v", m)
	}
	if left := stateTrials(t, dir); len(left) != 0 {
		t.Fatalf("new state %+v", left)
	}
	// The engine works after it.
	if _, err := e.Start(bg, []Change{{Knob: "no.such", Value: "1"}}, Options{}); !errors.Is(err, ErrUnknownKnob) {
		t.Fatalf("Start after recovery: %v", err)
	}
}

func waitState(t *testing.T, e *Engine, id TrialID, state string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, tr := range e.Trials() {
			if tr.ID == id && tr.State == state {
				return
			}
		}
	}
	t.Fatalf("trial %s never reached %s: %+v", id, state, e.Trials())
}

func stateTrials(t *testing.T, dir string) []TrialInfo {
	t.Helper()
	var doc stateDoc
	if err := readJSON(filepath.Join(dir, stateFile), &doc, func() bool { return doc.Version == stateVersion }); err != nil {
		t.Fatal(err)
	}
	return doc.Trials
}

func findTunable(list []TunableInfo, name, target string) TunableInfo {
	for _, l := range list {
		if l.Name == name && l.Target == target {
			return l
		}
	}
	return TunableInfo{}
}

// learnedMetrics is the fake metric source with a learned baseline for the
// protected program: its CPU now (0.5 cores) is half of what is normal (1.0).
type learnedMetrics struct{}

func (l *learnedMetrics) Sample(_ context.Context, w Watch) (float64, error) { return 0.5, nil }

func (l *learnedMetrics) Baseline(_ context.Context, w Watch) (float64, bool) {
	return 1.0, w.Metric == MetricProgramCPU
}

func TestCanaryComparesWithTheLearnedBaseline(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, ev := newEngine(t, t.TempDir(), &learnedMetrics{})
	if _, err := e.Start(bg, swapChange(other), Options{Canary: 5 * time.Second, Lease: 10 * time.Second,
		Every: 20 * time.Millisecond, Watch: []Watch{{Metric: MetricProgramCPU, Target: "make"}}}); err != nil {
		t.Fatal(err)
	}
	reg := ev.wait(t, EventRegressed, time.Second)
	if r := reg.Regression; r.Before != 1.0 || r.After != 0.5 {
		t.Fatalf("regression %+v, want the learned 1.0 → 0.5", r)
	}
	ev.wait(t, EventReverted, time.Second)
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s, want %s", got, orig)
	}
}
