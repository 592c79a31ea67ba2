package desktop_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// menuItem finds the id of the dbusmenu item labelled label in a layout
// (id, properties, children), 0 if none.
func menuItem(layout []any, label string) int32 {
	if len(layout) != 3 {
		return 0
	}
	id, _ := layout[0].(int32)
	if props, ok := layout[1].(map[string]dbus.Variant); ok && props["label"].Value() == label {
		return id
	}
	children, _ := layout[2].([]dbus.Variant)
	for _, c := range children {
		if sub, ok := c.Value().([]any); ok {
			if found := menuItem(sub, label); found != 0 {
				return found
			}
		}
	}
	return 0
}

func TestTrayWaitsQuietlyForAWatcherThenShowsHealthAndAlerts(t *testing.T) {
	w := setup(t, "cpu_runaway_after = \"1s\"\nprocess_sample_interval = \"300ms\"\n")
	sys, err := w.bus.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	st, err := client.NewClient(sys).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(w.log(), "tray icon registered") || strings.Contains(w.log(), "systray") {
		t.Fatalf("without a watcher the tray should stay quiet:\n%s", w.log())
	}
	conn, err := dbus.Connect(w.desk.SessionAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The watcher is a fake (testbus.TrayWatcher says why).
	tw, err := testbus.WatchTrayItems(conn)
	if err != nil {
		t.Fatal(err)
	}
	var sender string
	select {
	case sender = <-tw.Registered:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not register its tray item")
	}
	item := conn.Object(sender, "/StatusNotifierItem")
	var tooltip struct {
		Icon   string
		Pixmap []struct {
			W, H int32
			Data []byte
		}
		Title, Text string
	}
	var v dbus.Variant
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := item.Call("org.freedesktop.DBus.Properties.Get", 0, "org.kde.StatusNotifierItem", "ToolTip").Store(&v); err == nil {
			if dbus.Store([]any{v.Value()}, &tooltip) == nil && strings.HasPrefix(tooltip.Title, "npllm: "+st.Health) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tooltip %+v (%v)", tooltip, v)
		}
	}
	if !strings.Contains(tooltip.Title, "of memory available") {
		t.Errorf("tooltip %q", tooltip.Title)
	}
	if err := item.Call("org.freedesktop.DBus.Properties.Get", 0, "org.kde.StatusNotifierItem", "IconPixmap").Store(&v); err != nil {
		t.Fatal(err)
	}
	if px, ok := v.Value().([][]any); ok && len(px) == 0 {
		t.Errorf("no icon pixmap: %v", v)
	}
	// The menu lists health, alerts and "Open status".
	var rev uint32
	var layout []any
	menu := conn.Object(sender, "/StatusNotifierItem/menu")
	if err := menu.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{"label"}).Store(&rev, &layout); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(strings.ReplaceAll(dbus.MakeVariant(layout).String(), `"`, " ")), " ")
	for _, want := range []string{"Health: " + st.Health, "Open status"} {
		if !strings.Contains(flat, want) {
			t.Errorf("menu lacks %q: %s", want, flat)
		}
	}
	if !strings.Contains(w.log(), "tray icon registered") {
		t.Error("no log line for the tray")
	}

	// An alert appears in the menu with its notification's buttons, and
	// a click there acts through npllmd.
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer busy.Process.Kill()
	var terminate int32
	for deadline := time.Now().Add(15 * time.Second); terminate == 0; time.Sleep(200 * time.Millisecond) {
		if err := menu.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{"label"}).Store(&rev, &layout); err != nil {
			t.Fatal(err)
		}
		terminate = menuItem(layout, "Terminate sh")
		if time.Now().After(deadline) {
			t.Fatalf("no \"Terminate sh\" in the menu: %v", layout)
		}
	}
	if menuItem(layout, "Lower its priority") == 0 {
		t.Errorf("no \"Lower its priority\" beside it: %v", layout)
	}
	if err := menu.Call("com.canonical.dbusmenu.Event", 0, terminate, "clicked", dbus.MakeVariant(""), uint32(0)).Err; err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the tray's Terminate did not reach npllmd")
	}
}
