package desktop

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/mutes"
)

// Notifier shows npllmd's alerts as desktop notifications: one per alert,
// updated in place (replaces_id) when it changes, bursts of the same kind
// of event coalesced into one, closed when the alert clears. Buttons act
// through npllmd with interactive authorization, so the desktop's polkit
// agent asks when needed; nothing in the background ever prompts.
type Notifier struct {
	client client.API // system bus: npllmd
	notes  notify.Notifier
	mutes  *mutes.Set
	log    *slog.Logger
	now    func() time.Time

	markup  bool // the server parses body markup: escape
	buttons bool // the server shows actions

	mu      sync.Mutex
	byAlert map[string]*shown // alert id → its notification
	byNote  map[uint32]*shown
	bursts  map[string]*shown // kind → open burst notification
	seen    map[string]bool   // alert ids already notified (no duplicates after a daemon restart)
	lastSeq uint64            // newest journal seq the agent has accounted for

	explainWith Explainer         // nil: no model found, no "Explain" button
	explained   map[string]string // alert id → the model's explanation
	onExplained func()            // the tray redraws
}

// shown is one notification on screen.
type shown struct {
	id      uint32
	kind    string
	alerts  []string
	apps    []string // process names (comm), for mutes and text
	started time.Time
	target  target
	actions []notify.Action
	summary string
	body    string
	urgency notify.Urgency
}

// maxSeen bounds the alert ids remembered against duplicates; beyond it the
// oldest half of the memory is dropped (ids of long-gone alerts).
const maxSeen = 10000

// BurstWindow: events of one kind within it share a notification.
const BurstWindow = 30 * time.Second

// Kinds whose alerts are single events and coalesce into bursts.
var burstKinds = map[string]string{
	api.KindOOMKill:      "%d processes were killed for lack of memory",
	api.KindProcessCrash: "%d processes crashed",
}

// NewNotifier connects to the notification server on session.
func NewNotifier(session *dbus.Conn, client client.API, mutes *mutes.Set, log *slog.Logger) (*Notifier, error) {
	n := newNotifier(client, mutes, log)
	// Not notify.New: its signal loop trusts any sender (notify_server.go).
	notes, err := newNotifyServer(session, func(id uint32, key string) { go n.onAction(id, key) }, n.onClosed, log)
	if err != nil {
		return nil, fmt.Errorf("notification server: %w", err)
	}
	n.attach(notes)
	return n, nil
}

func newNotifier(client client.API, mutes *mutes.Set, log *slog.Logger) *Notifier {
	return &Notifier{client: client, mutes: mutes, log: log, now: time.Now,
		byAlert: map[string]*shown{}, byNote: map[uint32]*shown{}, bursts: map[string]*shown{}, seen: map[string]bool{},
		explained: map[string]string{}}
}

// attach starts using a notification server (tests attach a fake one).
func (n *Notifier) attach(notes notify.Notifier) {
	n.notes = notes
	// Servers without body markup show text as given: escaping would then
	// show "&lt;". Servers without actions get no buttons.
	if caps, err := notes.GetCapabilities(); err == nil {
		n.markup = slices.Contains(caps, "body-markup")
		n.buttons = slices.Contains(caps, "actions")
	} else {
		n.markup, n.buttons = true, true
		n.log.Warn("notification server capabilities unknown; assuming markup and actions", "err", err)
	}
}

// Close stops listening to the notification server.
func (n *Notifier) Close() error { return n.notes.Close() }

// Raised shows or updates the notification of an alert.
func (n *Notifier) Raised(a api.Alert) {
	id, severity, kind, details := a.ID, a.Severity, a.Kind, a.Details
	t := targetOf(&a)
	app := t.app(kind)
	if n.mutes != nil && n.mutes.IsMuted(kind, app) {
		n.log.Info("alert muted by the user", "alert", id, "kind", kind, "app", app)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastSeq = max(n.lastSeq, a.Seq)
	n.remember(id)
	now := n.now()
	s := n.byAlert[id]
	if s == nil {
		if b := n.bursts[kind]; b != nil && now.Sub(b.started) < BurstWindow {
			s = b
			s.alerts = append(s.alerts, id)
			s.apps = append(s.apps, app)
		}
	}
	if s == nil {
		s = &shown{kind: kind, alerts: []string{id}, apps: []string{app}, started: now}
		if _, ok := burstKinds[kind]; ok {
			n.bursts[kind] = s
		}
	}
	n.byAlert[id] = s
	if len(s.alerts) == 1 {
		s.target = t
	}
	s.urgency = urgencyOf(severity)
	s.summary, s.body = texts(s, severity, kind, details)
	if exp := n.explained[id]; exp != "" && len(s.alerts) == 1 {
		s.body = explanationBody(exp) // the answer stays when the alert is updated
	}
	if !n.markup {
		s.body = unescape(s.body)
	}
	s.actions = nil
	if n.buttons {
		s.actions = actionsFor(kind, s, n.explainWith != nil) // n.mu is held
	}
	n.send(s)
}

// remember notes an alert id as notified; call with n.mu held.
func (n *Notifier) remember(id string) {
	if len(n.seen) >= maxSeen {
		// Map order is arbitrary: dropping any half keeps the bound; an id
		// forgotten here is at worst notified once more after a restart.
		i := 0
		for k := range n.seen {
			if i++; i > maxSeen/2 {
				break
			}
			delete(n.seen, k)
		}
	}
	n.seen[id] = true
}

// send shows or replaces s's notification; call with n.mu held.
func (n *Notifier) send(s *shown) {
	note := notify.Notification{
		AppName: "npllm", ReplacesID: s.id, AppIcon: iconFor(s.urgency), Summary: s.summary, Body: s.body,
		Actions: s.actions, Hints: map[string]dbus.Variant{}, ExpireTimeout: notify.ExpireTimeoutSetByNotificationServer,
	}
	note.SetUrgency(s.urgency)
	note.AddHint(notify.Hint{ID: "category", Variant: dbus.MakeVariant("x-npllm." + s.kind)})
	note.AddHint(notify.Hint{ID: "desktop-entry", Variant: dbus.MakeVariant("org.npllm.Assistant")})
	if s.urgency == notify.UrgencyCritical {
		note.ExpireTimeout = notify.ExpireTimeoutNever
	}
	id, err := n.notes.SendNotification(note)
	if err != nil {
		n.log.Warn("notification not shown", "kind", s.kind, "err", err)
		return
	}
	if s.id != id {
		delete(n.byNote, s.id)
		s.id = id
	}
	n.log.Debug("notification shown", "id", id, "kind", s.kind, "alert", s.alerts[len(s.alerts)-1])
	n.byNote[id] = s
}

// Cleared closes an alert's notification (a burst closes with its last).
func (n *Notifier) Cleared(id string) {
	n.mu.Lock()
	s := n.byAlert[id]
	delete(n.byAlert, id)
	delete(n.explained, id)
	if s == nil {
		n.mu.Unlock()
		return
	}
	s.alerts = remove(s.alerts, id)
	closeIt := len(s.alerts) == 0
	if closeIt {
		n.forget(s)
	}
	n.mu.Unlock()
	if closeIt && s.id != 0 {
		if _, err := n.notes.CloseNotification(s.id); err != nil {
			n.log.Debug("close notification", "id", s.id, "err", err)
		}
	}
}

func remove(list []string, x string) []string {
	out := list[:0]
	for _, s := range list {
		if s != x {
			out = append(out, s)
		}
	}
	return out
}

// forget drops a notification from the maps; call with n.mu held.
func (n *Notifier) forget(s *shown) {
	delete(n.byNote, s.id)
	for _, a := range s.alerts {
		if n.byAlert[a] == s {
			delete(n.byAlert, a)
		}
	}
	if n.bursts[s.kind] == s {
		delete(n.bursts, s.kind)
	}
}

// onClosed: a dismissal by the user teaches the agent; three of the same
// kind for the same app mute it, and a last notification says how to undo.
func (n *Notifier) onClosed(id uint32, reason notify.Reason) {
	n.mu.Lock()
	s := n.byNote[id]
	if s != nil {
		n.forget(s)
	}
	n.mu.Unlock()
	if s == nil || reason != notify.ReasonDismissedByUser || n.mutes == nil {
		return
	}
	app := s.target.app(s.kind)
	if len(uniq(s.apps)) != 1 {
		return // a burst about several apps teaches nothing about one
	}
	muted, err := n.mutes.Dismiss(s.kind, app)
	if err != nil {
		n.log.Warn("record dismissal", "err", err)
		return
	}
	if muted {
		n.inform(fmt.Sprintf("No more %s alerts about %s", s.kind, plain(app)),
			fmt.Sprintf("You dismissed them %d times. To hear of them again: <i>npllmctl unmute %s %s</i>, or the tray menu.",
				mutes.DismissalsToMute, Escape(s.kind), Escape(shellQuote(app))))
	}
}

// inform shows a one-off notification (results, details, confirmations).
func (n *Notifier) inform(summary, body string) {
	if !n.markup {
		body = unescape(strings.NewReplacer("<i>", "", "</i>", "").Replace(body))
	}
	note := notify.Notification{AppName: "npllm", AppIcon: "dialog-information", Summary: plain(summary), Body: body,
		Hints: map[string]dbus.Variant{}, ExpireTimeout: notify.ExpireTimeoutSetByNotificationServer}
	note.AddHint(notify.Hint{ID: "category", Variant: dbus.MakeVariant("x-npllm.result")})
	note.AddHint(notify.Hint{ID: "desktop-entry", Variant: dbus.MakeVariant("org.npllm.Assistant")})
	if _, err := n.notes.SendNotification(note); err != nil {
		n.log.Warn("notification not shown", "err", err)
	}
}
