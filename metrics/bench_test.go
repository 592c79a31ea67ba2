package metrics_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// cpuNS is a process's CPU time in ns (testbus.ProcCPU).
func cpuNS(b testing.TB, pid int) float64 {
	ns := testbus.ProcCPU(pid)
	if ns == 0 {
		b.Fatalf("no CPU time for pid %d", pid)
	}
	return float64(ns)
}

func pctl(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// BenchmarkScrapeVsGetAll: a full scrape of npllm-exporter against a plain
// GetAll of npllmd's properties, 300 interleaved pairs; then npllmd's and
// the exporter's CPU per scrape over 300 back-to-back scrapes (npllmd's
// idle CPU measured just before is subtracted) and at 1 scrape/s.
// Goal: ≤ 2 ms of npllmd CPU per scrape.
func BenchmarkScrapeVsGetAll(b *testing.B) {
	bus := testbus.ForTest(b)
	d := bus.DaemonForTest(b, bin("npllmd"))
	addr, _ := startExporter(b, bus)
	scrape(b, addr) // dial
	c := client.NewClient(mustConnect(b, bus))
	ctx := context.Background()
	get := func() time.Duration {
		t0 := time.Now()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0)
	}
	exporterPid := func() int {
		procs, _ := filepath.Glob("/proc/[0-9]*/comm")
		for _, p := range procs {
			if data, _ := os.ReadFile(p); strings.TrimSpace(string(data)) == "npllm-exporter" {
				cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
				if strings.Contains(string(cmd), addr) {
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
					return pid
				}
			}
		}
		b.Fatal("exporter process not found")
		return 0
	}()
	for range b.N {
		const n = 300
		var scrapes, getalls []time.Duration
		for range n {
			scrapes = append(scrapes, get())
			t0 := time.Now()
			if _, err := c.Status(ctx); err != nil {
				b.Fatal(err)
			}
			getalls = append(getalls, time.Since(t0))
		}
		b.ReportMetric(float64(pctl(scrapes, 0.5).Microseconds()), "scrape-p50-µs")
		b.ReportMetric(float64(pctl(scrapes, 0.99).Microseconds()), "scrape-p99-µs")
		b.ReportMetric(float64(pctl(getalls, 0.5).Microseconds()), "getall-p50-µs")
		b.ReportMetric(float64(pctl(getalls, 0.99).Microseconds()), "getall-p99-µs")
		b.ReportMetric(float64(pctl(scrapes, 0.99))/float64(pctl(getalls, 0.99)), "p99-scrape/getall")

		daemon := d.Cmd.Process.Pid
		idle0, t0 := cpuNS(b, daemon), time.Now()
		time.Sleep(5 * time.Second)
		idleRate := (cpuNS(b, daemon) - idle0) / float64(time.Since(t0))

		d0, e0, t1 := cpuNS(b, daemon), cpuNS(b, exporterPid), time.Now()
		for range n {
			get()
		}
		span := float64(time.Since(t1))
		b.ReportMetric((cpuNS(b, daemon)-d0-idleRate*span)/n/1e6, "npllmd-ms/scrape")
		b.ReportMetric((cpuNS(b, exporterPid)-e0)/n/1e6, "exporter-ms/scrape")

		// At 1 scrape/s: 1 s windows alternating with and without a scrape,
		// so the machine's varying load (npllmd sees every exec on it)
		// hits both alike.
		var with, without float64
		for i := range 20 {
			w0 := cpuNS(b, daemon)
			if i%2 == 0 {
				get()
			}
			time.Sleep(time.Second)
			if i%2 == 0 {
				with += cpuNS(b, daemon) - w0
			} else {
				without += cpuNS(b, daemon) - w0
			}
		}
		b.ReportMetric((with-without)/10/1e6, "npllmd-ms/scrape@1Hz")
	}
}
