package desktop_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/desktop/ask/asktest"
)

// A model's writes through npllmctl ask are consented to afresh, each one:
// the real npllmctl as an unprivileged user, the real npllmd and polkitd,
// a real pkttyagent typing the user's real password. The model server is
// the one double. Needs npllmd's automated-caller actions (agent-*, no
// keep-window): without them polkit's keep-window covers the second write.
func TestAskAsksForConsentForEveryWrite(t *testing.T) {
	testbus.Privileged(t)
	b := testbus.ForTest(t)
	b.DaemonForTest(t, bin("npllmd"))
	u, err := testbus.EnsureUser("npllm-agdave")
	if err != nil {
		t.Fatal(err)
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	if out, err := exec.Command("sh", "-c", "echo 'npllm-agdave:"+password+"' | chpasswd").CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v %s", err, out)
	}
	// No logind session here: a rule stands in for an active session's
	// defaults (a person's own-process action keeps; the agent's does not).
	if err := b.WriteRule("50-agdave.rules", `polkit.addRule(function(action, subject) {
  if (subject.user != "npllm-agdave") return polkit.Result.NOT_HANDLED;
  if (action.id == "org.npllm.Assistant.manage-own-process") return polkit.Result.AUTH_SELF_KEEP;
  if (action.id == "org.npllm.Assistant.agent-manage-own-process") return polkit.Result.AUTH_SELF;
});`); err != nil {
		t.Fatal(err)
	}
	victim := u.Command(b, "sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()
	pid := victim.Process.Pid
	start := startTime(t, pid)

	registered := make(chan struct{})
	gate := func(w *asktest.SSE, req asktest.Request) {
		<-registered // the polkit agent must be there before the first write
		asktest.Calls("set_process_priority", fmt.Sprintf(`{"pid":%d,"start_time":%d,"nice":12}`, pid, start))(w, req)
	}
	m := asktest.New(t, gate,
		asktest.Calls("set_process_priority", fmt.Sprintf(`{"pid":%d,"start_time":%d,"nice":13}`, pid, start)),
		asktest.Answer("Lowered it twice."))
	// The user must read it: t.TempDir's parent is root's only.
	config, err := os.MkdirTemp("", "npllm-agdave-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(config) })
	os.Chmod(config, 0o755)
	os.MkdirAll(filepath.Join(config, "npllm"), 0o755)
	os.WriteFile(filepath.Join(config, "npllm", "agent.toml"), []byte(fmt.Sprintf("[model]\nurl = %q\nmodel = \"qwen2.5:7b\"\n", m.URL())), 0o644)

	ctl := u.Command(b, bin("npllmctl"), "ask", "lower the sleeper's priority")
	ctl.Env = append(ctl.Env, "XDG_CONFIG_HOME="+config)
	var out, errOut bytes.Buffer
	ctl.Stdout, ctl.Stderr = &out, &errOut
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	defer ctl.Process.Kill()
	agentOut, agentIn := b.StartPkttyagent(t, ctl.Process.Pid)
	close(registered)
	prompts := func() int { return strings.Count(agentOut.String(), "Password:") }
	for i, nice := range []int{12, 13} {
		for deadline := time.Now().Add(15 * time.Second); prompts() < i+1; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("write %d: pkttyagent was not asked; it said %q\nnpllmctl: %s", i+1, agentOut.String(), errOut.String())
			}
		}
		if got := niceOf(t, pid); got == nice {
			t.Fatalf("write %d happened before consent (nice %d)", i+1, got)
		}
		if !strings.Contains(agentOut.String(), "org.npllm.Assistant.agent-manage-own-process") {
			t.Errorf("the prompt is not for the automated action:\n%s", agentOut.String())
		}
		agentIn.Write([]byte(password + "\n"))
		for deadline := time.Now().Add(10 * time.Second); niceOf(t, pid) != nice; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("write %d: nice is %d after consent, want %d\nnpllmctl: %s", i+1, niceOf(t, pid), nice, errOut.String())
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "Lowered it twice.") {
			t.Errorf("npllmctl ask: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("npllmctl ask did not finish\n%s", errOut.String())
	}
	if n := prompts(); n != 2 {
		t.Errorf("pkttyagent asked %d times for 2 writes", n)
	}
}

func niceOf(t *testing.T, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	n, _ := strconv.Atoi(f[16])
	return n
}
