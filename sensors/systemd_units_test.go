package sensors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
)

// fakeSystemd owns org.freedesktop.systemd1 on a private bus. Boundary:
// systemd is not PID 1 here and cannot own the name on a private bus, so
// the test stands in for it with the three methods the sensor calls; the
// bus, the match rules, the senders and the other user are real.
func fakeSystemd(t *testing.T, b *testbus.Bus) *dbus.Conn {
	t.Helper()
	c, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	type unit struct {
		Name, Description, Load, Active, Sub, Following string
		Path                                            dbus.ObjectPath
		JobID                                           uint32
		JobType                                         string
		JobPath                                         dbus.ObjectPath
	}
	if err := c.ExportMethodTable(map[string]any{
		"Subscribe": func() *dbus.Error { return nil },
		"ListUnits": func() ([]unit, *dbus.Error) {
			return []unit{{Name: "sshd.service", Active: "active", Path: "/org/freedesktop/systemd1/unit/sshd_2eservice", JobPath: "/"}}, nil
		},
	}, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if err := c.ExportMethodTable(map[string]any{
		"GetAll": func(string) (map[string]dbus.Variant, *dbus.Error) {
			return map[string]dbus.Variant{"Result": dbus.MakeVariant("exit-code"), "ExecMainCode": dbus.MakeVariant(int32(1)),
				"ExecMainStatus": dbus.MakeVariant(int32(3))}, nil
		},
	}, "/org/freedesktop/systemd1/unit/crash_2eservice", "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.RequestName(systemdBusName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", systemdBusName, r, err)
	}
	return c
}

func emitUnit(c *dbus.Conn, unitPath dbus.ObjectPath, iface string, changed map[string]dbus.Variant) error {
	return c.Emit(unitPath, "org.freedesktop.DBus.Properties.PropertiesChanged", iface, changed, []string{})
}

// Another user's forged PropertiesChanged (issue 12 follow-up): a malformed
// one must not crash npllmd, a well-formed one must not make a unit.failed
// event; systemd's own signals still do, also after systemd's name moves.
func TestUnitsSensorTrustsOnlySystemd(t *testing.T) {
	testbus.Privileged(t)
	b, err := testbus.Start(testbus.Options{Policy: `<policy user="root"><allow own="org.freedesktop.systemd1"/><allow send_destination="org.freedesktop.systemd1"/></policy>`})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	sd := fakeSystemd(t, b)
	events := make(chan Event, 64)
	hub := NewHub(64)
	hub.SetSink(func(ev Event) bool {
		select {
		case events <- ev:
			return true
		default:
			return false
		}
	}, nil)
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	s, err := watchUnits(context.Background(), conn, hub)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	me := conn.Names()[0]
	sshd := "/org/freedesktop/systemd1/unit/sshd_2eservice"
	for _, args := range [][]string{
		{"--dest", me, "uint32 1"}, // the reviewer's crash
		{"--dest", me, "'org.freedesktop.systemd1.Unit'", "uint32 1", "@as []"},
		{"--dest", me, "'org.freedesktop.systemd1.Unit'", "{'ActiveState': <'failed'>}", "@as []"},
		{"'org.freedesktop.systemd1.Unit'", "{'ActiveState': <'failed'>}", "@as []"}, // broadcast
		{"--dest", me, "'org.freedesktop.systemd1.Service'", "{'NRestarts': <uint32 9>}", "@as []"},
	} {
		cmd := alice.Command(b, "gdbus", append([]string{"emit", "--system", "--object-path", sshd,
			"--signal", "org.freedesktop.DBus.Properties.PropertiesChanged"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gdbus emit %v as alice: %v: %s", args, err, out)
		}
	}
	// systemd's own signal, sent after the forged ones: it arrives, they do not.
	if err := emitUnit(sd, "/org/freedesktop/systemd1/unit/crash_2eservice", "org.freedesktop.systemd1.Unit",
		map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("failed")}); err != nil {
		t.Fatal(err)
	}
	ev := nextUnitEvent(t, events)
	if ev.Kind != api.KindUnitFailed || ev.Unit == nil || ev.Unit.Unit != "crash.service" || ev.Unit.Result != "exit-code" ||
		ev.Unit.ExitCode != "exited" || ev.Unit.ExitStatus != 3 {
		t.Fatalf("first event = %+v %+v, want unit.failed for crash.service (forged sshd events must not come first)", ev, ev.Unit)
	}
	if n := s.ignored.Load(); n < 4 {
		t.Errorf("signals_ignored = %d, want ≥ 4 (the forged ones)", n)
	}

	// systemd restarts: a new unique name; the old connection is no longer it.
	if _, err := sd.ReleaseName(systemdBusName); err != nil {
		t.Fatal(err)
	}
	sd2 := fakeSystemd(t, b)
	time.Sleep(200 * time.Millisecond) // NameOwnerChanged reaches the sensor
	for i, c := range []*dbus.Conn{sd, sd2} {
		if err := emitUnit(c, dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/unit/u%d_2eservice", i)), "org.freedesktop.systemd1.Unit",
			map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("failed")}); err != nil {
			t.Fatal(err)
		}
	}
	if ev := nextUnitEvent(t, events); ev.Unit == nil || ev.Unit.Unit != "u1.service" {
		t.Fatalf("after the owner change: event %+v, want u1.service from the new owner only", ev.Unit)
	}

	// The unit maps are bounded; units beyond the bound are counted.
	for i := 0; i < maxTrackedUnits+10; i++ {
		if err := emitUnit(sd2, dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/unit/f%d_2eservice", i)), "org.freedesktop.systemd1.Unit",
			map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("activating")}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.droppedUnits.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	n := len(s.state)
	s.mu.Unlock()
	if n > maxTrackedUnits || s.droppedUnits.Load() < 10 {
		t.Fatalf("tracked %d units (max %d), dropped_units %d (want ≥ 10)", n, maxTrackedUnits, s.droppedUnits.Load())
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %+v %+v", ev, ev.Unit)
	default:
	}
}

func nextUnitEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no unit event within 5 s")
		return Event{}
	}
}
