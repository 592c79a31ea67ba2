package dbus_test

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	npbus "github.com/npllm/npllm/dbus"
)

// Benchmarks measure on the real daemon on a private bus. Each one takes a
// fixed number of samples per b.N and reports ratios measured in the same
// run, so machine noise hits both sides alike: run with -benchtime 1x.

func p50(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// BenchmarkGetAllVsPing interleaves Properties.GetAll on our object with
// Peer.Ping to the same daemon (goal: GetAll p50 ≤ 1.3× Ping p50).
func BenchmarkGetAllVsPing(b *testing.B) {
	_, _, c := startDaemon(b)
	obj := c.Conn().Object(npbus.BusName, npbus.ObjectPath)
	const samples = 3000
	for range b.N {
		getAll := make([]time.Duration, 0, samples)
		ping := make([]time.Duration, 0, samples)
		for range samples {
			t0 := time.Now()
			if err := obj.Call("org.freedesktop.DBus.Properties.GetAll", 0, npbus.Interface).Err; err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := obj.Call("org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			getAll, ping = append(getAll, t1.Sub(t0)), append(ping, t2.Sub(t1))
		}
		g, p := p50(getAll), p50(ping)
		b.ReportMetric(float64(g.Microseconds()), "getall-p50-µs")
		b.ReportMetric(float64(p.Microseconds()), "ping-p50-µs")
		b.ReportMetric(float64(g)/float64(p), "getall/ping")
	}
}

// BenchmarkIdleDaemon lets npllmd idle for 20 s at the default 1 s refresh
// and reports its RSS and CPU use (goals: ≤ 30 MB, ≤ 0.2% of one core).
func BenchmarkIdleDaemon(b *testing.B) {
	_, d, _ := startDaemon(b)
	pid := d.Cmd.Process.Pid
	const idle = 20 * time.Second
	for range b.N {
		time.Sleep(2 * time.Second) // past start-up
		cpu0 := cpuTicks(b, pid)
		time.Sleep(idle)
		cpu1 := cpuTicks(b, pid)
		b.ReportMetric(100*float64(cpu1-cpu0)/100/idle.Seconds(), "cpu-%-of-core")
		b.ReportMetric(float64(rssKB(b, pid))/1024, "rss-MiB")
	}
}

func cpuTicks(b *testing.B, pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st
}

func rssKB(b *testing.B, pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseUint(strings.Fields(line)[1], 10, 64)
			return kb
		}
	}
	return 0
}
