package desktop_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/desktop/ask/asktest"
)

// npllmctl ask end to end: the real npllmctl binary, the real npllmd on a
// private bus with real polkitd, and desktop/tools behind the ask loop.
// The model server is the one double (asktest: no weights can be fetched
// here), scripted per test.

// modelConfig writes an agent.toml naming the scripted model and returns
// the XDG_CONFIG_HOME holding it.
func modelConfig(t *testing.T, m *asktest.Model) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "npllm"), 0o755)
	toml := fmt.Sprintf("[model]\nurl = %q\nmodel = \"qwen2.5:7b\"\n", m.URL())
	if err := os.WriteFile(filepath.Join(dir, "npllm", "agent.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runAsk(t *testing.T, b *testbus.Bus, config string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin("npllmctl"), append([]string{"ask"}, args...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address, "XDG_CONFIG_HOME="+config)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func memTotalBytes(t *testing.T) uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(data)
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n * 1024
}

func TestAskAnswersWithFiguresFromTheMachine(t *testing.T) {
	testbus.Privileged(t)
	b := testbus.ForTest(t)
	b.DaemonForTest(t, bin("npllmd"))
	m := asktest.New(t,
		asktest.Calls("system_status", "{", "}"),
		// The model quotes the figure it was given, as a real one would.
		func(w *asktest.SSE, req asktest.Request) {
			got := regexp.MustCompile(`"memory_total_bytes":(\d+)`).FindStringSubmatch(fmt.Sprint(req.Last("tool")["content"]))
			if got == nil {
				w.Text("no figure")
			} else {
				w.Text("Your machine has ", got[1], " bytes of memory in total.")
			}
			w.Finish("stop")
			w.Done()
		})
	out, errOut, code := runAsk(t, b, modelConfig(t, m), "how much memory is there?")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	want := fmt.Sprintf("Your machine has %d bytes of memory in total.", memTotalBytes(t))
	if !strings.Contains(out, want) {
		t.Errorf("answer %q, want %q (/proc/meminfo)", out, want)
	}
	if !strings.Contains(errOut, "→ system_status {}") || !strings.Contains(errOut, "← system_status: Health") {
		t.Errorf("tool calls not shown:\n%s", errOut)
	}
	reqs := m.Got()
	if len(reqs) != 2 || !strings.Contains(strings.Join(reqs[0].ToolNames(), ","), "signal_process") {
		t.Errorf("requests %d, tools %v", len(reqs), reqs[0].ToolNames())
	}
}

func TestAskNoActOffersNoWriteAndHostileRepliesChangeNothing(t *testing.T) {
	testbus.Privileged(t)
	b := testbus.ForTest(t)
	b.DaemonForTest(t, bin("npllmd"))
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()
	start := startTime(t, victim.Process.Pid)
	m := asktest.New(t,
		// Not offered under --no-act: called anyway.
		asktest.Calls("signal_process", fmt.Sprintf(`{"pid":%d,"start_time":%d,"signal":"KILL"}`, victim.Process.Pid, start)),
		// Arguments the tool refuses, and a tool that does not exist.
		asktest.Calls("process_details", `{"pid":"1; rm -rf /"}`),
		asktest.Calls("rm_rf", `{}`),
		// Cut JSON with finish_reason tool_calls.
		func(w *asktest.SSE, _ asktest.Request) {
			w.ToolCall(0, "call_cut", "process_details", `{"pid":`)
			w.Finish("tool_calls")
			w.Done()
		},
		asktest.Answer("I cannot change anything in this session."))
	out, errOut, code := runAsk(t, b, modelConfig(t, m), "--no-act", "--json", "kill the sleeper")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	time.Sleep(200 * time.Millisecond)
	if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the sleeper is gone: %v", err)
	}
	for _, r := range m.Got() {
		for _, name := range r.ToolNames() {
			if slices.Contains(writeTools, name) {
				t.Errorf("--no-act offered %s", name)
			}
		}
		if !slices.Contains(r.ToolNames(), "list_tunables") {
			t.Errorf("--no-act does not offer list_tunables: %v", r.ToolNames())
		}
	}
	var tr struct {
		ReadOnly bool `json:"read_only"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Error   string `json:"error"`
			Note    string `json:"note"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	var tools []string
	for _, msg := range tr.Messages {
		if msg.Role == "tool" {
			tools = append(tools, msg.Content+msg.Error+msg.Note)
		}
	}
	if !tr.ReadOnly || len(tools) != 4 {
		t.Fatalf("transcript: read_only %v, tool messages %q", tr.ReadOnly, tools)
	}
	for i, want := range []string{"signal_process", "pid must be an integer", "rm_rf", "JSON"} {
		if !strings.Contains(tools[i], want) {
			t.Errorf("tool message %d = %q, want it to mention %q", i, tools[i], want)
		}
	}
	if last := tr.Messages[len(tr.Messages)-1]; last.Content != "I cannot change anything in this session." {
		t.Errorf("last message %+v", last)
	}
}

// startTime reads field 22 of /proc/PID/stat.
func startTime(t *testing.T, pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// A write the model asks for goes through the shared tool set, npllmd and
// real polkit (root here: authorized without a prompt) to the process.
// The fresh-consent prompt for each automated write is npllmd's part
// (polkit actions agent-*) and is tested with pkttyagent there.
func TestAskWriteReachesTheProcessThroughTheDaemon(t *testing.T) {
	testbus.Privileged(t)
	b := testbus.ForTest(t)
	b.DaemonForTest(t, bin("npllmd"))
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()
	args := fmt.Sprintf(`{"pid":%d,"start_time":%d,"signal":"TERM"}`, victim.Process.Pid, startTime(t, victim.Process.Pid))
	m := asktest.New(t, asktest.Calls("signal_process", args[:10], args[10:]), asktest.Answer("Done."))
	out, errOut, code := runAsk(t, b, modelConfig(t, m), "stop the sleeper")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	done := make(chan error, 1)
	go func() { done <- victim.Wait() }()
	select {
	case <-done:
		if ws, _ := victim.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGTERM {
			t.Errorf("the sleeper ended by %v, not SIGTERM", victim.ProcessState)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the sleeper did not get the signal\n%s", errOut)
	}
	if !strings.Contains(errOut, "← signal_process: Sent TERM to pid") {
		t.Errorf("tool result not shown:\n%s", errOut)
	}
}
