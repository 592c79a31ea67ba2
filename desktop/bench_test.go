package desktop_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

// BenchmarkAgentIdle lets npllm-agent idle for 15 s with npllmd and dunst
// running and reports its RSS and CPU (goal: RSS ≤ 25 MB).
func BenchmarkAgentIdle(b *testing.B) {
	for range b.N {
		w := setupB(b)
		pid := w.agent.Process.Pid
		c0 := procTicks(b, pid)
		time.Sleep(15 * time.Second)
		c1 := procTicks(b, pid)
		b.ReportMetric(float64(testbus.ProcRSSKiB(pid))/1024, "agent-rss-MiB")
		b.ReportMetric(float64(c1-c0)/100/15*100, "agent-cpu-%")
	}
}

func procTicks(b testing.TB, pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}
