package desktop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// End to end: the real npllm-agent against a real npllmd (private system
// bus, real polkitd) and a real notification server (dunst under Xvfb on
// a private session bus).

var binDir string

func TestMain(m *testing.M) {
	switch os.Getenv("NPLLM_TEST_HELPER") {
	case "hog":
		fmt.Fscanln(os.Stdin)
		var chunks [][]byte
		for range 4096 {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			chunks = append(chunks, b)
		}
		os.Exit(len(chunks) % 2)
	}
	testbus.RunWithBinaries(m, &binDir, "./cmd/npllmd", "./cmd/npllm-agent", "./cmd/npllmctl")
}

func bin(name string) string { return filepath.Join(binDir, name) }

type world struct {
	bus      *testbus.Bus
	daemon   *testbus.Daemon
	desk     *testbus.Desktop
	agent    *exec.Cmd
	agentLog *os.File
	home     string
}

// setup starts npllmd (with extra lines for its [alerts] table), a
// desktop, and the agent. Disks alert only when 100% full, so a CI
// machine's nearly full disk cannot add notifications the test did not
// cause.
func setup(t *testing.T, alerts string) *world { return setupTB(t, alerts) }

func setupB(b *testing.B) *world { return setupTB(b, "") }

func setupTB(t testing.TB, alerts string) *world { return setupWith(t, alerts, "") }

// setupWith also writes the agent's agent.toml before it starts.
func setupWith(t testing.TB, alerts, agentToml string) *world {
	t.Helper()
	w := &world{bus: testbus.ForTest(t)}
	toml := "[alerts]\ndisk_warning_percent = 100\ndisk_critical_percent = 100\n" + alerts
	os.WriteFile(filepath.Join(w.bus.Dir, "npllmd.toml"), []byte(toml), 0o644)
	w.daemon = w.bus.DaemonForTest(t, bin("npllmd"))
	w.desk = testbus.DesktopForTest(t)
	w.home = t.TempDir()
	if agentToml != "" {
		os.MkdirAll(filepath.Join(w.home, "config", "npllm"), 0o755)
		if err := os.WriteFile(filepath.Join(w.home, "config", "npllm", "agent.toml"), []byte(agentToml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.startAgent(t)
	return w
}

func (w *world) env() []string {
	return append(w.desk.Env(), "DBUS_SYSTEM_BUS_ADDRESS="+w.bus.Address,
		"XDG_STATE_HOME="+filepath.Join(w.home, "state"), "XDG_CONFIG_HOME="+filepath.Join(w.home, "config"),
		"XDG_RUNTIME_DIR="+w.home)
}

func (w *world) startAgent(t testing.TB) {
	t.Helper()
	logf, err := os.CreateTemp(w.home, "agent-*.log")
	if err != nil {
		t.Fatal(err)
	}
	w.agentLog = logf
	w.agent = exec.Command(bin("npllm-agent"), "--log-level=debug")
	w.agent.Env = w.env()
	w.agent.Stdout, w.agent.Stderr = logf, logf
	w.agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.agent.Start(); err != nil {
		t.Fatal(err)
	}
	agent := w.agent
	t.Cleanup(func() {
		agent.Process.Signal(syscall.SIGTERM)
		agent.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", w.log())
		}
	})
	w.waitLog(t, "following npllmd")
}

func (w *world) log() string {
	data, _ := os.ReadFile(w.agentLog.Name())
	return string(data)
}

func (w *world) waitLog(t testing.TB, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.log(), s); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("agent never logged %q", s)
		}
	}
}

func (w *world) displayed(t *testing.T) int {
	t.Helper()
	out, err := w.desk.Dunstctl("count", "displayed")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// waitDisplayed waits until cond holds for the number on screen.
func (w *world) waitDisplayed(t *testing.T, what string, cond func(int) bool) int {
	t.Helper()
	var n int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n = w.displayed(t); cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d notifications displayed", what, n)
		}
	}
}

type note struct {
	ID       int
	Summary  string
	Body     string
	Message  string
	Category string
}

// history closes everything on screen and returns dunst's history.
func (w *world) history(t *testing.T) []note {
	t.Helper()
	w.desk.Dunstctl("close-all")
	time.Sleep(200 * time.Millisecond)
	out, err := w.desk.Dunstctl("history")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Data [][]map[string]struct {
			Data any `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &h); err != nil {
		t.Fatalf("dunstctl history: %v\n%s", err, out)
	}
	var notes []note
	for _, n := range h.Data[0] {
		s := func(k string) string { v, _ := n[k].Data.(string); return v }
		id, _ := n["id"].Data.(float64)
		notes = append(notes, note{ID: int(id), Summary: s("summary"), Body: s("body"), Message: s("message"), Category: s("category")})
	}
	return notes
}

// oomKill runs the helper binary under name until the OOM killer ends it.
func oomKill(t *testing.T, exe string, into func(int)) {
	t.Helper()
	hog := exec.Command(exe)
	hog.Env = append(os.Environ(), "NPLLM_TEST_HELPER=hog")
	in, _ := hog.StdinPipe()
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	into(hog.Process.Pid)
	io.WriteString(in, "go\n")
	hog.Wait()
	if ws, _ := hog.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s was not OOM-killed", exe)
	}
}

func TestOOMKillsBecomeOneEscapedNotificationNotAStack(t *testing.T) {
	w := setup(t, "")
	// A process whose name is markup.
	exe := filepath.Join(binDir, "<b>hog")
	data, _ := os.ReadFile(bin("self"))
	os.WriteFile(exe, data, 0o755)
	into := testbus.MemoryCgroup(t, 48<<20, false)
	oomKill(t, exe, into)
	w.waitDisplayed(t, "after one OOM kill", func(n int) bool { return n == 1 })
	for range 5 {
		oomKill(t, exe, into)
	}
	time.Sleep(500 * time.Millisecond)
	if n := w.displayed(t); n > 2 {
		t.Errorf("6 OOM kills left %d notifications on screen", n)
	}
	notes := w.history(t)
	if len(notes) > 2 || len(notes) == 0 {
		t.Fatalf("history: %+v", notes)
	}
	last := notes[0] // newest first
	if !strings.Contains(last.Summary, "processes were killed for lack of memory") || last.Category != "x-npllm.oom.kill" {
		t.Errorf("burst notification: %+v", last)
	}
	for _, n := range notes {
		if strings.Contains(n.Message, "<b>hog") || !strings.Contains(n.Message, "&lt;b&gt;hog") {
			t.Errorf("the process name was not shown literally: %q", n.Message)
		}
	}
}

func TestActionButtonActsThroughTheDaemonAndClearedAlertsClose(t *testing.T) {
	w := setup(t, "cpu_runaway_after = \"1s\"\nprocess_sample_interval = \"300ms\"\n")
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer busy.Process.Kill()
	w.waitDisplayed(t, "runaway notification", func(n int) bool { return n >= 1 })
	// The machine is shared: the busiest process may be someone else's.
	// Click only if the one notification is about this test's own loop.
	w.requireRunawayIs(t, busy.Process.Pid)
	// A click on the notification: dunst invokes its default action,
	// which is "Terminate sh".
	if out, err := w.desk.Dunstctl("action", "0"); err != nil {
		t.Fatalf("dunstctl action: %v %s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- busy.Wait() }()
	select {
	case <-done:
		if ws, _ := busy.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGTERM {
			t.Errorf("busy loop ended by %v, not SIGTERM", busy.ProcessState)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Terminate button did not reach the daemon")
	}
	if !strings.Contains(w.log(), `notification action" action=terminate`) {
		t.Error("no action in the agent log")
	}
	// The alert clears (the process is gone) and its notification closes;
	// what remains on screen is the "Asked sh to quit" result.
	for deadline := time.Now().Add(10 * time.Second); !regexp.MustCompile(`alert cleared" (message_id=\S+ )?id=cpu\.runaway`).MatchString(w.daemon.Log()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the runaway alert never cleared")
		}
	}
	w.waitDisplayed(t, "after the alert cleared", func(n int) bool { return n == 1 })
	notes := w.history(t)
	if len(notes) < 2 || notes[0].Summary != "Asked sh to quit" || notes[1].Summary != "sh keeps a CPU busy" {
		t.Errorf("history: %+v", notes)
	}
}

func TestSpoofedAlertsFromAnotherConnectionAreIgnored(t *testing.T) {
	w := setup(t, "")
	conn, err := w.bus.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	details := map[string]dbus.Variant{"summary": dbus.MakeVariant("your disk is on fire"), "pid": dbus.MakeVariant(uint32(1))}
	if err := conn.Emit(api.ObjectPath, api.Interface+".Alert", "spoof", "critical", "memory.low", details); err != nil {
		t.Fatal(err)
	}
	w.waitLog(t, "ignored a signal not sent by npllmd")
	time.Sleep(300 * time.Millisecond)
	if n := w.displayed(t); n != 0 {
		t.Errorf("a spoofed Alert produced %d notifications", n)
	}
}

func TestDaemonRestartDoesNotDuplicateNotifications(t *testing.T) {
	w := setup(t, "")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "npllm-test-agent", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 5<<20), 0o644) // fills it: ENOSPC
	w.waitDisplayed(t, "disk.full", func(n int) bool { return n == 1 })
	w.daemon.Kill()
	w.waitLog(t, "npllmd is gone")
	start := time.Now()
	w.daemon = w.bus.DaemonForTest(t, bin("npllmd"))
	for strings.Count(w.log(), "following npllmd") < 2 {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("the agent did not follow the new npllmd within 2 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the new daemon raises disk.full again
	if n := w.displayed(t); n != 1 {
		t.Errorf("%d notifications after the restart, want the one updated in place", n)
	}
}

func TestThreeDismissalsMuteAnAppUntilUnmuted(t *testing.T) {
	w := setup(t, "")
	crash := func() {
		exec.Command("sh", "-c", "kill -SEGV $$").Run()
	}
	for i := range 3 {
		crash()
		w.waitDisplayed(t, fmt.Sprintf("crash %d", i+1), func(n int) bool { return n == 1 })
		if _, err := w.desk.Dunstctl("close"); err != nil { // the user dismisses it
			t.Fatal(err)
		}
		w.waitDisplayed(t, "after dismissal", func(n int) bool { return n == 0 || i == 2 })
	}
	// The third dismissal mutes, and says how to undo it.
	w.waitDisplayed(t, "the mute notice", func(n int) bool { return n == 1 })
	notes := w.history(t)
	if !strings.Contains(notes[0].Summary, "No more process.crash alerts about sh") || !strings.Contains(notes[0].Body, "npllmctl unmute process.crash sh") {
		t.Errorf("mute notice: %+v", notes[0])
	}
	crash()
	time.Sleep(time.Second)
	if n := w.displayed(t); n != 0 {
		t.Errorf("a muted crash was shown (%d notifications)", n)
	}
	ctl := exec.Command(bin("npllmctl"), "unmute", "process.crash", "sh")
	ctl.Env = w.env()
	if out, err := ctl.CombinedOutput(); err != nil {
		t.Fatalf("npllmctl unmute: %v %s", err, out)
	}
	crash()
	w.waitDisplayed(t, "after unmute", func(n int) bool { return n == 1 })
}

func TestOneAgentPerSession(t *testing.T) {
	w := setup(t, "")
	second := exec.Command(bin("npllm-agent"))
	second.Env = w.env()
	out, err := second.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "another npllm-agent already runs") {
		t.Errorf("a second agent: %v %s", err, out)
	}
}

// requireRunawayIs fails the test, before any button is clicked, unless
// the only notification shown is the cpu.runaway alert about pid.
func (w *world) requireRunawayIs(t *testing.T, pid int) {
	t.Helper()
	if n := w.displayed(t); n != 1 {
		t.Fatalf("%d notifications shown: not clicking on a shared machine", n)
	}
	conn, err := w.bus.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := client.NewClient(conn).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.ActiveAlerts {
		if a.Kind == api.KindCPURunaway {
			if int(a.PID) != pid {
				t.Fatalf("the runaway alert names pid %d (%s), not this test's loop %d: not clicking", a.PID, a.Comm, pid)
			}
			return
		}
	}
	t.Fatalf("no cpu.runaway alert among %+v", st.ActiveAlerts)
}
