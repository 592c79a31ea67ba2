package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// These tests drive the real npllm-agent binary with the official MCP
// TypeScript SDK client (npm @modelcontextprotocol/sdk, installed in
// testclient/ by "make test" or .ci/run), against a real npllmd on a
// private bus with a real polkitd.

var binDir string

func TestMain(m *testing.M) {
	testbus.RunWithBinaries(m, &binDir, "./cmd/npllmd", "./cmd/npllm-agent")
}

func bin(name string) string { return filepath.Join(binDir, name) }

func startDaemon(t *testing.T) *testbus.Bus {
	t.Helper()
	b := testbus.ForTest(t)
	b.DaemonForTest(t, bin("npllmd"))
	return b
}

// nodeClient checks that node and the SDK are installed.
func nodeClient(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testclient")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (.ci/run installs it; the tests need the official MCP SDK client)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("the MCP SDK is not installed: run npm ci --prefix %s (make test does)", dir)
	}
	return filepath.Join(dir, "client.mjs")
}

type step struct {
	Op        string         `json:"op"`
	Name      string         `json:"name,omitempty"`
	URI       string         `json:"uri,omitempty"`
	Arguments map[string]any `json:"arguments,omitempty"`
	TimeoutMs int            `json:"timeoutMs,omitempty"`
}

type stepResult struct {
	Op     string          `json:"op"`
	Name   string          `json:"name"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
	Code   int             `json:"code"`
}

type toolResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent map[string]any `json:"structuredContent"`
	IsError           bool           `json:"isError"`
}

func (r stepResult) tool(t *testing.T) toolResult {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("%s %s: %s", r.Op, r.Name, r.Error)
	}
	var tr toolResult
	if err := json.Unmarshal(r.Result, &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tr toolResult) text() string {
	var parts []string
	for _, c := range tr.Content {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, " ")
}

// runNode runs the SDK client with plan; each step's result is passed to
// onStep as it arrives (the test can react, e.g. raise an alert).
func runNode(t *testing.T, plan map[string]any, onStep func(stepResult)) []stepResult {
	t.Helper()
	script := nodeClient(t)
	data, _ := json.Marshal(plan)
	cmd := exec.Command("node", script, string(data))
	cmd.Dir = filepath.Dir(script)
	cmd.Stderr = &testWriter{t: t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var results []stepResult
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var r stepResult
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("client printed %q", sc.Text())
				continue
			}
			results = append(results, r)
			if onStep != nil {
				onStep(r)
			}
		}
	}()
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node client: %v", err)
	}
	return results
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func stdioPlan(b *testbus.Bus, args []string, steps []step) map[string]any {
	return map[string]any{
		"transport": "stdio", "command": args[0], "args": args[1:],
		"env":   map[string]string{"DBUS_SYSTEM_BUS_ADDRESS": b.Address, "PATH": os.Getenv("PATH")},
		"steps": steps,
	}
}

func meminfoTotal(t *testing.T) float64 {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	t.Fatal("no MemTotal")
	return 0
}

type annotations struct {
	ReadOnly    *bool `json:"readOnlyHint"`
	Destructive *bool `json:"destructiveHint"`
	Idempotent  *bool `json:"idempotentHint"`
	OpenWorld   *bool `json:"openWorldHint"`
}

type listedTool struct {
	Name         string          `json:"name"`
	Annotations  annotations     `json:"annotations"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema"`
}

func tools(t *testing.T, r stepResult) map[string]listedTool {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("listTools: %s", r.Error)
	}
	var lt struct{ Tools []listedTool }
	if err := json.Unmarshal(r.Result, &lt); err != nil {
		t.Fatal(err)
	}
	out := map[string]listedTool{}
	for _, tl := range lt.Tools {
		out[tl.Name] = tl
	}
	return out
}

func TestSDKClientOverStdioSeesToolsStatusAndEvents(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	// Other tests on this machine exec too: read from the seq before ours.
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	before, err := client.NewClient(conn).NewestSeq(context.Background())
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for range 5 {
		c := exec.Command("/bin/true")
		c.Run()
		pids = append(pids, c.Process.Pid)
	}
	time.Sleep(300 * time.Millisecond) // one journal commit
	res := runNode(t, stdioPlan(b, []string{bin("npllm-agent"), "mcp"}, []step{
		{Op: "listTools"},
		{Op: "callTool", Name: "system_status"},
		{Op: "callTool", Name: "recent_events", Arguments: map[string]any{"kind": "process.exec", "limit": 100, "after_seq": before}},
		{Op: "listPrompts"},
		{Op: "getPrompt", Name: "investigate-process", Arguments: map[string]any{"pid": strconv.Itoa(os.Getpid())}},
		{Op: "readResource", URI: "npllm://status"},
	}), nil)
	if len(res) != 6 {
		t.Fatalf("results %+v", res)
	}
	listed := tools(t, res[0])
	f, tr := false, true
	want := map[string]annotations{
		"system_status": {&tr, &f, &tr, &f}, "list_processes": {&tr, &f, &tr, &f}, "process_details": {&tr, &f, &tr, &f},
		"recent_events": {&tr, &f, &tr, &f}, "unit_status": {&tr, &f, &tr, &f},
		"signal_process": {&f, &tr, &f, &f}, "set_process_priority": {&f, &f, &tr, &f}, "manage_unit": {&f, &tr, &f, &f},
		"list_tunables": {&tr, &f, &tr, &f}, "try_tuning": {&f, &tr, &f, &f}, "confirm_tuning": {&f, &tr, &tr, &f}, "revert_tuning": {&f, &tr, &tr, &f},
	}
	if len(listed) != len(want) {
		t.Errorf("tools %v", listed)
	}
	for name, w := range want {
		got, ok := listed[name]
		if !ok {
			t.Errorf("no tool %s", name)
			continue
		}
		a := got.Annotations
		if a.ReadOnly == nil || a.Destructive == nil || a.Idempotent == nil || a.OpenWorld == nil ||
			*a.ReadOnly != *w.ReadOnly || *a.Destructive != *w.Destructive || *a.Idempotent != *w.Idempotent || *a.OpenWorld != *w.OpenWorld {
			t.Errorf("%s annotations %s", name, mustJSON(a))
		}
		if len(got.OutputSchema) == 0 || len(got.InputSchema) == 0 {
			t.Errorf("%s: no input or output schema", name)
		}
	}
	status := res[1].tool(t)
	if status.IsError || status.StructuredContent["memory_total_bytes"] != meminfoTotal(t) || status.StructuredContent["health"] == "" {
		t.Errorf("system_status: %+v", status)
	}
	for _, key := range []string{"load", "cpu_usage", "memory_available_bytes", "swap_total_bytes", "swap_free_bytes", "pressure", "active_alerts", "top_processes"} {
		if _, ok := status.StructuredContent[key]; !ok {
			t.Errorf("system_status has no %s", key)
		}
	}
	if !strings.Contains(status.text(), "Health") {
		t.Errorf("system_status text %q", status.text())
	}
	events := res[2].tool(t)
	seen := map[float64]bool{}
	evs, _ := events.StructuredContent["events"].([]any)
	for _, e := range evs {
		ev := e.(map[string]any)
		if ev["kind"] != "process.exec" || ev["seq"] == nil {
			t.Errorf("event %v", ev)
		}
		seen[ev["pid"].(float64)] = true
	}
	for _, pid := range pids {
		if !seen[float64(pid)] {
			t.Errorf("exec of pid %d not in recent_events (%d events)", pid, len(evs))
		}
	}
	if !strings.Contains(string(res[3].Result), "diagnose-slowness") || !strings.Contains(string(res[3].Result), "free-memory") {
		t.Errorf("prompts: %s", res[3].Result)
	}
	if !strings.Contains(string(res[4].Result), "process_details") {
		t.Errorf("investigate-process prompt: %s %s", res[4].Result, res[4].Error)
	}
	if res[5].Error != "" || !strings.Contains(string(res[5].Result), "memory_total_bytes") {
		t.Errorf("status resource: %s %s", res[5].Result, res[5].Error)
	}
}

func TestReadOnlyBridgeOffersNoWriteTool(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	res := runNode(t, stdioPlan(b, []string{bin("npllm-agent"), "mcp", "--read-only"}, []step{{Op: "listTools"}}), nil)
	listed := tools(t, res[0])
	for name, tl := range listed {
		if tl.Annotations.ReadOnly == nil || !*tl.Annotations.ReadOnly {
			t.Errorf("--read-only offers %s", name)
		}
	}
	if len(listed) != 6 { // the five above and list_tunables
		t.Errorf("read-only tools: %v", listed)
	}
}

func TestUserCannotSignalRootsProcessThroughTheBridge(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { victim.Process.Kill(); victim.Wait() }()
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := client.NewClient(conn).GetProcess(context.Background(), uint32(victim.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	start := info.StartTime
	// The SDK client spawns the bridge as alice.
	asAlice := []string{"setpriv", "--reuid=" + strconv.Itoa(int(alice.UID)), "--regid=" + strconv.Itoa(int(alice.GID)), "--clear-groups", "--",
		bin("npllm-agent"), "mcp"}
	res := runNode(t, stdioPlan(b, asAlice, []step{
		{Op: "callTool", Name: "signal_process", Arguments: map[string]any{"pid": victim.Process.Pid, "start_time": start, "signal": "KILL"}},
		{Op: "callTool", Name: "signal_process", Arguments: map[string]any{"pid": victim.Process.Pid, "start_time": start + 1, "signal": "KILL"}},
	}), nil)
	refused := res[0].tool(t)
	if !refused.IsError || !strings.Contains(refused.text(), "Refused") || !strings.Contains(refused.text(), "Nothing was changed") {
		t.Errorf("alice's signal_process on root's sleep: %+v", refused)
	}
	if changed := res[1].tool(t); !changed.IsError || !strings.Contains(changed.text(), "process changed") {
		t.Errorf("wrong start_time: %+v", changed)
	}
	if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the target did not survive: %v", err)
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestHTTPNeedsTheTokenRefusesForeignOriginsAndBindsOnlyLoopback(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	runtime := t.TempDir()
	addr := freePort(t)
	agent := exec.Command(bin("npllm-agent"), "mcp", "--http", addr)
	agent.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address, "XDG_RUNTIME_DIR="+runtime)
	agent.Stderr = &testWriter{t: t}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() }()
	tokenFile := filepath.Join(runtime, "npllm", "mcp-token")
	var token string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(tokenFile); err == nil && len(data) > 32 {
			token = strings.TrimSpace(string(data))
			break
		}
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", err, fi)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
	}
	url := "http://" + addr + "/mcp"
	plan := func(headers map[string]string) map[string]any {
		return map[string]any{"transport": "http", "url": url, "headers": headers,
			"steps": []step{{Op: "listTools"}, {Op: "callTool", Name: "system_status"}}}
	}
	res := runNode(t, plan(map[string]string{"Authorization": "Bearer " + token}), nil)
	if len(tools(t, res[0])) != 12 || res[1].tool(t).StructuredContent["memory_total_bytes"] != meminfoTotal(t) {
		t.Errorf("with the token: %+v", res)
	}
	res = runNode(t, plan(nil), nil)
	if len(res) != 1 || res[0].Op != "connect" || res[0].Code != 401 {
		t.Errorf("without a token: %+v", res)
	}
	res = runNode(t, plan(map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}), nil)
	if len(res) != 1 || res[0].Code != 401 {
		t.Errorf("with a wrong token: %+v", res)
	}
	res = runNode(t, plan(map[string]string{"Authorization": "Bearer " + token, "Origin": "http://evil.example"}), nil)
	if len(res) != 1 || res[0].Code != 403 || !strings.Contains(res[0].Error, "evil.example") {
		t.Errorf("foreign origin: %+v", res)
	}
	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:8080", "example.com:80"} {
		out, err := exec.Command(bin("npllm-agent"), "mcp", "--http", bad).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "loopback") {
			t.Errorf("--http %s: %v %s", bad, err, out)
		}
	}
}

func TestResourceSubscriptionHearsAnAlert(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "npllm-test-mcp", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	// Other tests on this machine may raise alerts too (OOM kills are
	// machine-wide): read after each of up to three updates.
	plan := []step{{Op: "subscribe", URI: "npllm://alerts"}}
	for range 3 {
		plan = append(plan, step{Op: "waitUpdate", URI: "npllm://alerts", TimeoutMs: 15000}, step{Op: "readResource", URI: "npllm://alerts"})
	}
	res := runNode(t, stdioPlan(b, []string{bin("npllm-agent"), "mcp"}, plan), func(r stepResult) {
		if r.Op == "subscribe" {
			// Fill the small file system: npllmd raises disk.full.
			if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 3900<<10), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	if len(res) < 3 || res[0].Error != "" || res[1].Error != "" {
		t.Fatalf("subscription: %+v", res)
	}
	for _, r := range res[2:] {
		if r.Op == "readResource" && strings.Contains(string(r.Result), "disk.full") {
			return
		}
		if r.Error != "" {
			break
		}
	}
	t.Errorf("no alerts resource after an update named disk.full: %+v", res[2:])
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
