package desktop_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/desktop/ask/asktest"
)

// The tuning tools through the ask door: the real npllmctl, npllmd,
// polkitd and kernel (vm.swappiness, restored at cleanup); the model is
// the scripted double.

var writeTools = []string{"signal_process", "set_process_priority", "manage_unit", "try_tuning", "confirm_tuning", "revert_tuning"}

const swappinessPath = "/proc/sys/vm/swappiness"

func swappiness(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(swappinessPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestAskTriesATuningTrialAndRevertsIt(t *testing.T) {
	testbus.Privileged(t)
	b := testbus.ForTest(t)
	b.DaemonForTest(t, bin("npllmd"))
	orig := swappiness(t)
	t.Cleanup(func() {
		if err := os.WriteFile(swappinessPath, []byte(orig), 0o644); err != nil {
			t.Errorf("restore vm.swappiness: %v", err)
		}
	})
	v := "41"
	if orig == v {
		v = "42"
	}
	type seen struct{ during, id string }
	seenc := make(chan seen, 1) // from the model server's goroutine
	m := asktest.New(t,
		asktest.Calls("try_tuning", fmt.Sprintf(`{"changes":{"vm.swappiness":%s},"canary_seconds":1,"lease_minutes":1,"watch":["psi.memory.some"]}`, v)),
		// The model reads the trial id from the result, as a real one would.
		func(w *asktest.SSE, req asktest.Request) {
			var s seen
			if b, err := os.ReadFile(swappinessPath); err == nil { // not t.Fatal: this is not the test's goroutine
				s.during = strings.TrimSpace(string(b))
			}
			if m := regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(fmt.Sprint(req.Last("tool")["content"])); m != nil {
				s.id = m[1]
			}
			seenc <- s
			w.ToolCall(0, "call_revert", "revert_tuning", fmt.Sprintf(`{"trial_id":%q}`, s.id))
			w.Finish("tool_calls")
			w.Done()
		},
		asktest.Answer("Tried and undone."))
	out, errOut, code := runAsk(t, b, modelConfig(t, m), "try a lower swappiness")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if reqs := m.Got(); len(reqs) == 0 || !slices.Contains(reqs[0].ToolNames(), "try_tuning") || !slices.Contains(reqs[0].ToolNames(), "list_tunables") {
		t.Fatalf("the ask door does not offer the tuning tools: %v", m.Got())
	}
	var s seen
	select {
	case s = <-seenc:
	default:
		t.Fatalf("the model was not asked after try_tuning\n%s", errOut)
	}
	during, id := s.during, s.id
	if during != v || id == "" {
		t.Errorf("during the trial vm.swappiness = %s (want %s), trial id %q\n%s", during, v, id, errOut)
	}
	if got := swappiness(t); got != orig {
		t.Errorf("after revert_tuning vm.swappiness = %s, want %s back\n%s", got, orig, errOut)
	}
	if !strings.Contains(errOut, "← try_tuning: Trial "+id+" started (vm.swappiness="+v+")") || !strings.Contains(errOut, "← revert_tuning: Trial "+id+": reverted") {
		t.Errorf("tool results not shown:\n%s", errOut)
	}
}
