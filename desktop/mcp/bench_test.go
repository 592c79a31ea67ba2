package mcp_test

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
)

// BenchmarkSystemStatusOverStdioVsGetAll interleaves the system_status tool
// over a real stdio MCP session (mcp-go's client spawning npllm-agent mcp)
// with a direct Properties.GetAll on npllmd (goal: p50 ≤ 2× GetAll + 1 ms).
// system_status also lists the top processes, a second D-Bus call.
func BenchmarkSystemStatusOverStdioVsGetAll(b *testing.B) {
	testbus.Privileged(b)
	bus := testbus.ForTest(b)
	bus.DaemonForTest(b, bin("npllmd"))
	conn, err := bus.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	obj := conn.Object(api.BusName, api.ObjectPath)
	c, err := mcpclient.NewStdioMCPClient(bin("npllm-agent"), append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address), "mcp", "--log-level=warn")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		b.Fatal(err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "system_status"
	const samples = 500
	for range b.N {
		tool := make([]time.Duration, 0, samples)
		getAll := make([]time.Duration, 0, samples)
		for range samples {
			t0 := time.Now()
			res, err := c.CallTool(ctx, req)
			if err != nil || res.IsError {
				b.Fatalf("system_status: %v %+v", err, res)
			}
			t1 := time.Now()
			if err := obj.Call("org.freedesktop.DBus.Properties.GetAll", 0, api.Interface).Err; err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			tool, getAll = append(tool, t1.Sub(t0)), append(getAll, t2.Sub(t1))
		}
		tp, gp := p50(tool), p50(getAll)
		b.ReportMetric(float64(tp.Microseconds()), "mcp-p50-µs")
		b.ReportMetric(float64(gp.Microseconds()), "getall-p50-µs")
		b.ReportMetric(float64(tp)/float64(gp), "mcp/getall")
		b.ReportMetric(float64(tp)/float64(2*gp+time.Millisecond), "mcp/goal")
	}
}

func p50(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
