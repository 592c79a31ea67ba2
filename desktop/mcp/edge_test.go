package mcp_test

import (
	"context"
	"strings"
	"testing"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/dbus/client"

	"github.com/npllm/npllm/dbus/testbus"
	bridge "github.com/npllm/npllm/desktop/mcp"
)

// inProcess connects mcp-go's own client to a bridge over a real daemon.
func inProcess(t *testing.T, opts bridge.Options) *mcpclient.Client {
	t.Helper()
	b := startDaemon(t)
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	br := bridge.New(client.NewClient(conn), opts)
	c, err := mcpclient.NewInProcessClient(br.Server())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "edge-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func call(t *testing.T, c *mcpclient.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("%s(%v): protocol error %v", name, args, err)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, " ")
}

// Bad arguments are tool errors that name the problem; nothing crashes and
// the bridge keeps answering.
func TestBadArgumentsAreToolErrorsWithClearText(t *testing.T) {
	testbus.Privileged(t)
	c := inProcess(t, bridge.Options{Version: "test"})
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"process_details", map[string]any{}, "pid is required"},
		{"process_details", map[string]any{"pid": "abc"}, "pid must be an integer"},
		{"process_details", map[string]any{"pid": -5}, "pid must be an integer from 1"},
		{"process_details", map[string]any{"pid": 1.5}, "pid must be an integer"},
		{"process_details", map[string]any{"pid": 2147483600}, "no process"},
		{"list_processes", map[string]any{"sort_by": "size"}, "sort_by must be cpu, memory or io"},
		{"list_processes", map[string]any{"limit": 1000}, "limit must be an integer from 1 to 50"},
		{"list_processes", map[string]any{"user": "no-such-user-npllm"}, `no user "no-such-user-npllm"`},
		{"recent_events", map[string]any{"limit": 0}, "limit must be an integer from 1 to 100"},
		{"recent_events", map[string]any{"after_seq": "later"}, "after_seq must be an integer"},
		{"unit_status", map[string]any{}, "unit is required"},
		{"unit_status", map[string]any{"unit": "../../etc/passwd"}, "invalid"},
		{"signal_process", map[string]any{"pid": 1, "start_time": 0}, "signal is required"},
		{"signal_process", map[string]any{"pid": 1, "signal": "KILL"}, "start_time is required"},
		{"signal_process", map[string]any{"pid": 999999, "start_time": 1, "signal": "NUKE"}, "signal must be TERM, KILL"},
		{"set_process_priority", map[string]any{"pid": 1, "start_time": 1, "nice": 40}, "nice must be an integer from -20 to 19"},
		{"set_process_priority", map[string]any{"pid": 1, "start_time": 1}, "nice is required"},
		{"manage_unit", map[string]any{"unit": "x.service", "verb": "explode"}, "verb must be start, stop"},
		{"no_such_tool", map[string]any{}, ""},
	}
	for _, tc := range cases {
		req := mcp.CallToolRequest{}
		req.Params.Name = tc.tool
		req.Params.Arguments = tc.args
		res, err := c.CallTool(context.Background(), req)
		if tc.tool == "no_such_tool" {
			if err == nil {
				t.Errorf("unknown tool answered %+v", res)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s(%v): protocol error %v", tc.tool, tc.args, err)
			continue
		}
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s(%v) = error %v %q, want an error containing %q", tc.tool, tc.args, res.IsError, text(res), tc.want)
		}
	}
	// Still answering.
	if res := call(t, c, "system_status", nil); res.IsError {
		t.Errorf("system_status after bad calls: %s", text(res))
	}
}

func TestUnitStatusWithoutSystemdSaysSo(t *testing.T) {
	testbus.Privileged(t)
	c := inProcess(t, bridge.Options{Version: "test"})
	res := call(t, c, "unit_status", map[string]any{"unit": "cups.service"})
	if !res.IsError || !strings.Contains(text(res), "not supported on this machine") {
		t.Errorf("unit_status without systemd: %q", text(res))
	}
}
