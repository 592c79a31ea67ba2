package desktop

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
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

// target is what a notification's buttons act on.
type target struct {
	pid   uint32
	start uint64
	comm  string
	unit  string
	alert string
}

// app is what an alert of kind is about, for mutes: the unit for unit
// failures, else the process name.
func (t target) app(kind string) string {
	if kind == api.KindUnitFailed {
		return t.unit
	}
	return t.comm
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
	n := &Notifier{client: client, mutes: mutes, log: log, now: time.Now,
		byAlert: map[string]*shown{}, byNote: map[uint32]*shown{}, bursts: map[string]*shown{}, seen: map[string]bool{}}
	notes, err := notify.New(session,
		notify.WithOnAction(func(s *notify.ActionInvokedSignal) { go n.onAction(s.ID, s.ActionKey) }),
		notify.WithOnClosed(func(s *notify.NotificationClosedSignal) { n.onClosed(s.ID, s.Reason) }),
		notify.WithLogger(slogPrinter{log}))
	if err != nil {
		return nil, fmt.Errorf("notification server: %w", err)
	}
	n.notes = notes
	// Servers without body markup show text as given: escaping would then
	// show "&lt;". Servers without actions get no buttons.
	if caps, err := notes.GetCapabilities(); err == nil {
		n.markup = slices.Contains(caps, "body-markup")
		n.buttons = slices.Contains(caps, "actions")
	} else {
		n.markup, n.buttons = true, true
		log.Warn("notification server capabilities unknown; assuming markup and actions", "err", err)
	}
	return n, nil
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.log.Debug(fmt.Sprintf(format, v...)) }

// Close stops listening to the notification server.
func (n *Notifier) Close() error { return n.notes.Close() }

// Escape makes text safe for notification bodies, which servers may parse
// as markup: a process named "<b>hog" is shown as written.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

// unescape undoes Escape for servers that show bodies as plain text.
func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&amp;", "&").Replace(s)
}

// plain strips control characters from text shown without markup
// (summaries, button labels).
func plain(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

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
	if !n.markup {
		s.body = unescape(s.body)
	}
	s.actions = nil
	if n.buttons {
		s.actions = actionsFor(kind, s)
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

func targetOf(a *api.Alert) target {
	t := target{alert: a.ID, pid: a.PID, start: a.StartTime, comm: a.Comm, unit: a.Unit}
	if top := a.Top(); len(top) > 0 && t.pid == 0 {
		t.pid, t.start, t.comm = uint32(api.Uint(top[0]["pid"])), api.Uint(top[0]["start_time"]), api.String(top[0]["comm"])
	}
	return t
}

func urgencyOf(severity string) notify.Urgency {
	switch severity {
	case api.SeverityCritical:
		return notify.UrgencyCritical
	case api.SeverityInfo:
		return notify.UrgencyLow
	}
	return notify.UrgencyNormal
}

func texts(s *shown, severity, kind string, d map[string]dbus.Variant) (summary, body string) {
	comm := plain(s.target.comm)
	if len(s.alerts) > 1 {
		apps := uniq(s.apps)
		more := ""
		if len(apps) > 5 {
			apps, more = apps[:5], ", …"
		}
		for i := range apps {
			apps[i] = Escape(apps[i])
		}
		return fmt.Sprintf(burstKinds[kind], len(s.alerts)), strings.Join(apps, ", ") + more
	}
	body = Escape(api.String(d["summary"]))
	switch kind {
	case api.KindOOMKill:
		summary = "Out of memory: " + comm + " was killed"
	case api.KindProcessCrash:
		summary = comm + " crashed"
	case api.KindMemoryPressure:
		summary = "The system is short of memory"
	case api.KindMemoryLow:
		summary = "Memory is running out"
	case api.KindDiskFull:
		summary = "Disk almost full: " + plain(api.String(d["mount"]))
	case api.KindCPURunaway:
		summary = comm + " keeps a CPU busy"
	case api.KindAnomaly:
		summary = comm + " uses far more memory than usual"
	case api.KindUnitFailed:
		summary = plain(api.String(d["unit"])) + " failed"
	default:
		summary = "npllm: " + kind
	}
	return summary, body
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// actionsFor picks the buttons that make sense for a kind; the first is
// also the default action (a click on the notification).
func actionsFor(kind string, s *shown) []notify.Action {
	comm := plain(s.target.comm)
	var acts []notify.Action
	canAct := s.target.pid != 0 && len(s.alerts) == 1
	switch kind {
	case api.KindMemoryPressure, api.KindMemoryLow:
		if canAct {
			acts = append(acts, notify.Action{Key: "terminate", Label: "Terminate " + comm}, notify.Action{Key: "lower", Label: "Lower its priority"})
		}
		acts = append(acts, notify.Action{Key: "details", Label: "Details"})
	case api.KindCPURunaway, api.KindAnomaly:
		if canAct {
			acts = append(acts, notify.Action{Key: "terminate", Label: "Terminate " + comm}, notify.Action{Key: "lower", Label: "Lower its priority"})
		}
		acts = append(acts, notify.Action{Key: "mute", Label: "Don't warn about this app"})
	case api.KindOOMKill, api.KindProcessCrash:
		acts = append(acts, notify.Action{Key: "details", Label: "Details"})
		if len(uniq(s.apps)) == 1 {
			acts = append(acts, notify.Action{Key: "mute", Label: "Don't warn about this app"})
		}
	case api.KindUnitFailed:
		acts = append(acts, notify.Action{Key: "restart", Label: "Restart unit"}, notify.Action{Key: "details", Label: "Details"})
	default:
		acts = append(acts, notify.Action{Key: "details", Label: "Details"})
	}
	return append([]notify.Action{{Key: "default", Label: acts[0].Label}}, acts...)
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
	n.byNote[id] = s
}

func iconFor(u notify.Urgency) string {
	switch u {
	case notify.UrgencyCritical:
		return "dialog-error"
	case notify.UrgencyLow:
		return "dialog-information"
	}
	return "dialog-warning"
}

// Cleared closes an alert's notification (a burst closes with its last).
func (n *Notifier) Cleared(id string) {
	n.mu.Lock()
	s := n.byAlert[id]
	delete(n.byAlert, id)
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

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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

// onAction performs a button. Writes go to npllmd with the interactive
// flag: polkit may ask the user, who just asked for the action.
func (n *Notifier) onAction(id uint32, key string) {
	n.mu.Lock()
	s := n.byNote[id]
	var t target
	var kind string
	var apps []string
	if s != nil {
		t, kind, apps = s.target, s.kind, append([]string(nil), s.apps...)
		if key == "default" && len(s.actions) > 1 {
			key = s.actions[1].Key
		}
	}
	n.mu.Unlock()
	if s == nil {
		return
	}
	n.log.Info("notification action", "action", key, "alert", t.alert, "pid", t.pid)
	n.act(key, t, kind, apps)
}

// AlertActions are the buttons for an active alert as ActiveAlerts lists
// it (the tray's menu), keys and labels as on its notification.
func AlertActions(a *api.Alert) (target, []notify.Action) {
	kind := a.Kind
	t := targetOf(a)
	s := &shown{kind: kind, alerts: []string{""}, apps: []string{t.comm}, target: t}
	return t, actionsFor(kind, s)[1:] // without the "default" duplicate
}

// act performs a button's action for a target: from a notification, or
// from the tray's menu.
func (n *Notifier) act(key string, t target, kind string, apps []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	comm := plain(t.comm)
	switch key {
	case "terminate":
		err := n.client.SignalProcess(ctx, t.pid, t.start, "TERM", client.CallOptions{Interactive: true})
		n.result(err, "Asked "+comm+" to quit", "Could not terminate "+comm)
	case "lower":
		err := n.client.SetProcessPriority(ctx, t.pid, t.start, 10, client.CallOptions{Interactive: true})
		n.result(err, "Lowered the priority of "+comm, "Could not lower the priority of "+comm)
	case "restart":
		_, err := n.client.ManageUnit(ctx, t.unit, "restart", client.CallOptions{Interactive: true})
		n.result(err, "Restarting "+plain(t.unit), "Could not restart "+plain(t.unit))
	case "mute":
		app := t.app(kind)
		if len(apps) > 0 {
			app = apps[0]
		}
		if err := n.mutes.Mute(kind, app); err != nil {
			n.inform("Could not mute", Escape(err.Error()))
			return
		}
		n.inform("No more "+kind+" alerts about "+plain(app), fmt.Sprintf("To hear of them again: <i>npllmctl unmute %s %s</i>, or the tray menu.", Escape(kind), Escape(shellQuote(app))))
	case "details":
		a, err := n.client.GetAlert(ctx, t.alert)
		if err != nil {
			n.inform("No details", Escape(api.ErrorMessage(err)))
			return
		}
		n.inform(a.Summary, detailsBody(&a))
	}
}

func (n *Notifier) result(err error, ok, failed string) {
	if err == nil {
		n.inform(ok, "")
		return
	}
	reason := api.ErrorMessage(err)
	switch api.ErrorName(err) {
	case api.ErrNotAuthorized, api.ErrAccessDenied:
		reason = "Not allowed: " + reason
	case api.ErrInteractiveAuthorizationRequired:
		reason = "Authentication was needed and no polkit agent could ask: " + reason
	}
	n.inform(failed, Escape(reason))
}

func detailsBody(a *api.Alert) string {
	var lines []string
	for _, m := range []map[string]dbus.Variant{a.Details, a.Private} {
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "summary" && k != "raised_ns" && k != "top" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			lines = append(lines, Escape(fmt.Sprintf("%s: %v", k, formatValue(m[k].Value()))))
		}
	}
	return strings.Join(lines, "\n")
}

func formatValue(v any) string {
	if f, ok := v.(float64); ok && f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprint(v)
}

// CatchUp runs when npllmd (re)appears: alerts raised while the agent was
// not listening are shown, those already shown are not shown again, and
// OOM kills and crashes journaled meanwhile are reported.
func (n *Notifier) CatchUp(ctx context.Context) {
	st, err := n.client.Status(ctx)
	if err != nil {
		n.log.Warn("catch up: status", "err", err)
		return
	}
	for _, a := range st.ActiveAlerts {
		n.mu.Lock()
		known := n.seen[a.ID]
		n.mu.Unlock()
		if !known {
			n.Raised(a)
		}
	}
	n.mu.Lock()
	after := n.lastSeq
	n.mu.Unlock()
	if after == 0 {
		return // first start: history is not news
	}
	_, evs, err := n.client.GetEvents(ctx, after, 200, client.EventFilter{Kinds: []string{api.KindOOMKill}})
	if err != nil {
		return
	}
	for _, ev := range evs {
		// The id the engine gave the alert this event raised.
		id := fmt.Sprintf("%s/%d", api.KindOOMKill, ev.Seq)
		n.mu.Lock()
		known := n.seen[id]
		n.mu.Unlock()
		if !known {
			summary := fmt.Sprintf("%s (pid %d) was killed for lack of memory", ev.Comm, ev.PID)
			details := ev.Encode()
			details["summary"] = dbus.MakeVariant(summary)
			n.Raised(api.Alert{ID: id, Severity: api.SeverityCritical, Kind: api.KindOOMKill, Summary: summary,
				Seq: ev.Seq, PID: ev.PID, StartTime: ev.StartTime, Comm: ev.Comm, Details: details})
		}
	}
}

// StartSeq sets where catching up starts (the journal's newest seq when
// the agent starts).
func (n *Notifier) StartSeq(seq uint64) {
	n.mu.Lock()
	n.lastSeq = max(n.lastSeq, seq)
	n.mu.Unlock()
}
