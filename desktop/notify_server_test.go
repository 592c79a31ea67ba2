package desktop

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/testbus"
)

type heard struct {
	id   uint32
	what string
}

// The notification server's own signals are heard, anyone else's (another
// real user's, unicast or broadcast, malformed or well formed) are not,
// also after the name moves to a new server. The bus is a private one
// where the test owns org.freedesktop.Notifications (boundary: no dunst
// needed to tell senders apart; notify_spoof_test.go uses dunst).
func TestNotifyServerHearsOnlyTheNotificationServer(t *testing.T) {
	testbus.Privileged(t)
	b, err := testbus.Start(testbus.Options{Policy: `<policy user="root"><allow own="org.freedesktop.Notifications"/></policy>`})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	own := func() *dbus.Conn {
		c, err := b.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if r, err := c.RequestName(notificationsName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("own %s: %v %v", notificationsName, r, err)
		}
		return c
	}
	server := own()
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan heard, 16)
	s, err := newNotifyServer(conn, func(id uint32, key string) { got <- heard{id, key} },
		func(id uint32, r notify.Reason) { got <- heard{id, r.String()} }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	me := conn.Names()[0]
	for _, args := range [][]string{
		{"--dest", me, "--signal", notificationsIface + ".NotificationClosed", "'x'", "uint32 2"},
		{"--dest", me, "--signal", notificationsIface + ".ActionInvoked", "uint32 7"},
		{"--dest", me, "--signal", notificationsIface + ".ActionInvoked", "uint32 7", "'terminate'"},
		{"--signal", notificationsIface + ".ActionInvoked", "uint32 7", "'terminate'"},
		{"--dest", me, "--signal", notificationsIface + ".NotificationClosed", "uint32 7", "uint32 2"},
	} {
		cmd := alice.Command(b, "gdbus", append([]string{"emit", "--system", "--object-path", notificationsPath}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gdbus emit %v as alice: %v %s", args, err, out)
		}
	}
	emit := func(c *dbus.Conn, member string, body ...any) {
		if err := c.Emit(notificationsPath, notificationsIface+"."+member, body...); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want heard) {
		t.Helper()
		select {
		case h := <-got:
			if h != want {
				t.Fatalf("heard %+v, want %+v (forged signals must not come through)", h, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("did not hear %+v", want)
		}
	}
	emit(server, "ActionInvoked", uint32(8), "lower")
	expect(heard{8, "lower"})
	emit(server, "NotificationClosed", uint32(8), uint32(2))
	expect(heard{8, "DismissedByUser"})
	// The broadcast one never arrives (the match rule names the sender);
	// the four unicast ones arrive and are ignored.
	if n := s.ignored.Load(); n != 4 {
		t.Errorf("ignored %d signals, want 4", n)
	}

	// A new server: the old one is a stranger now.
	if _, err := server.ReleaseName(notificationsName); err != nil {
		t.Fatal(err)
	}
	server2 := own()
	time.Sleep(200 * time.Millisecond)
	emit(server, "ActionInvoked", uint32(9), "terminate")
	emit(server2, "ActionInvoked", uint32(10), "explain")
	expect(heard{10, "explain"})
}
