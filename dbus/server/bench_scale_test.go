package server_test

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// Benchmarks of how npllmd's cost grows with the number of processes on
// the machine (issue 17): the extra processes are forked by testdata/storm.c
// and only sleep, so they cost the machine nothing but a few pages each.

// sleepers forks n sleeping processes and returns a function that kills
// them (also run at cleanup).
func sleepers(b testing.TB, storm string, n int) func() {
	if n == 0 {
		return func() {}
	}
	cmd := exec.Command(storm, "sleepers", strconv.Itoa(n))
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if got := strings.TrimSpace(line); got != "ready "+strconv.Itoa(n) {
		in.Close()
		cmd.Wait()
		b.Fatalf("sleepers: %q, want ready %d", got, n)
	}
	var once bool
	stop := func() {
		if !once {
			once = true
			in.Close()
			io.Copy(io.Discard, out)
			cmd.Wait()
		}
	}
	b.Cleanup(stop)
	return stop
}

// BenchmarkIdleVsProcessCount measures npllmd's idle CPU and RSS over 20 s
// with 0, 3,000 and 10,000 extra sleeping processes (goals: CPU within 0.1
// percentage point of the 0 row, RSS ≤ 30 MB + 1 KB per live process), on
// the default process table (bpf_iter) and on its procfs fallback.
func BenchmarkIdleVsProcessCount(b *testing.B) {
	storm := stormHelper(b)
	bus := testbus.ForTest(b)
	const idle = 20 * time.Second
	for range b.N {
		for _, n := range []int{0, 3000, 10000} {
			stop := sleepers(b, storm, n)
			for _, variant := range []string{"bpf_iter", "procfs"} {
				d := bus.DaemonForTest(b, bin("npllmd"), "--force-variant=processes="+variant)
				pid := d.Cmd.Process.Pid
				time.Sleep(3 * time.Second) // past start-up
				cpu0 := testbus.ProcCPU(pid)
				time.Sleep(idle)
				cpu1 := testbus.ProcCPU(pid)
				rss := float64(testbus.ProcRSSKiB(pid)) / 1024
				d.Stop()
				tag := variant + "-" + strconv.Itoa(n)
				b.ReportMetric(100*float64(cpu1-cpu0)/float64(idle), "cpu-%-"+tag)
				b.ReportMetric(rss, "rss-MiB-"+tag)
			}
			stop()
		}
	}
}

// BenchmarkTopVsProcessCount times what `npllmctl top --limit 10` calls
// (GetProcesses by CPU) at about 100, 3,000 and 10,000 processes, p50 of
// 10 calls after a first one (goal: ≤ 100 ms at 10,000).
func BenchmarkTopVsProcessCount(b *testing.B) {
	storm := stormHelper(b)
	bus := testbus.ForTest(b)
	conn, err := bus.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := client.NewClient(conn)
	for range b.N {
		for _, n := range []int{0, 3000, 10000} {
			stop := sleepers(b, storm, n)
			for _, variant := range []string{"bpf_iter", "procfs"} {
				d := bus.DaemonForTest(b, bin("npllmd"), "--force-variant=processes="+variant)
				q := client.ProcessQuery{SortBy: "cpu", Limit: 10}
				if _, err := c.ListProcesses(context.Background(), q); err != nil {
					b.Fatal(err)
				}
				var lat []time.Duration
				for range 10 {
					t0 := time.Now()
					if _, err := c.ListProcesses(context.Background(), q); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				d.Stop()
				tag := map[int]string{0: "base", 3000: "3000", 10000: "10000"}[n]
				b.ReportMetric(float64(p50(lat).Microseconds())/1e3, "top-p50-ms-"+variant+"-"+tag)
			}
			stop()
		}
	}
}
