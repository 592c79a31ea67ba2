package client

import (
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// These feed hand-made signals to the watcher's checks (no bus needed); the
// agent's tests in desktop/ send real spoofed signals over a real bus.
func TestWatcherTrustsOnlyTheRightfulSenders(t *testing.T) {
	w := &watcher{log: slog.New(slog.NewTextHandler(io.Discard, nil)), dropped: &atomic.Uint64{}, ignored: &atomic.Uint64{}, owner: ":1.5"}
	details := map[string]dbus.Variant{"pid": dbus.MakeVariant(uint32(7)), "summary": dbus.MakeVariant("s")}
	alert := func(sender string, body ...any) *dbus.Signal {
		return &dbus.Signal{Sender: sender, Path: api.ObjectPath, Name: api.SignalAlert, Body: body}
	}
	owner := func(sender string, body ...any) *dbus.Signal {
		return &dbus.Signal{Sender: sender, Path: "/org/freedesktop/DBus", Name: "org.freedesktop.DBus.NameOwnerChanged", Body: body}
	}
	if n, ok := w.handle(alert(":1.5", "oom.kill/1", api.SeverityCritical, api.KindOOMKill, details)).(AlertRaised); !ok || n.Alert.PID != 7 || n.Alert.ID != "oom.kill/1" {
		t.Errorf("npllmd's own Alert: %#v", n)
	}
	for name, sig := range map[string]*dbus.Signal{
		"Alert from another connection":       alert(":1.9", "spoof", api.SeverityCritical, api.KindMemoryLow, details),
		"Alert with a number for an id":       alert(":1.5", uint32(1), api.SeverityCritical, api.KindMemoryLow, details),
		"Alert with a string for details":     alert(":1.5", "x", api.SeverityCritical, api.KindMemoryLow, "details"),
		"Alert with too few arguments":        alert(":1.5", "x"),
		"AlertCleared with a number":          {Sender: ":1.5", Path: api.ObjectPath, Name: api.SignalAlertCleared, Body: []any{uint32(3)}},
		"Alert on another path":               {Sender: ":1.5", Path: "/elsewhere", Name: api.SignalAlert, Body: []any{"x", "s", "k", details}},
		"NameOwnerChanged from a connection":  owner(":1.9", api.BusName, ":1.5", ":1.9"),
		"NameOwnerChanged with a number":      owner("org.freedesktop.DBus", api.BusName, ":1.5", uint32(9)),
		"NameOwnerChanged for another name":   owner("org.freedesktop.DBus", "org.example", ":1.5", ":1.9"),
		"PropertiesChanged with a wrong type": {Sender: ":1.5", Path: api.ObjectPath, Name: "org.freedesktop.DBus.Properties.PropertiesChanged", Body: []any{api.Interface, map[string]dbus.Variant{"Health": dbus.MakeVariant(uint32(1))}, []string{}}},
		"PropertiesChanged from a non-owner":  {Sender: ":1.9", Path: api.ObjectPath, Name: "org.freedesktop.DBus.Properties.PropertiesChanged", Body: []any{api.Interface, map[string]dbus.Variant{}, []string{}}},
		"a signal with a nil body":            {Sender: ":1.5", Path: api.ObjectPath, Name: api.SignalAlert},
	} {
		if n := w.handle(sig); n != nil {
			t.Errorf("%s was delivered: %#v", name, n)
		}
	}
	if w.currentOwner() != ":1.5" {
		t.Fatalf("the owner changed to %q on a forged NameOwnerChanged", w.currentOwner())
	}
	if n, ok := w.handle(owner("org.freedesktop.DBus", api.BusName, ":1.5", ":1.7")).(OwnerChanged); !ok || n.Owner != ":1.7" {
		t.Errorf("the bus's NameOwnerChanged: %#v", n)
	}
	if n := w.handle(alert(":1.5", "x", api.SeverityWarning, api.KindDiskFull, details)); n != nil {
		t.Errorf("an Alert from the previous owner was delivered: %#v", n)
	}
	if n, ok := w.handle(&dbus.Signal{Sender: ":1.7", Path: api.ObjectPath, Name: "org.freedesktop.DBus.Properties.PropertiesChanged",
		Body: []any{api.Interface, map[string]dbus.Variant{"Health": dbus.MakeVariant("warning")}, []string{}}}).(PropertiesChanged); !ok || n.Status.Health != "warning" {
		t.Errorf("the owner's PropertiesChanged: %#v", n)
	}
}

// A flood of forged signals costs a counter, not a log line each.
func TestIgnoredSignalsAreCountedAndLoggedOncePerPeriod(t *testing.T) {
	var buf strings.Builder
	ignored := &atomic.Uint64{}
	w := &watcher{log: slog.New(slog.NewTextHandler(&buf, nil)), dropped: &atomic.Uint64{}, ignored: ignored, owner: ":1.5"}
	for i := range 1000 {
		sender := ":1.9"
		name := api.SignalAlert
		if i%2 == 0 {
			name = "org.freedesktop.DBus.NameOwnerChanged"
		}
		w.handle(&dbus.Signal{Sender: sender, Path: api.ObjectPath, Name: name, Body: []any{api.BusName, "x", uint32(1)}})
	}
	if n := strings.Count(buf.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for 1000 forged signals, want 1:\n%s", n, buf.String())
	}
	if ignored.Load() != 1000 {
		t.Errorf("ignored = %d, want 1000", ignored.Load())
	}
	if w.currentOwner() != ":1.5" {
		t.Errorf("owner changed to %q", w.currentOwner())
	}
}
