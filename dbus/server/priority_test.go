package server_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/dbus/api"
)

// grantOwnProcess lets alice manage her own processes (not others', and
// not manage-any-process), as an active session would.
const grantOwnProcess = `polkit.addRule(function(action, subject) {
  if (action.id == "org.npllm.Assistant.manage-own-process" && subject.user == "npllm-alice")
    return polkit.Result.YES;
});`

func (v *victim) setNice(t *testing.T, n int) {
	t.Helper()
	for _, tid := range v.tids(t) {
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil {
			t.Fatal(err)
		}
	}
}

func (v *victim) setIOPrio(t *testing.T, class, level int) {
	t.Helper()
	for _, tid := range v.tids(t) {
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, 1, uintptr(tid), uintptr(class<<13|level)); e != 0 {
			t.Fatal(e)
		}
	}
}

func (v *victim) wantNice(t *testing.T, want int, after string) {
	t.Helper()
	for _, n := range v.nices(t) {
		if n != want {
			t.Errorf("after %s: thread nice values %v, want all %d", after, v.nices(t), want)
			return
		}
	}
}

// The kernel lets an owner raise nice but not lower it below the current
// value without CAP_SYS_NICE; npllmd holds that capability, so it must
// ask for manage-any-process whenever the owner could not do it alone.
func TestLoweringNiceBelowTheCurrentValueNeedsTheAdminAction(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, _ := users(t)
	if err := b.WriteRule("50-alice-own.rules", grantOwnProcess); err != nil {
		t.Fatal(err)
	}
	v := startVictim(t, alice)
	v.setNice(t, 19)
	for _, n := range []string{"0", "15", "18"} {
		if res := asUser(t, b, alice, "act", act("SetProcessPriority", v, n, 0)); !refused(res) {
			t.Errorf("alice renice 19 → %s: %q %s, want a refusal", n, res.Error, res.Message)
		}
		v.wantNice(t, 19, "refused renice to "+n)
	}
	if res := asUser(t, b, alice, "act", act("SetProcessPriority", v, "19", 0)); res.Error != "" {
		t.Errorf("alice renice 19 → 19: %s %s", res.Error, res.Message)
	}
	v.setNice(t, 10)
	if res := asUser(t, b, alice, "act", act("SetProcessPriority", v, "12", 0)); res.Error != "" {
		t.Errorf("alice renice 10 → 12 (lower priority): %s %s", res.Error, res.Message)
	}
	v.wantNice(t, 12, "renice 10 → 12")
	// Root (manage-any-process is granted to root by polkit) may lower it.
	if res := asUser(t, b, root, "act", act("SetProcessPriority", v, "0", 0)); res.Error != "" {
		t.Errorf("root renice 12 → 0: %s %s", res.Error, res.Message)
	}
	v.wantNice(t, 0, "root's renice to 0")
}

func TestRaisingIOPriorityAboveTheCurrentOneNeedsTheAdminAction(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, _ := users(t)
	if err := b.WriteRule("50-alice-own.rules", grantOwnProcess); err != nil {
		t.Fatal(err)
	}
	v := startVictim(t, alice)
	const be, idle = 2, 3
	v.setIOPrio(t, be, 6)
	before := v.ioprio(t)
	for _, a := range []struct {
		class string
		level int32
	}{{"best-effort", 0}, {"best-effort", 5}, {"realtime", 7}} {
		if res := asUser(t, b, alice, "act", act("SetProcessIOPriority", v, a.class, a.level)); !refused(res) {
			t.Errorf("alice ionice be/6 → %s/%d: %q %s, want a refusal", a.class, a.level, res.Error, res.Message)
		}
		if got := v.ioprio(t); got != before {
			t.Errorf("refused ionice changed the I/O priority: %#x → %#x", before, got)
		}
	}
	for _, a := range []struct {
		class string
		level int32
		want  int
	}{{"best-effort", 6, be<<13 | 6}, {"best-effort", 7, be<<13 | 7}, {"idle", 0, idle << 13}} {
		if res := asUser(t, b, alice, "act", act("SetProcessIOPriority", v, a.class, a.level)); res.Error != "" {
			t.Errorf("alice ionice → %s/%d (not higher): %s %s", a.class, a.level, res.Error, res.Message)
		}
		if got := v.ioprio(t); got != a.want {
			t.Errorf("after ionice %s/%d: %#x, want %#x", a.class, a.level, got, a.want)
		}
	}
	if res := asUser(t, b, alice, "act", act("SetProcessIOPriority", v, "best-effort", 7)); !refused(res) {
		t.Errorf("alice ionice idle → best-effort/7: %q %s, want a refusal", res.Error, res.Message)
	}
}

// refused: polkit said no, or asks for a password nobody can give here.
func refused(res helperResult) bool {
	return res.Error == api.ErrNotAuthorized || res.Error == api.ErrInteractiveAuthorizationRequired
}
