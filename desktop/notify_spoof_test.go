package desktop_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// sessionSignal sends a signal on the session bus, to dest ("" broadcasts).
func sessionSignal(t *testing.T, conn *dbus.Conn, dest, member string, body ...any) {
	t.Helper()
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/Notifications")), dbus.FieldInterface: dbus.MakeVariant("org.freedesktop.Notifications"),
		dbus.FieldMember: dbus.MakeVariant(member), dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...))}, Body: body}
	if dest != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
	}
	if err := conn.Send(msg, nil).Err; err != nil {
		t.Fatal(err)
	}
}

// Another program on the session bus (issue 12 follow-up) sends the agent
// ActionInvoked "terminate" for its runaway notification, a forged
// dismissal, and malformed signals: nothing is pressed, nothing forgotten,
// the agent lives; dunst's own click still works.
func TestForgedNotificationSignalsPressNoButtonAndCrashNothing(t *testing.T) {
	w := setup(t, "cpu_runaway_after = \"1s\"\nprocess_sample_interval = \"300ms\"\n")
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer busy.Process.Kill()
	done := make(chan struct{})
	go func() { busy.Wait(); close(done) }()
	// The notification about this test's loop (the machine is shared: there
	// may be others).
	shown := regexp.MustCompile(`msg="notification shown" id=(\d+) kind=cpu\.runaway alert=cpu\.runaway/` + strconv.Itoa(busy.Process.Pid) + `/`)
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; time.Sleep(100 * time.Millisecond) {
		if m = shown.FindStringSubmatch(w.log()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no runaway notification about pid %d in the agent log:\n%s", busy.Process.Pid, w.log())
		}
	}
	id64, _ := strconv.ParseUint(m[1], 10, 32)
	id := uint32(id64)

	session, err := dbus.Connect(w.desk.SessionAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	agent := w.agentConnName(t, session)
	for _, dest := range []string{agent, ""} {
		sessionSignal(t, session, dest, "NotificationClosed", "x", uint32(2)) // the reviewer's crash
		sessionSignal(t, session, dest, "ActionInvoked", "x")
		sessionSignal(t, session, dest, "ActionInvoked", id, "terminate")
		sessionSignal(t, session, dest, "NotificationClosed", id, uint32(2)) // a forged dismissal
	}
	w.waitLog(t, "ignored a notification signal not sent by the notification server")
	select {
	case <-done:
		t.Fatalf("a forged ActionInvoked terminated the process: %v", busy.ProcessState)
	case <-time.After(time.Second):
	}
	if err := w.agent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the agent died: %v\n%s", err, w.log())
	}
	if strings.Contains(w.log(), `notification action" action=terminate`) {
		t.Fatal("the agent acted on a forged ActionInvoked")
	}
	// dunst's own click is still heard, and the forged dismissal made the
	// agent forget nothing (notify_server_test.go checks the server's own
	// signals where no other notification can be on screen).
	if w.displayed(t) != 1 {
		t.Log("other notifications on this shared machine: not clicking")
		return
	}
	w.requireRunawayIs(t, busy.Process.Pid)
	if out, err := w.desk.Dunstctl("action", "0"); err != nil {
		t.Fatalf("dunstctl action: %v %s", err, out)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("dunst's Terminate click did not reach the daemon")
	}
}
