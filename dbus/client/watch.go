package client

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// Notice is what Watch delivers: AlertRaised, AlertCleared, OwnerChanged or
// PropertiesChanged.
type Notice interface{ notice() }

// AlertRaised is an Alert signal from npllmd (new, or re-raised with a new
// severity or details).
type AlertRaised struct{ Alert api.Alert }

// AlertCleared is an AlertCleared signal from npllmd.
type AlertCleared struct{ ID string }

// OwnerChanged says npllmd started, restarted (a new unique name) or went
// away (Owner "").
type OwnerChanged struct{ Owner string }

// PropertiesChanged carries npllmd's changed properties, decoded as far as
// they go (only the changed ones are set in Status).
type PropertiesChanged struct {
	Changed map[string]dbus.Variant
	Status  *api.Status
}

func (AlertRaised) notice()       {}
func (AlertCleared) notice()      {}
func (OwnerChanged) notice()      {}
func (PropertiesChanged) notice() {}

// watchBuffer is how many notices wait for a slow reader; further ones are
// dropped, counted (WatchDropped) and logged.
const watchBuffer = 256

// watcher checks and decodes npllmd's signals for Watch.
type watcher struct {
	log     *slog.Logger
	dropped *atomic.Uint64
	ignored *atomic.Uint64

	mu       sync.Mutex
	owner    string
	lastWarn time.Time
}

// ignoredWarnEvery: signals ignored (forged, malformed) are counted, and
// logged at most once per this period, so a flood of forged signals costs
// a counter, not a log line each.
const ignoredWarnEvery = time.Minute

// ignore counts an ignored signal and logs it unless one was logged less
// than ignoredWarnEvery ago.
func (w *watcher) ignore(msg string, args ...any) {
	n := w.ignored.Add(1)
	now := time.Now()
	w.mu.Lock()
	quiet := !w.lastWarn.IsZero() && now.Sub(w.lastWarn) < ignoredWarnEvery
	if !quiet {
		w.lastWarn = now
	}
	w.mu.Unlock()
	if !quiet {
		w.log.Warn(msg, append(args, "ignored_total", n, "next_warning_after", ignoredWarnEvery.String())...)
	}
}

// Watch follows npllmd on c's bus until ctx ends, delivering typed notices.
// It trusts a signal only from its rightful sender: NameOwnerChanged only
// from the bus itself, npllmd's signals only from the connection that owns
// org.npllm.Assistant now (any local program can emit a signal named
// Alert). Every argument's type is checked; malformed signals are logged
// and dropped. The current owner is delivered first.
func (c *Client) Watch(ctx context.Context) (<-chan Notice, error) {
	log := c.log
	if log == nil {
		log = slog.Default()
	}
	conn := c.conn
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(api.Interface)); err != nil {
		return nil, err
	}
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged"),
		dbus.WithMatchObjectPath(api.ObjectPath), dbus.WithMatchArg(0, api.Interface)); err != nil {
		return nil, err
	}
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, api.BusName)); err != nil {
		return nil, err
	}
	in := make(chan *dbus.Signal, watchBuffer)
	conn.Signal(in)
	out := make(chan Notice, watchBuffer)
	w := &watcher{log: log, dropped: &c.watchDropped, ignored: &c.watchIgnored}
	// The owner is read after subscribing, so no change can fall between.
	var owner string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, api.BusName).Store(&owner); err != nil {
		owner = ""
	}
	w.owner = owner
	out <- OwnerChanged{Owner: owner}
	go func() {
		defer close(out)
		defer conn.RemoveSignal(in)
		for {
			select {
			case <-ctx.Done():
				return
			case sig, ok := <-in:
				if !ok {
					return
				}
				if n := w.handle(sig); n != nil {
					select {
					case out <- n:
					default:
						w.dropped.Add(1)
						log.Warn("npllmd notice dropped: the reader is slow", "notice", fmt.Sprintf("%T", n))
					}
				}
			}
		}
	}()
	return out, nil
}

// WatchIgnored counts signals Watch ignored: not from their rightful
// sender, or malformed.
func (c *Client) WatchIgnored() uint64 { return c.watchIgnored.Load() }

// WatchDropped counts notices lost because Watch's reader was too slow.
func (c *Client) WatchDropped() uint64 { return c.watchDropped.Load() }

func (w *watcher) currentOwner() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.owner
}

// handle checks one signal and turns it into a notice (nil: ignored). A
// panic on hostile input is logged, never fatal.
func (w *watcher) handle(sig *dbus.Signal) (n Notice) {
	defer func() {
		if r := recover(); r != nil {
			w.ignore("malformed signal ignored", "signal", sig.Name, "sender", sig.Sender, "panic", fmt.Sprint(r))
			n = nil
		}
	}()
	if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" {
		if sig.Sender != "org.freedesktop.DBus" {
			w.ignore("ignored a NameOwnerChanged not sent by the bus", "sender", sig.Sender)
			return nil
		}
		if len(sig.Body) != 3 {
			return nil
		}
		name, ok1 := sig.Body[0].(string)
		owner, ok2 := sig.Body[2].(string)
		if !ok1 || !ok2 || name != api.BusName {
			return nil
		}
		w.mu.Lock()
		changed := owner != w.owner
		w.owner = owner
		w.mu.Unlock()
		if !changed {
			return nil
		}
		return OwnerChanged{Owner: owner}
	}
	if sig.Path != api.ObjectPath {
		return nil
	}
	if owner := w.currentOwner(); owner == "" || sig.Sender != owner {
		w.ignore("ignored a signal not sent by npllmd", "signal", sig.Name, "sender", sig.Sender, "owner", owner)
		return nil
	}
	switch sig.Name {
	case api.SignalAlert:
		a, err := api.DecodeAlertSignal(sig.Body)
		if err != nil {
			w.ignore("malformed Alert signal ignored", "err", err)
			return nil
		}
		return AlertRaised{Alert: a}
	case api.SignalAlertCleared:
		if len(sig.Body) != 1 {
			return nil
		}
		id, ok := sig.Body[0].(string)
		if !ok {
			w.ignore("malformed AlertCleared signal ignored", "type", fmt.Sprintf("%T", sig.Body[0]))
			return nil
		}
		return AlertCleared{ID: id}
	case "org.freedesktop.DBus.Properties.PropertiesChanged":
		if len(sig.Body) != 3 {
			return nil
		}
		iface, ok1 := sig.Body[0].(string)
		changed, ok2 := sig.Body[1].(map[string]dbus.Variant)
		if !ok1 || !ok2 || iface != api.Interface {
			return nil
		}
		st, err := api.DecodeStatus(changed)
		if err != nil {
			w.ignore("malformed PropertiesChanged ignored", "err", err)
			return nil
		}
		return PropertiesChanged{Changed: changed, Status: st}
	}
	return nil
}
