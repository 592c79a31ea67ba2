package desktop_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/desktop/ask/asktest"
)

// "Explain" end to end: a real OOM kill, the real npllmd, the real agent
// and dunst; the scripted model (asktest) is the one double. "Explain" is
// clicked through dunst's context menu (testbus.Desktop.Invoke).
func TestExplainOnARealOOMKillUpdatesTheNotification(t *testing.T) {
	testbus.Privileged(t)
	m := asktest.New(t, asktest.Answer("npllmleaky used more memory than its cgroup allows. EXPLAINED-42"))
	w := setupWith(t, "", fmt.Sprintf("[model]\nurl = %q\nmodel = \"qwen2.5:7b\"\n", m.URL()))
	w.waitLog(t, "Explain button on: local model found")

	exe := filepath.Join(binDir, "npllmleaky")
	data, _ := os.ReadFile(bin("self"))
	os.WriteFile(exe, data, 0o755)
	into := testbus.MemoryCgroup(t, 48<<20, false)
	oomKill(t, exe, into)
	w.waitDisplayed(t, "after the OOM kill", func(n int) bool { return n >= 1 })
	time.Sleep(300 * time.Millisecond) // let dunst settle on its id

	// Other tests on this machine may cause alerts too: find the id of
	// this OOM kill's notification in the agent's log.
	var id uint64
	for deadline := time.Now().Add(10 * time.Second); id == 0; time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(w.log(), "\n") {
			if strings.Contains(l, `msg="notification shown"`) && strings.Contains(l, "kind=oom.kill") {
				fmt.Sscanf(l[strings.Index(l, " id=")+4:], "%d", &id)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no OOM notification in the agent log:\n%s", w.log())
		}
	}
	// A click on its "Explain" (the agent hears ActionInvoked only from
	// the notification server).
	if err := w.desk.Invoke(fmt.Sprintf("[%d,explain]", id)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(m.Got()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			dm, _ := os.ReadFile(filepath.Join(w.desk.Dir, "dmenu.in"))
			t.Fatalf("the model was never asked; dunst menu %q; agent log:\n%s", dm, w.log())
		}
	}
	req := m.Got()[0]
	prompt := fmt.Sprint(req.Last("user")["content"])
	for _, want := range []string{`Alert: {"id":"oom.kill/`, `"kind":"oom.kill"`, "npllmleaky", `Its event: {"seq":`, "Baseline", "Recent related events"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("the model's request lacks %q:\n%s", want, prompt)
		}
	}
	for _, name := range req.ToolNames() {
		if slices.Contains(writeTools, name) {
			t.Errorf("Explain offered the write tool %s", name)
		}
	}
	// The answer replaces the notification's body, in place.
	w.waitLog(t, "alert explained")
	time.Sleep(300 * time.Millisecond)
	notes := w.history(t)
	found := false
	for _, n := range notes {
		if strings.Contains(n.Body, "EXPLAINED-42") {
			found = true
			if uint64(n.ID) != id || !strings.Contains(n.Summary, "npllmleaky") {
				t.Errorf("explanation in notification %d %q, not in place of the OOM kill's (%d)", n.ID, n.Summary, id)
			}
		}
	}
	if !found {
		t.Errorf("no notification shows the answer: %+v\nagent log:\n%s", notes, w.log())
	}
}
