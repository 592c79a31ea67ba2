package tuning

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

// BenchmarkTrial measures, over interleaved rounds on vm.swappiness:
// Start→applied (validation, two fsynced state writes, the write) against a
// bare write of the same sysctl, and evidence→reverted: from the canary
// sample that first returned the regressed value (the fake metric source is
// the daemon's boundary) to the tuning.regressed report, which comes after
// the knob is restored and the state and history are on disk.
func BenchmarkTrial(b *testing.B) {
	testbus.Privileged(b)
	orig, other := keepSwappiness(b)
	const rounds = 40
	var start, bare, revert []time.Duration
	for range b.N {
		for range rounds {
			t0 := time.Now()
			writeKnob(b, swappiness, other)
			bare = append(bare, time.Since(t0))
			writeKnob(b, swappiness, orig)

			m := &fakeMetrics{}
			e, ev := newEngine(b, b.TempDir(), m)
			t0 = time.Now()
			_, err := e.Start(bg, swapChange(other), Options{Canary: 10 * time.Second, Lease: 20 * time.Second,
				Every: 10 * time.Millisecond, Watch: []Watch{{Metric: MetricPSIMemorySome}}})
			start = append(start, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			m.setBad()
			ev.wait(b, EventRegressed, 2*time.Second)
			ev.mu.Lock()
			at := ev.at[len(ev.at)-1]
			ev.mu.Unlock()
			revert = append(revert, at.Sub(m.evidenceAt()))
			if got := readKnob(b, swappiness); got != orig {
				b.Fatalf("not reverted: %s", got)
			}
			e.Close()
		}
	}
	p := func(d []time.Duration, q float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	b.ReportMetric(float64(p(start, 0.5).Microseconds()), "start-p50-µs")
	b.ReportMetric(float64(p(start, 0.99).Microseconds()), "start-p99-µs")
	b.ReportMetric(float64(p(bare, 0.5).Microseconds()), "bare-write-p50-µs")
	b.ReportMetric(float64(p(revert, 0.5).Microseconds()), "evidence-to-reverted-p50-µs")
	b.ReportMetric(float64(p(revert, 0.99).Microseconds()), "evidence-to-reverted-p99-µs")
	b.ReportMetric(float64(slices.Max(revert).Microseconds()), "evidence-to-reverted-max-µs")
}

// BenchmarkCanaryCPU: the engine's own CPU while a trial's canary watches
// three metrics at the default 500 ms period (the daemon's metric source,
// faked here, adds its own cost), against the same wall time idle.
func BenchmarkCanaryCPU(b *testing.B) {
	testbus.Privileged(b)
	_, other := keepSwappiness(b)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	const window = 5 * time.Second
	for range b.N {
		c0 := cpu()
		time.Sleep(window)
		idle := cpu() - c0

		e, _ := newEngine(b, b.TempDir(), &fakeMetrics{})
		_, err := e.Start(bg, swapChange(other), Options{Canary: time.Minute, Lease: 2 * time.Minute,
			Watch: []Watch{{Metric: MetricPSIMemorySome}, {Metric: MetricPSIIOSome}, {Metric: MetricRunqP99}}})
		if err != nil {
			b.Fatal(err)
		}
		c0 = cpu()
		time.Sleep(window)
		busy := cpu() - c0
		e.Close()
		b.ReportMetric(float64((busy-idle).Microseconds())/window.Seconds(), "canary-cpu-µs/s")
		b.ReportMetric(float64(idle.Microseconds())/window.Seconds(), "idle-cpu-µs/s")
	}
}
