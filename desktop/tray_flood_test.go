package desktop_test

import (
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/testbus"
)

// Once the tray is up, the signal channel it used to wait for a watcher
// used to stay registered and undrained: each signal on the session bus
// then parked a goroutine in the agent (issue 12 follow-up: 50,000 signals,
// +200 MiB). A flood now costs the agent next to nothing.
func TestSessionSignalFloodAfterTheTrayStartsCostsNoMemory(t *testing.T) {
	w := setup(t, "")
	conn, err := dbus.Connect(w.desk.SessionAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tw, err := testbus.WatchTrayItems(conn)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-tw.Registered:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not register its tray item")
	}
	w.waitLog(t, "tray icon registered")
	time.Sleep(300 * time.Millisecond)
	pid := w.agent.Process.Pid
	before := testbus.ProcRSSKiB(pid)
	// Sent to the agent's name: match rules do not filter unicast signals.
	agent := w.agentConnName(t, conn)
	const flood = 30000
	for i := range flood {
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath: dbus.MakeVariant(dbus.ObjectPath("/org/example/Flood")), dbus.FieldInterface: dbus.MakeVariant("org.example.Flood"),
			dbus.FieldMember: dbus.MakeVariant("Ping"), dbus.FieldDestination: dbus.MakeVariant(agent),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(uint32(i)))}, Body: []any{uint32(i)}}
		if err := conn.Send(msg, nil).Err; err != nil {
			t.Fatal(err)
		}
	}
	// A round trip after the flood: the bus has handed the agent every signal.
	var id string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	after := testbus.ProcRSSKiB(pid)
	t.Logf("agent RSS %d → %d KiB after %d session-bus signals", before, after, flood)
	if after > before+24*1024 {
		t.Errorf("agent RSS grew by %d KiB under %d signals", after-before, flood)
	}
}
