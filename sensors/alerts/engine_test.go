package alerts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

type recorder struct{ changes []Change }

func (r *recorder) listen(c Change) { r.changes = append(r.changes, c) }

func (r *recorder) take() []Change {
	c := r.changes
	r.changes = nil
	return c
}

func pressure(some, full float64) *sensors.Snapshot {
	return &sensors.Snapshot{MemoryTotal: 100, MemoryAvailable: 80,
		Pressure: map[string][3]float64{"memory": {some, 0, 0}}, PressureFull: map[string][3]float64{"memory": {full, 0, 0}}}
}

func TestMemoryPressureNeedsToBeSustainedAndClearsWithHysteresis(t *testing.T) {
	r := &recorder{}
	e := New(DefaultConfig(), nil, nil, r.listen)
	t0 := time.Unix(1000, 0)
	e.Machine(pressure(15, 0), t0)
	e.Machine(pressure(15, 0), t0.Add(9*time.Second))
	if len(r.take()) != 0 {
		t.Fatal("raised before 10 s of pressure")
	}
	e.Machine(pressure(15, 0), t0.Add(10*time.Second))
	if c := r.take(); len(c) != 1 || c[0].Raised == nil || c[0].Raised.Severity != api.SeverityWarning || c[0].Raised.Kind != api.KindMemoryPressure {
		t.Fatalf("after 10 s: %+v", c)
	}
	e.Machine(pressure(15, 0), t0.Add(11*time.Second))
	if len(r.take()) != 0 {
		t.Fatal("an unchanged alert was re-raised")
	}
	// Between the clear level (5) and the raise level (10): stays.
	for i := 12; i < 40; i++ {
		e.Machine(pressure(7, 0), t0.Add(time.Duration(i)*time.Second))
	}
	if _, ok := e.Get(api.KindMemoryPressure); !ok {
		t.Fatal("cleared between the two levels: it would flap")
	}
	r.take()
	e.Machine(pressure(2, 0), t0.Add(40*time.Second))
	e.Machine(pressure(2, 0), t0.Add(50*time.Second))
	if c := r.take(); len(c) != 1 || c[0].Cleared != api.KindMemoryPressure {
		t.Fatalf("after 10 s of calm: %+v", c)
	}
	// full ≥ 5 sustained → critical.
	e.Machine(pressure(50, 6), t0.Add(60*time.Second))
	e.Machine(pressure(50, 6), t0.Add(70*time.Second))
	if a, ok := e.Get(api.KindMemoryPressure); !ok || a.Severity != api.SeverityCritical {
		t.Fatalf("full pressure: %+v", a)
	}
}

func TestMemoryLowFollowsEarlyOOM(t *testing.T) {
	r := &recorder{}
	e := New(DefaultConfig(), nil, nil, r.listen)
	now := time.Unix(1000, 0)
	e.Machine(&sensors.Snapshot{MemoryTotal: 100, MemoryAvailable: 8, SwapTotal: 100, SwapFree: 50}, now)
	if len(r.take()) != 0 {
		t.Fatal("raised while swap is free")
	}
	e.Machine(&sensors.Snapshot{MemoryTotal: 100, MemoryAvailable: 8}, now)
	if a, ok := e.Get(api.KindMemoryLow); !ok || a.Severity != api.SeverityWarning {
		t.Fatalf("no swap, 8%% available: %+v", a)
	}
	e.Machine(&sensors.Snapshot{MemoryTotal: 100, MemoryAvailable: 12}, now)
	if _, ok := e.Get(api.KindMemoryLow); !ok {
		t.Fatal("cleared at 12%: no hysteresis")
	}
	e.Machine(&sensors.Snapshot{MemoryTotal: 100, MemoryAvailable: 16}, now)
	if _, ok := e.Get(api.KindMemoryLow); ok {
		t.Fatal("still raised at 16%")
	}
}

func TestDiskFullPerMountWithHysteresis(t *testing.T) {
	r := &recorder{}
	e := New(DefaultConfig(), nil, nil, r.listen)
	now := time.Unix(1000, 0)
	disk := func(used, inodes float64) *sensors.Snapshot {
		return &sensors.Snapshot{Disks: []sensors.DiskUsage{{Mount: "/data", UsedPercent: used, InodesPercent: inodes}}}
	}
	e.Machine(disk(91, 1), now)
	if a, ok := e.Get("disk.full//data"); !ok || a.Severity != api.SeverityWarning || !strings.Contains(a.Summary, "/data is 91% full") {
		t.Fatalf("91%%: %+v", a)
	}
	e.Machine(disk(50, 98), now)
	if a, _ := e.Get("disk.full//data"); a.Severity != api.SeverityCritical || !strings.Contains(a.Summary, "inodes") {
		t.Fatalf("inodes 98%%: %+v", a)
	}
	e.Machine(disk(88, 1), now)
	if _, ok := e.Get("disk.full//data"); !ok {
		t.Fatal("cleared at 88%")
	}
	e.Machine(disk(80, 1), now)
	if _, ok := e.Get("disk.full//data"); ok {
		t.Fatal("still raised at 80%")
	}
	e.Machine(disk(95, 1), now)
	e.Machine(&sensors.Snapshot{}, now)
	if _, ok := e.Get("disk.full//data"); ok {
		t.Fatal("an unmounted file system keeps its alert")
	}
}

func TestEventAlertsForCrashesAndOOMKillsExpire(t *testing.T) {
	r := &recorder{}
	e := New(DefaultConfig(), nil, nil, r.listen)
	now := time.Unix(1000, 0)
	e.Event(sensors.Event{Seq: 7, Kind: api.KindProcessExit, PID: 42, UID: 1000, HasUID: true,
		Comm: "app", Exit: &api.ExitStatus{Signal: 11}}, now)
	e.Event(sensors.Event{Seq: 8, Kind: api.KindProcessExit, PID: 43, Comm: "ok", Exit: &api.ExitStatus{Signal: 15}}, now)
	e.Event(sensors.Event{Seq: 9, Kind: api.KindOOMKill, PID: 44, UID: 1000, HasUID: true,
		Comm: "<b>hog", OOM: &api.OOMKill{RSSBytes: 1 << 30, Cgroup: "/user.slice/secret"}}, now)
	c := r.take()
	if len(c) != 2 || c[0].Raised.ID != "process.crash/7" || c[1].Raised.ID != "oom.kill/9" {
		t.Fatalf("changes %+v", c)
	}
	if c[0].Raised.Details["signal_name"] != "SIGSEGV" || c[1].Raised.Details["cgroup"] != nil || c[1].Raised.Private["cgroup"] != "/user.slice/secret" {
		t.Errorf("details: %+v / %+v", c[0].Raised.Details, c[1].Raised)
	}
	if e.Health() != sensors.HealthWarning {
		t.Errorf("health %s: past events should not make the machine critical", e.Health())
	}
	e.Machine(&sensors.Snapshot{}, now.Add(11*time.Minute))
	if c := r.take(); len(c) != 2 || c[0].Cleared == "" || len(e.Active()) != 0 {
		t.Fatalf("after the TTL: %+v, active %v", c, e.Active())
	}
}

func TestEventAlertsAreBounded(t *testing.T) {
	e := New(DefaultConfig(), nil, nil, nil)
	now := time.Unix(1000, 0)
	for i := range 200 {
		e.Event(sensors.Event{Seq: uint64(i + 1), Kind: api.KindOOMKill, PID: uint32(i), Comm: "x"}, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(e.Active()); n != maxEventAlerts {
		t.Fatalf("%d active alerts", n)
	}
	if _, ok := e.Get("oom.kill/200"); !ok {
		t.Fatal("the newest was evicted")
	}
}

type fakeProcs []sensors.Process

func (f fakeProcs) List(sensors.ListOptions) ([]sensors.Process, error) { return f, nil }

func TestAnomalyComparesAProcessWithItsOwnBaseline(t *testing.T) {
	dir := t.TempDir()
	b := OpenBaselines(filepath.Join(dir, "baselines.json"), nil)
	cfg := DefaultConfig()
	cfg.AnomalyMinBytes = 10 << 20
	procs := fakeProcs{{PID: 5, StartTime: 9, UID: 1000, Comm: "tool", RSSBytes: 100 << 20}}
	e := New(cfg, b, procs, nil)
	now := time.Unix(1000, 0)
	for i := range 5 {
		e.Event(sensors.Event{Seq: uint64(i + 1), Kind: api.KindProcessExit, UID: 1000, HasUID: true, Comm: "tool", Exit: &api.ExitStatus{MaxRSSBytes: 20 << 20}}, now)
	}
	e.Machine(&sensors.Snapshot{}, now)
	a, ok := e.Get("process.anomaly/5/9")
	if !ok || a.Details["baseline_p95_rss_bytes"] != uint64(20<<20) {
		t.Fatalf("100 MiB against a 20 MiB normal: %+v", a)
	}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	again := OpenBaselines(filepath.Join(dir, "baselines.json"), nil)
	if bl, ok := again.Get(1000, "tool"); !ok || bl.Runs != 5 || Percentile(bl.RSS, 0.95) != 20<<20 {
		t.Fatalf("baseline after reload: %+v", bl)
	}
	if _, ok := again.Get(0, "tool"); ok {
		t.Error("uid 1000's runs made a baseline for root")
	}
	if !again.Forget(1000, "tool") || again.Forget(1000, "tool") {
		t.Error("Forget")
	}
}

func TestConfigFileAndRuntimeChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "npllmd.toml")
	if c, err := LoadConfig(path); err != nil || c != DefaultConfig() {
		t.Fatalf("missing file: %v %+v", err, c)
	}
	os.WriteFile(path, []byte("[alerts]\ndisk_warning_percent = 80\ncpu_runaway_after = \"30s\"\n"), 0o644)
	c, err := LoadConfig(path)
	if err != nil || c.DiskWarningPercent != 80 || c.RunawayAfter.D() != 30*time.Second {
		t.Fatalf("%v %+v", err, c)
	}
	os.WriteFile(path, []byte("[alerts]\ndisk_warnin_percent = 80\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "disk_warnin_percent") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := c.With(map[string]any{"disk_critical_percent": 70.0}); err == nil {
		t.Error("critical below warning accepted")
	}
	if _, err := c.With(map[string]any{"memory_pressure_sustain": "soon"}); err == nil {
		t.Error("bad duration accepted")
	}
	if n, err := c.With(map[string]any{"anomaly_min_samples": uint32(3), "memory_low_percent": 5.0}); err != nil || n.AnomalyMinSamples != 3 || n.MemoryLowPercent != 5 {
		t.Errorf("%v %+v", err, n)
	}
	if len(Keys()) != len(DefaultConfig().Values()) {
		t.Error("Keys and Values disagree")
	}
}
