package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/client"
)

// BenchmarkTrialOverTheBus interleaves, on vm.swappiness through the real
// npllmd (root caller, real polkitd): StartTrial (validation, polkit,
// fsynced undo set, the write; the reply comes after the apply), RevertTrial,
// and a Ping for scale.
func BenchmarkTrialOverTheBus(b *testing.B) {
	_, _, c := startDaemon(b)
	_, v := keepSwappiness(b)
	ctx := context.Background()
	obj := c.Conn().Object("org.npllm.Assistant", "/org/npllm/Assistant1")
	const rounds = 30
	for range b.N {
		var start, revert, ping []time.Duration
		for range rounds {
			t0 := time.Now()
			id, err := c.StartTrial(ctx, client.TrialRequest{Changes: map[string]string{"vm.swappiness": v}}, client.TuneCall{})
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := c.RevertTrial(ctx, id, client.TuneCall{}); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if err := obj.Call("org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
				b.Fatal(err)
			}
			start, revert, ping = append(start, t1.Sub(t0)), append(revert, t2.Sub(t1)), append(ping, time.Since(t2))
		}
		b.ReportMetric(float64(p50(start).Microseconds()), "start-applied-p50-µs")
		b.ReportMetric(float64(p50(revert).Microseconds()), "revert-p50-µs")
		b.ReportMetric(float64(p50(ping).Microseconds()), "ping-p50-µs")
	}
}

// burner runs a copy of yes(1) under a name of its own: a CPU-bound
// program the canary can watch (program.cpu:NAME).
func burner(b testing.TB, name string) *exec.Cmd {
	path := filepath.Join(b.TempDir(), name)
	data, err := os.ReadFile("/usr/bin/yes")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// BenchmarkRegressionToRevertInTheDaemon: a trial watches the CPU of a
// burner (program.cpu from /proc, every 100 ms); the burner is stopped and
// the time until vm.swappiness holds its old value again is measured
// (polled every 2 ms). It bounds evidence → revert from above: it includes
// up to one sampling period before the evidence exists.
func BenchmarkRegressionToRevertInTheDaemon(b *testing.B) {
	_, _, c := startDaemon(b)
	orig, v := keepSwappiness(b)
	burn := burner(b, "nptune-bench")
	ctx := context.Background()
	const rounds = 8
	for range b.N {
		var lat []time.Duration
		for range rounds {
			burn.Process.Signal(syscall.SIGCONT)
			time.Sleep(300 * time.Millisecond)
			_, err := c.StartTrial(ctx, client.TrialRequest{Changes: map[string]string{"vm.swappiness": v},
				Canary: 10 * time.Second, Lease: 20 * time.Second, Every: 100 * time.Millisecond,
				Watch: []string{"program.cpu:nptune-bench"}}, client.TuneCall{})
			if err != nil {
				b.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
			t0 := time.Now()
			burn.Process.Signal(syscall.SIGSTOP)
			for swappiness(b) != orig {
				if time.Since(t0) > 5*time.Second {
					b.Fatal("not reverted within 5 s of the regression")
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(float64(p50(lat).Milliseconds()), "stop-to-reverted-p50-ms")
		b.ReportMetric(float64(slices.Max(lat).Milliseconds()), "max-ms")
	}
}

// BenchmarkCanaryCPUInTheDaemon: npllmd's CPU in 5 s windows while one
// trial watches psi.memory.some and program.cpu of a burner
// at the default 500 ms period, against 5 s windows without a trial, four
// pairs interleaved; the daemon's CPU also follows every exec and exit on
// the machine (other tests run here), so the median of the pairs'
// differences is reported. (Not blockio.p99 or psi.cpu.some: their floors
// trip on this shared machine's load and end the trial early.)
func BenchmarkCanaryCPUInTheDaemon(b *testing.B) {
	_, d, c := startDaemon(b)
	_, v := keepSwappiness(b)
	burner(b, "nptune-canary")
	pid := d.Cmd.Process.Pid
	ctx := context.Background()
	const window, pairs = 5 * time.Second, 4
	perSec := func(ticks uint64) float64 { return float64(ticks) * 10 / window.Seconds() } // ms of CPU per s
	for range b.N {
		time.Sleep(2 * time.Second)
		var idle, busy, diff []float64
		for range pairs {
			cpu0 := cpuTicks(b, pid)
			time.Sleep(window)
			i := perSec(cpuTicks(b, pid) - cpu0)
			id, err := c.StartTrial(ctx, client.TrialRequest{Changes: map[string]string{"vm.swappiness": v},
				Canary: 30 * time.Second, Lease: time.Minute, Threshold: 10,
				Watch: []string{"psi.memory.some", "program.cpu:nptune-canary"}}, client.TuneCall{})
			if err != nil {
				b.Fatal(err)
			}
			cpu1 := cpuTicks(b, pid)
			time.Sleep(window)
			w := perSec(cpuTicks(b, pid) - cpu1)
			if err := c.RevertTrial(ctx, id, client.TuneCall{}); err != nil {
				trials, _ := c.GetTrials(ctx)
				b.Fatalf("the trial ended before the window did (%v): %+v", err, trials)
			}
			idle, busy, diff = append(idle, i), append(busy, w), append(diff, w-i)
		}
		slices.Sort(idle)
		slices.Sort(busy)
		slices.Sort(diff)
		b.ReportMetric(idle[pairs/2], "idle-ms-per-s")
		b.ReportMetric(busy[pairs/2], "canary-ms-per-s")
		b.ReportMetric(diff[pairs/2]*1000, "canary-cost-µs-per-s")
	}
}
