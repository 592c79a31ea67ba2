// Package desktop holds npllm-agent's parts: following the daemon's
// signals, desktop notifications, the tray, and the MCP bridge (desktop/mcp).
package desktop

import (
	"context"
	"log/slog"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
)

// Watcher follows npllmd on the system bus: it delivers npllmd's signals
// only when they come from the connection that owns org.npllm.Assistant
// now (any local program can emit a signal named Alert; only npllmd's
// count), and reports when that owner changes (npllmd restarted or gone).
type Watcher struct {
	conn *dbus.Conn
	log  *slog.Logger

	mu    sync.Mutex
	owner string

	// Signal is called for each genuine signal of our interface.
	Signal func(*dbus.Signal)
	// Owner is called with the new unique name ("" when npllmd is gone).
	Owner func(owner string)
}

// NewWatcher makes a watcher; set Signal and Owner, then call Run.
func NewWatcher(conn *dbus.Conn, log *slog.Logger) *Watcher {
	return &Watcher{conn: conn, log: log}
}

// Run subscribes and delivers until ctx ends or the connection closes.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.conn.AddMatchSignal(dbus.WithMatchInterface(api.Interface)); err != nil {
		return err
	}
	if err := w.conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, api.BusName)); err != nil {
		return err
	}
	ch := make(chan *dbus.Signal, 256)
	w.conn.Signal(ch)
	defer w.conn.RemoveSignal(ch)
	// The owner is read after subscribing, so no change can fall between.
	var owner string
	_ = w.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, api.BusName).Store(&owner)
	w.setOwner(owner)
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-ch:
			if !ok {
				return nil
			}
			w.handle(sig)
		}
	}
}

func (w *Watcher) handle(sig *dbus.Signal) {
	if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" {
		if len(sig.Body) == 3 && sig.Body[0] == api.BusName {
			w.setOwner(sig.Body[2].(string))
		}
		return
	}
	if sig.Path != api.ObjectPath {
		return
	}
	if owner := w.CurrentOwner(); owner == "" || sig.Sender != owner {
		w.log.Warn("ignored a signal not sent by npllmd", "signal", sig.Name, "sender", sig.Sender, "owner", owner)
		return
	}
	if w.Signal != nil {
		w.Signal(sig)
	}
}

func (w *Watcher) setOwner(owner string) {
	w.mu.Lock()
	changed := owner != w.owner
	w.owner = owner
	w.mu.Unlock()
	if changed && w.Owner != nil {
		w.Owner(owner)
	}
}

// CurrentOwner is npllmd's unique name, "" when it is not running.
func (w *Watcher) CurrentOwner() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.owner
}
