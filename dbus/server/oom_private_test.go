package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// An oom.kill event's cgroup path (and an exec's cgroup id, which names the
// same directory under /sys/fs/cgroup) is the owner's and root's: another
// user's GetEvents must not show it (issue 12 follow-up).
func TestOOMKillEventsCgroupIsWithheldFromOtherUsers(t *testing.T) {
	b, _, c := startDaemon(t)
	hog := startHog(t, memoryCgroup(t, 48<<20))
	pid := uint32(hog.Process.Pid)
	var cgroup string
	for deadline := time.Now().Add(15 * time.Second); cgroup == ""; time.Sleep(100 * time.Millisecond) {
		_, evs, err := c.GetEventsWire(context.Background(), 0, 1000, client.EventFilter{Kinds: []string{"oom.kill"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev["pid"].Value() == pid {
				cgroup, _ = ev["cgroup"].Value().(string)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("root sees no oom.kill event with a cgroup for pid %d: %v", pid, evs)
		}
	}
	if !strings.Contains(cgroup, "npllm-test-mem") {
		t.Fatalf("root's oom.kill cgroup %q", cgroup)
	}
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	out, err := alice.Command(b, bin("npllmctl"), "--json", "events", "--kind", "oom.kill", "--limit", "1000").Output()
	if err != nil {
		t.Fatalf("npllmctl events as alice: %v", err)
	}
	if !strings.Contains(string(out), `"oom.kill"`) {
		t.Fatalf("alice sees no oom.kill event at all:\n%s", out)
	}
	if strings.Contains(string(out), "npllm-test-mem") || strings.Contains(string(out), `"cgroup":"/`) { // npllmctl prints it empty
		t.Errorf("alice sees root's OOM cgroup:\n%s", out)
	}
}
