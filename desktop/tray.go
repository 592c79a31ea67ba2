package desktop

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/mutes"
)

// Tray is the StatusNotifierItem: its icon shows npllmd's Health, its
// tooltip load and memory, its menu the active alerts (click for details),
// the user's mutes (click to unmute) and "Open status". It starts only
// when a StatusNotifierWatcher exists on the session bus; without one
// (stock GNOME) it stays quiet and notifications work alone.
type Tray struct {
	session  *dbus.Conn
	client   client.API
	notifier *Notifier
	mutes    *mutes.Set
	log      *slog.Logger

	mu      sync.Mutex
	started bool
	menuSig string
	refresh chan struct{}
}

// Watcher's well-known name on the session bus.
const sniWatcher = "org.kde.StatusNotifierWatcher"

// NewTray prepares the tray; Run starts it when a watcher appears.
func NewTray(session *dbus.Conn, client client.API, notifier *Notifier, mutes *mutes.Set, log *slog.Logger) *Tray {
	return &Tray{session: session, client: client, notifier: notifier, mutes: mutes, log: log, refresh: make(chan struct{}, 1)}
}

// Started reports whether the tray icon was registered with a watcher.
func (t *Tray) Started() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.started
}

// Changed asks for a refresh (an alert was raised or cleared).
func (t *Tray) Changed() {
	select {
	case t.refresh <- struct{}{}:
	default:
	}
}

// Run waits for a watcher, starts the item, and keeps it current.
func (t *Tray) Run(ctx context.Context) {
	if err := t.session.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, sniWatcher)); err != nil {
		t.log.Warn("tray: cannot watch for a StatusNotifierWatcher", "err", err)
		return
	}
	if !t.waitForWatcher(ctx) {
		return
	}
	// fyne's systray reports through the standard logger; its complaints
	// (e.g. a watcher that went away) are not the user's business.
	log.SetOutput(io.Discard)
	start, end := systray.RunWithExternalLoop(t.onReady, nil)
	start()
	defer end()
	t.mu.Lock()
	t.started = true
	t.mu.Unlock()
	t.log.Info("tray icon registered")
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.refresh:
		}
		t.update(ctx)
	}
}

// waitForWatcher returns once a StatusNotifierWatcher is on the bus (false:
// ctx ended). Its signal channel goes with it: godbus gives every signal on
// the connection to every channel, and one left undrained costs a blocked
// goroutine per signal, which any program on the session bus can send.
func (t *Tray) waitForWatcher(ctx context.Context) bool {
	ch := make(chan *dbus.Signal, 8)
	t.session.Signal(ch)
	defer t.session.RemoveSignal(ch)
	defer t.session.RemoveMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, sniWatcher))
	for !t.watcherPresent() {
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
	return true
}

func (t *Tray) watcherPresent() bool {
	var has bool
	t.session.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, sniWatcher).Store(&has)
	return has
}

func (t *Tray) onReady() {
	systray.SetTitle("npllm")
	t.update(context.Background())
}

// update redraws icon, tooltip and menu from npllmd's properties.
func (t *Tray) update(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := t.client.Status(ctx)
	if err != nil {
		systray.SetIcon(Icon("unknown"))
		systray.SetTooltip("npllm: npllmd is not running")
		return
	}
	systray.SetIcon(Icon(st.Health))
	systray.SetTooltip(fmt.Sprintf("npllm: %s — load %.2f, %s of memory available", st.Health, st.Load[0], api.HumanBytes(st.MemoryAvailable)))
	// The menu is rebuilt only when what it lists changed: each rebuild
	// abandons the old items' click goroutines.
	sig := st.Health + "|" + strings.Join(t.mutes.List(), ",")
	for _, a := range st.ActiveAlerts {
		sig += "|" + a.ID + a.Severity + a.Summary + t.notifier.Explanation(a.ID)
	}
	if t.notifier.explainer() != nil {
		sig += "|explain"
	}
	t.mu.Lock()
	same := sig == t.menuSig
	t.menuSig = sig
	t.mu.Unlock()
	if same {
		return
	}
	systray.ResetMenu()
	head := systray.AddMenuItem("Health: "+st.Health, "")
	head.Disable()
	systray.AddSeparator()
	if len(st.ActiveAlerts) == 0 {
		none := systray.AddMenuItem("No active alerts", "")
		none.Disable()
	}
	for _, a := range st.ActiveAlerts {
		id, kind, summary := a.ID, a.Kind, plain(a.Summary)
		// Each alert is a submenu with the buttons its notification has.
		item := systray.AddMenuItem(fmt.Sprintf("[%s] %s", a.Severity, summary), "")
		target, actions := AlertActions(&a, t.notifier.explainer() != nil)
		if text := t.notifier.Explanation(id); text != "" {
			exp := item.AddSubMenuItem(clipText(plain(strings.Join(strings.Fields(text), " ")), 300), "the model's explanation")
			exp.Disable()
		}
		target.alert = id
		for _, act := range actions {
			sub := item.AddSubMenuItem(act.Label, "")
			key := act.Key
			go t.onClick(sub, func() { t.notifier.act(key, target, kind, []string{target.comm}) })
		}
	}
	if muted := t.mutes.List(); len(muted) > 0 {
		systray.AddSeparator()
		sub := systray.AddMenuItem("Muted alerts", "Click one to hear of it again")
		for _, m := range muted {
			kind, app, _ := strings.Cut(m, " ")
			item := sub.AddSubMenuItemCheckbox(m, "Unmute", true)
			go t.onClick(item, func() {
				t.mutes.Unmute(kind, app)
				t.Changed()
			})
		}
	}
	systray.AddSeparator()
	status := systray.AddMenuItem("Open status", "Show npllmctl status")
	go t.onClick(status, func() {
		st, err := t.client.Status(context.Background())
		if err != nil {
			t.notifier.inform("npllmd is not running", Escape(api.ErrorMessage(err)))
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "load %.2f %.2f %.2f, CPU %.0f%%\nmemory %s available of %s\nswap %s free of %s",
			st.Load[0], st.Load[1], st.Load[2], st.CPUUsage, api.HumanBytes(st.MemoryAvailable), api.HumanBytes(st.MemoryTotal),
			api.HumanBytes(st.SwapFree), api.HumanBytes(st.SwapTotal))
		t.notifier.inform("npllm: "+st.Health, Escape(b.String()))
	})
}

// onClick runs f for each click until the menu is rebuilt (the item's
// channel is then abandoned).
func (t *Tray) onClick(item *systray.MenuItem, f func()) {
	for range item.ClickedCh {
		f()
	}
}

// Icon draws the tray icon for a health level: a filled circle, green,
// amber or red (grey when unknown), as PNG.
func Icon(health string) []byte {
	c := map[string]color.RGBA{
		api.HealthOK: {0x2e, 0xa0, 0x43, 0xff}, api.SeverityWarning: {0xe0, 0x9b, 0x12, 0xff}, api.SeverityCritical: {0xd0, 0x2b, 0x2b, 0xff},
	}[health]
	if c.A == 0 {
		c = color.RGBA{0x80, 0x80, 0x80, 0xff}
	}
	const size = 32
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			dx, dy := float64(x)-15.5, float64(y)-15.5
			if dx*dx+dy*dy <= 14*14 {
				img.Set(x, y, c)
			}
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}
