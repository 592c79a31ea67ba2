package server_test

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
)

var root = testbus.User{Name: "root"}

func users(t *testing.T) (alice, bob testbus.User) {
	t.Helper()
	var err error
	if alice, err = testbus.EnsureUser("npllm-alice"); err != nil {
		t.Fatal(err)
	}
	if bob, err = testbus.EnsureUser("npllm-bob"); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// victim is a process owned by u; it has two threads so that renice must
// reach more than the main one.
type victim struct {
	cmd   *exec.Cmd
	pid   uint32
	start uint64
	done  chan struct{}
	state *os.ProcessState
}

func startVictim(t *testing.T, u testbus.User) *victim {
	t.Helper()
	// The test binary in helper mode sleeps with several Go runtime
	// threads, so renice has more than the main thread to reach.
	cmd := exec.Command(bin("self"), "-")
	cmd.Env = append(os.Environ(), "NPLLM_TEST_HELPER=sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &victim{cmd: cmd, pid: uint32(cmd.Process.Pid), done: make(chan struct{})}
	go func() { cmd.Wait(); v.state = cmd.ProcessState; close(v.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-v.done })
	// Wait until its threads exist.
	deadline := time.Now().Add(5 * time.Second)
	for len(v.tids(t)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	v.start = statField(t, v.pid, 22)
	return v
}

func (v *victim) alive() bool {
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

func (v *victim) tids(t *testing.T) []int {
	entries, _ := os.ReadDir("/proc/" + strconv.Itoa(int(v.pid)) + "/task")
	var out []int
	for _, e := range entries {
		n, _ := strconv.Atoi(e.Name())
		out = append(out, n)
	}
	return out
}

// nices returns the nice value of every thread.
func (v *victim) nices(t *testing.T) []int {
	var out []int
	for _, tid := range v.tids(t) {
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, 20-p) // the raw syscall returns 20 - nice
	}
	return out
}

func (v *victim) ioprio(t *testing.T) int {
	r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, 1, uintptr(v.pid), 0)
	if e != 0 {
		t.Fatal(e)
	}
	return int(r)
}

// statField reads field n (1-based, as in proc(5)) of /proc/pid/stat.
func statField(t testing.TB, pid uint32, n int) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	v, _ := strconv.ParseUint(f[n-3], 10, 64)
	return v
}

func act(method string, v *victim, value string, level int32) actArgs {
	return actArgs{Method: method, PID: v.pid, Start: v.start, Value: value, Level: level}
}

func TestAnotherUserCannotSignalReniceOrIoniceMyProcess(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, bob := users(t)
	v := startVictim(t, alice)
	niceBefore, ioBefore := v.nices(t), v.ioprio(t)

	for _, a := range []actArgs{
		act("SignalProcess", v, "KILL", 0),
		act("SetProcessPriority", v, "19", 0),
		act("SetProcessIOPriority", v, "idle", 0),
	} {
		for _, op := range []string{"act", "act-interactive"} {
			res := asUser(t, b, bob, op, a)
			if res.Error != api.ErrNotAuthorized && res.Error != api.ErrInteractiveAuthorizationRequired {
				t.Errorf("bob %s %s on alice's process: error %q (%s), want a named refusal", op, a.Method, res.Error, res.Message)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if !v.alive() {
		t.Fatal("alice's process died after bob's refused KILL")
	}
	// Go's runtime may start threads meanwhile: every thread, old or new,
	// must still have the nice value all had before.
	for _, n := range v.nices(t) {
		if n != niceBefore[0] {
			t.Errorf("nice changed after refusal: %v → %v", niceBefore, v.nices(t))
			break
		}
	}
	if got := v.ioprio(t); got != ioBefore {
		t.Errorf("I/O priority changed after refusal: %#x → %#x", ioBefore, got)
	}
}

func TestOwnerGrantedByRulesCanTermAndReniceAndDetailsReachPolkit(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, _ := users(t)
	v := startVictim(t, alice)

	// Without a rule alice has no active session, and manage-own-process is
	// "no" outside one.
	if res := asUser(t, b, alice, "act", act("SignalProcess", v, "TERM", 0)); res.Error != api.ErrNotAuthorized {
		t.Fatalf("alice TERM without a rule: %q %s, want NotAuthorized", res.Error, res.Message)
	}
	// The rule only grants what the details describe: alice, her own
	// process by pid and comm, TERM or nice 7.
	rule := `polkit.addRule(function(action, subject) {
  if (action.id == "org.npllm.Assistant.manage-own-process" && subject.user == "npllm-alice" &&
      action.lookup("pid") == "` + strconv.Itoa(int(v.pid)) + `" && action.lookup("user") == "npllm-alice" &&
      action.lookup("comm") == "self" &&
      (action.lookup("signal") == "TERM" || action.lookup("nice") == "7"))
    return polkit.Result.YES;
});`
	if err := b.WriteRule("50-alice.rules", rule); err != nil {
		t.Fatal(err)
	}
	if res := asUser(t, b, alice, "act", act("SetProcessPriority", v, "8", 0)); res.Error != api.ErrNotAuthorized {
		t.Errorf("nice 8 is not in the rule: %q %s, want NotAuthorized", res.Error, res.Message)
	}
	if res := asUser(t, b, alice, "act", act("SetProcessPriority", v, "7", 0)); res.Error != "" {
		t.Fatalf("alice renice 7: %s %s", res.Error, res.Message)
	}
	for _, n := range v.nices(t) {
		if n != 7 {
			t.Errorf("thread nice values after renice 7: %v", v.nices(t))
			break
		}
	}
	if res := asUser(t, b, alice, "act", act("SignalProcess", v, "HUP", 0)); res.Error != api.ErrNotAuthorized {
		t.Errorf("HUP is not in the rule: %q %s", res.Error, res.Message)
	}
	if res := asUser(t, b, alice, "act", act("SignalProcess", v, "TERM", 0)); res.Error != "" {
		t.Fatalf("alice TERM: %s %s", res.Error, res.Message)
	}
	select {
	case <-v.done:
		if ws := v.state.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("victim ended with %v, want SIGTERM", v.state)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("victim still alive 5 s after an authorized TERM")
	}
}

func TestWrongStartTimeIsProcessChangedAndTargetSurvives(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, _ := users(t)
	v := startVictim(t, alice)
	a := act("SignalProcess", v, "KILL", 0)
	a.Start++
	if res := asUser(t, b, root, "act", a); res.Error != api.ErrProcessChanged {
		t.Fatalf("KILL with a wrong start_time: %q %s, want ProcessChanged", res.Error, res.Message)
	}
	time.Sleep(100 * time.Millisecond)
	if !v.alive() {
		t.Fatal("target died")
	}
}

func TestRefusedTargetsAndBadArgumentsAreInvalidArgument(t *testing.T) {
	b, d, _ := startDaemon(t)
	alice, _ := users(t)
	v := startVictim(t, alice)
	self := uint32(d.Cmd.Process.Pid)
	cases := []struct {
		name string
		a    actArgs
		want string
	}{
		{"pid 1", actArgs{Method: "SignalProcess", PID: 1, Start: statField(t, 1, 22), Value: "TERM"}, api.ErrInvalidArgument},
		{"kernel thread", actArgs{Method: "SignalProcess", PID: 2, Start: statField(t, 2, 22), Value: "TERM"}, api.ErrInvalidArgument},
		{"npllmd itself", actArgs{Method: "SignalProcess", PID: self, Start: statField(t, self, 22), Value: "KILL"}, api.ErrInvalidArgument},
		{"unknown signal", act("SignalProcess", v, "USR1", 0), api.ErrInvalidArgument},
		{"signal number", act("SignalProcess", v, "9", 0), api.ErrInvalidArgument},
		{"nice too high", act("SetProcessPriority", v, "20", 0), api.ErrInvalidArgument},
		{"nice too low", act("SetProcessPriority", v, "-21", 0), api.ErrInvalidArgument},
		{"unknown I/O class", act("SetProcessIOPriority", v, "fast", 0), api.ErrInvalidArgument},
		{"I/O level 8", act("SetProcessIOPriority", v, "idle", 8), api.ErrInvalidArgument},
		{"missing pid", actArgs{Method: "SignalProcess", PID: 0x7ffffff0, Value: "TERM"}, api.ErrNoSuchProcess},
		{"unit without type", actArgs{Method: "ManageUnit", Value: "cups", Verb: "restart"}, api.ErrInvalidArgument},
		{"unit with slash", actArgs{Method: "ManageUnit", Value: "../etc/passwd.service", Verb: "restart"}, api.ErrInvalidArgument},
		{"unit template", actArgs{Method: "ManageUnit", Value: "getty@.service", Verb: "start"}, api.ErrInvalidArgument},
		{"unit verb", actArgs{Method: "ManageUnit", Value: "cups.service", Verb: "enable"}, api.ErrInvalidArgument},
	}
	for _, tc := range cases {
		res := asUser(t, b, root, "act", tc.a)
		if res.Error != tc.want {
			t.Errorf("%s: %q %s, want %s", tc.name, res.Error, res.Message, tc.want)
		}
	}
	if !v.alive() {
		t.Error("victim died")
	}
	if _, done := d.Wait(0); done {
		t.Fatal("npllmd exited")
	}
}

func TestManageUnitIsNotSupportedWithoutSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd is PID 1 here; ManageUnit is tested in the container harness")
	}
	b, _, _ := startDaemon(t)
	res := asUser(t, b, root, "act", actArgs{Method: "ManageUnit", Value: "cups.service", Verb: "restart"})
	if res.Error != api.ErrNotSupported || !strings.Contains(res.Message, "systemd") {
		t.Errorf("ManageUnit without systemd: %q %s", res.Error, res.Message)
	}
}

func TestChallengeWithoutInteractiveFlagAndAgentAskedWithIt(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, bob := users(t)
	v := startVictim(t, alice)

	// manage-any-process is auth_admin: polkit would challenge.
	if res := asUser(t, b, bob, "act", act("SignalProcess", v, "TERM", 0)); res.Error != api.ErrInteractiveAuthorizationRequired {
		t.Fatalf("without the flag: %q %s, want InteractiveAuthorizationRequired", res.Error, res.Message)
	}

	// With the flag, polkit asks the authentication agent registered for
	// the caller: a real pkttyagent. Its banner proves the flag reached
	// polkit and the message names the target from our details.
	caller := helperCmd(b, bob, "act-after-stdin", act("SignalProcess", v, "TERM", 0))
	stdin, _ := caller.StdinPipe()
	out := &strings.Builder{}
	caller.Stdout = out
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	// pkttyagent insists on a controlling terminal: script(1) gives it one.
	// It closes its --notify-fd once registered; a FIFO opened only by
	// pkttyagent's shell carries that to us.
	fifo := t.TempDir() + "/registered"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	agent := exec.Command("script", "--quiet", "--flush", "--command",
		"exec pkttyagent --process "+strconv.Itoa(caller.Process.Pid)+" --notify-fd 3 3>"+fifo, "/dev/null")
	agent.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	agentOut, _ := agent.StdoutPipe()
	agent.Stderr = agent.Stdout
	agentIn, _ := agent.StdinPipe()
	if err := agent.Start(); err != nil {
		t.Fatalf("pkttyagent: %v", err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	registered := make(chan error, 1)
	go func() {
		f, err := os.Open(fifo)
		if err == nil {
			_, err = f.Read(make([]byte, 1)) // EOF once pkttyagent closes it
			f.Close()
		}
		registered <- err
	}()
	select {
	case <-registered:
	case <-time.After(15 * time.Second):
		t.Fatal("pkttyagent did not register within 15 s")
	}

	stdin.Write([]byte("go\n"))
	lines := make(chan string, 32)
	go func() {
		sc := bufio.NewScanner(agentOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner []string
	deadline := time.After(15 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait
			}
			banner = append(banner, l)
			if strings.Contains(l, "Authentication is required") {
				break wait
			}
		case <-deadline:
			t.Fatalf("pkttyagent was not asked within 15 s; it said: %q", banner)
		}
	}
	text := strings.Join(banner, "\n")
	t.Logf("pkttyagent said:\n%s", text)
	if !strings.Contains(text, "org.npllm.Assistant.manage-any-process") ||
		!strings.Contains(text, "send SIGTERM to self (pid "+strconv.Itoa(int(v.pid))+") owned by npllm-alice") {
		t.Errorf("pkttyagent banner does not name the action and target:\n%s", text)
	}
	// Refuse: close the agent's input so authentication fails.
	agentIn.Close()
	agent.Process.Kill()
	caller.Wait()
	var res helperResult
	if err := jsonUnmarshal(out.String(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Error != api.ErrNotAuthorized {
		t.Errorf("after the agent gave up: %q %s, want NotAuthorized", res.Error, res.Message)
	}
	if !v.alive() {
		t.Error("target died although authentication failed")
	}
}
