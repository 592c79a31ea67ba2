package mcp_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/testbus"
)

const swappinessPath = "/proc/sys/vm/swappiness"

func swappiness(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(swappinessPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// keepSwappiness restores vm.swappiness at cleanup and returns it with a
// value a trial can set.
func keepSwappiness(t *testing.T) (orig, other string) {
	t.Helper()
	orig = swappiness(t)
	t.Cleanup(func() {
		if err := os.WriteFile(swappinessPath, []byte(orig), 0o644); err != nil {
			t.Errorf("restore vm.swappiness: %v", err)
		}
	})
	other = "37"
	if orig == other {
		other = "38"
	}
	return orig, other
}

func TestSDKClientListsTunablesTriesAndRevertsAsRoot(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	orig, v := keepSwappiness(t)
	var during string
	var id string
	res := runNode(t, stdioPlan(b, []string{bin("npllm-agent"), "mcp"}, []step{
		{Op: "callTool", Name: "list_tunables"},
		{Op: "callTool", Name: "try_tuning", Arguments: map[string]any{"changes": map[string]any{"vm.swappiness": v}, "canary_seconds": 1, "lease_minutes": 1}},
		{Op: "callTool", Name: "list_tunables"},
		{Op: "getPrompt", Name: "tune-for-workload", Arguments: map[string]any{"workload": "build.service"}},
	}), func(r stepResult) {
		if r.Op == "callTool" && r.Name == "try_tuning" {
			during = swappiness(t)
		}
	})
	if len(res) != 4 {
		t.Fatalf("results %+v", res)
	}
	list := res[0].tool(t)
	rows, _ := list.StructuredContent["tunables"].([]any)
	found := false
	for _, r := range rows {
		row := r.(map[string]any)
		if row["knob"] == "vm.swappiness" {
			found = true
			if row["current"] != orig || row["values"] != "0 to 200" || row["risk"] == "" {
				t.Errorf("vm.swappiness row %v, want current %s, values 0 to 200", row, orig)
			}
		}
	}
	if !found || list.IsError {
		t.Fatalf("list_tunables has no vm.swappiness: %+v", list)
	}
	tried := res[1].tool(t)
	if tried.IsError || during != v {
		t.Fatalf("try_tuning: %+v; vm.swappiness %s during it, want %s", tried, during, v)
	}
	trial, _ := tried.StructuredContent["trial"].(map[string]any)
	id, _ = trial["id"].(string)
	if id == "" || !strings.Contains(tried.text(), "unless confirmed") {
		t.Errorf("try_tuning result %+v names no trial or deadline", tried)
	}
	if again := res[2].tool(t); !strings.Contains(mustJSON(again.StructuredContent), id) {
		t.Errorf("list_tunables after the try does not show trial %s: %v", id, again.StructuredContent)
	}
	if res[3].Error != "" || !strings.Contains(string(res[3].Result), "try_tuning") {
		t.Errorf("tune-for-workload prompt: %s %s", res[3].Result, res[3].Error)
	}
	res = runNode(t, stdioPlan(b, []string{bin("npllm-agent"), "mcp"}, []step{
		{Op: "callTool", Name: "revert_tuning", Arguments: map[string]any{"trial_id": id}},
	}), nil)
	if r := res[0].tool(t); r.IsError || swappiness(t) != orig {
		t.Errorf("revert_tuning: %+v; vm.swappiness %s, want %s back", r, swappiness(t), orig)
	}
}

// The bridge sends trials as automated and without a kept authorization:
// run as a user with no polkit agent, it is refused and nothing changes.
func TestUserCannotTuneThroughTheBridge(t *testing.T) {
	testbus.Privileged(t)
	b := startDaemon(t)
	orig, v := keepSwappiness(t)
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	asAlice := []string{"setpriv", "--reuid=" + strconv.Itoa(int(alice.UID)), "--regid=" + strconv.Itoa(int(alice.GID)), "--clear-groups", "--",
		bin("npllm-agent"), "mcp"}
	res := runNode(t, stdioPlan(b, asAlice, []step{
		{Op: "callTool", Name: "try_tuning", Arguments: map[string]any{"changes": map[string]any{"vm.swappiness": v}}},
		{Op: "callTool", Name: "try_tuning", Arguments: map[string]any{"changes": map[string]any{"vm.swappiness": "500"}}},
	}), nil)
	if r := res[0].tool(t); !r.IsError || !strings.Contains(r.text(), "Refused") || !strings.Contains(r.text(), "Nothing was changed") {
		t.Errorf("alice's try_tuning: %+v", r)
	}
	if r := res[1].tool(t); !r.IsError || !strings.Contains(r.text(), "Invalid request") {
		t.Errorf("try_tuning vm.swappiness=500: %+v", r)
	}
	if got := swappiness(t); got != orig {
		t.Errorf("vm.swappiness = %s, want %s untouched", got, orig)
	}
}
