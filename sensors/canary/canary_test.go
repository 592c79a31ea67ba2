package canary

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/alerts"
)

// Fixture cgroup trees stand in for systemd's (systemd is not PID 1 here);
// the reads and the rate arithmetic are the real ones.

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func unitSource(root string) *Source {
	return &Source{CgroupRoot: root, UnitCgroup: func(_ context.Context, unit string) (string, error) {
		return "/system.slice/" + unit, nil
	}}
}

func TestUnitCPURateAndMemoryFromCgroupV2(t *testing.T) {
	root := t.TempDir()
	cg := filepath.Join(root, "system.slice", "build.service")
	write(t, filepath.Join(root, "cgroup.controllers"), "cpu memory\n")
	write(t, filepath.Join(cg, "cpu.stat"), "usage_usec 1000000\nuser_usec 800000\n")
	write(t, filepath.Join(cg, "memory.current"), "104857600\n")
	s := unitSource(root)
	ctx := context.Background()
	cpu := tuning.Watch{Metric: tuning.MetricUnitCPU, Target: "build.service"}
	if v, err := s.Sample(ctx, cpu); err != nil || v != 0 {
		t.Fatalf("idle unit CPU = %v, %v; want 0", v, err)
	}
	start := time.Now()
	time.Sleep(200 * time.Millisecond)
	write(t, filepath.Join(cg, "cpu.stat"), "usage_usec 1500000\n") // 0.5 s of CPU since
	v, err := s.Sample(ctx, cpu)
	if err != nil {
		t.Fatal(err)
	}
	if hi := 0.5 / 0.2; v < 0.5/time.Since(start).Seconds()/2 || v > hi {
		t.Errorf("unit CPU = %.3f cores, want 0.5 s over the ~%v window", v, time.Since(start).Round(time.Millisecond))
	}
	if v, err := s.Sample(ctx, tuning.Watch{Metric: tuning.MetricUnitMemory, Target: "build.service"}); err != nil || v != 104857600 {
		t.Errorf("unit memory = %v, %v; want 100 MiB", v, err)
	}
}

func TestUnitMemoryFromCgroupV1AndEscapesRefused(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "memory", "system.slice", "db.service", "memory.usage_in_bytes"), "2048\n")
	write(t, filepath.Join(root, "cpuacct", "system.slice", "db.service", "cpuacct.usage"), "5\n")
	s := unitSource(root)
	if v, err := s.Sample(context.Background(), tuning.Watch{Metric: tuning.MetricUnitMemory, Target: "db.service"}); err != nil || v != 2048 {
		t.Errorf("v1 unit memory = %v, %v; want 2048", v, err)
	}
	s.UnitCgroup = func(context.Context, string) (string, error) { return "/../../etc", nil }
	if _, err := s.Sample(context.Background(), tuning.Watch{Metric: tuning.MetricUnitMemory, Target: "x.service"}); err == nil {
		t.Error("a cgroup path with .. was read")
	}
}

type fakeHist struct{ counts [][]uint64 } // successive reads

func (f *fakeHist) Series() []string { return nil }
func (f *fakeHist) ReadHistogram(string) (sensors.Histogram, error) {
	c := f.counts[0]
	if len(f.counts) > 1 {
		f.counts = f.counts[1:]
	}
	return sensors.Histogram{Counts: c}, nil
}
func (f *fakeHist) Counters() map[string]uint64 { return nil }
func (f *fakeHist) Close() error                { return nil }

type fakePressure struct{ snap sensors.Snapshot }

func (f *fakePressure) Sample(s *sensors.Snapshot) error { *s = f.snap; return nil }
func (f *fakePressure) Counters() map[string]uint64      { return nil }
func (f *fakePressure) Close() error                     { return nil }

type fakeSensors struct {
	snap sensors.Snapshot
	hist *fakeHist
}

func (f *fakeSensors) Get(name string) (sensors.Running, error) {
	if name == "pressure" {
		return &fakePressure{f.snap}, nil
	}
	return f.hist, nil
}

// The kernel histograms count since they were loaded; the canary wants the
// latest window only.
func TestP99IsOfTheWindowNotSinceBoot(t *testing.T) {
	old := make([]uint64, 20)
	old[10] = 1000 // a thousand old samples near 1 ms
	now := append([]uint64(nil), old...)
	now[17] = 50 // fifty new ones near 131 ms
	f := &fakeSensors{hist: &fakeHist{counts: [][]uint64{old, now}},
		snap: sensors.Snapshot{Pressure: map[string][3]float64{"memory": {12.5, 1, 1}}, PressureFull: map[string][3]float64{"io": {3, 0, 0}}}}
	s := &Source{Sensors: f}
	v, err := s.Sample(context.Background(), tuning.Watch{Metric: tuning.MetricBlockIOP99})
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(uint64(1)<<18) / 1000; v != want {
		t.Errorf("blockio.p99 = %v µs, want %v (the new samples' bucket)", v, want)
	}
	if v, _ := s.Sample(context.Background(), tuning.Watch{Metric: tuning.MetricPSIMemorySome}); v != 12.5 {
		t.Errorf("psi.memory.some = %v, want 12.5", v)
	}
	if v, _ := s.Sample(context.Background(), tuning.Watch{Metric: tuning.MetricPSIIOFull}); v != 3 {
		t.Errorf("psi.io.full = %v, want 3", v)
	}
	if _, err := s.Sample(context.Background(), tuning.Watch{Metric: tuning.MetricPSICPUSome}); err == nil {
		t.Error("psi.cpu.some without figures gave no error")
	}
}

func TestProgramBaselineOnlyWhenOneUserRunsIt(t *testing.T) {
	b := alerts.OpenBaselines(filepath.Join(t.TempDir(), "baselines.json"), nil)
	now := time.Now()
	for i, rss := range []uint64{100 << 20, 300 << 20, 200 << 20} {
		b.Observe(1000, "make", rss, uint64(i+1)*uint64(time.Second), 4*uint64(time.Second), false, now)
	}
	s := &Source{Baselines: b}
	ctx := context.Background()
	if v, ok := s.Baseline(ctx, tuning.Watch{Metric: tuning.MetricProgramMemory, Target: "make"}); !ok || v != 200<<20 {
		t.Errorf("make's memory baseline = %v, %v; want the median 200 MiB", v, ok)
	}
	if v, ok := s.Baseline(ctx, tuning.Watch{Metric: tuning.MetricProgramCPU, Target: "make"}); !ok || v != 0.5 {
		t.Errorf("make's CPU baseline = %v, %v; want the median 2 s / 4 s = 0.5 cores", v, ok)
	}
	b.Observe(1001, "make", 1<<30, 0, 0, false, now)
	if _, ok := s.Baseline(ctx, tuning.Watch{Metric: tuning.MetricProgramMemory, Target: "make"}); ok {
		t.Error("a program two users run got a baseline")
	}
	if _, ok := s.Baseline(ctx, tuning.Watch{Metric: tuning.MetricUnitMemory, Target: "make.service"}); ok {
		t.Error("a unit got a learned baseline")
	}
}

func TestProgramMemoryOfThisTestBinary(t *testing.T) {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	name := string(comm[:len(comm)-1])
	v, err := (&Source{}).Sample(context.Background(), tuning.Watch{Metric: tuning.MetricProgramMemory, Target: name})
	if err != nil || v < 1<<20 {
		t.Errorf("memory of %s (pid %s) = %v, %v; want at least 1 MiB", name, strconv.Itoa(os.Getpid()), v, err)
	}
	if _, err := (&Source{}).Sample(context.Background(), tuning.Watch{Metric: tuning.MetricProgramMemory, Target: "no-such-comm-x"}); err == nil {
		t.Error("a program nobody runs has a memory figure")
	}
}

// BenchmarkProgramCPU is one program.cpu sample of this test binary on
// this machine's /proc: its pids are remembered, so a sample reads their
// stat only, except for a full scan every rescanEvery (also reported).
func BenchmarkProgramCPU(b *testing.B) {
	comm, _ := os.ReadFile("/proc/self/comm")
	s := &Source{}
	w := tuning.Watch{Metric: tuning.MetricProgramCPU, Target: strings.TrimSpace(string(comm))}
	t0 := time.Now()
	if _, err := s.procs(); err != nil {
		b.Fatal(err)
	}
	scan := time.Since(t0)
	s.Sample(context.Background(), w)
	entries, _ := os.ReadDir("/proc")
	b.ResetTimer()
	for range b.N {
		if _, err := s.Sample(context.Background(), w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(entries)), "proc-entries")
	b.ReportMetric(float64(scan.Microseconds()), "full-scan-µs")
}

func TestParseStatTakesCommBetweenTheFirstAndLastParenthesis(t *testing.T) {
	line := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 777 123456 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, ok := parseStat([]byte(line))
	if !ok || st.comm != "a) b (c" || st.ticks != 300 || st.start != 777 || st.rssPages != 321 {
		t.Errorf("parseStat = %+v, %v; want comm %q, 300 ticks, start 777, 321 pages", st, ok, "a) b (c")
	}
	if _, ok := parseStat([]byte("4242 (short) S 1")); ok {
		t.Error("a truncated stat line parsed")
	}
}
