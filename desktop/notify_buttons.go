package desktop

import (
	"context"
	"fmt"
	"time"

	"github.com/esiqveland/notify"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

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

func targetOf(a *api.Alert) target {
	t := target{alert: a.ID, pid: a.PID, start: a.StartTime, comm: a.Comm, unit: a.Unit}
	if top := a.Top(); len(top) > 0 && t.pid == 0 {
		t.pid, t.start, t.comm = uint32(api.Uint(top[0]["pid"])), api.Uint(top[0]["start_time"]), api.String(top[0]["comm"])
	}
	return t
}

// actionsFor picks the buttons that make sense for a kind; the first is
// also the default action (a click on the notification).
func actionsFor(kind string, s *shown, explain bool) []notify.Action {
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
	if explain {
		acts = append(acts, notify.Action{Key: "explain", Label: "Explain"})
	}
	return append([]notify.Action{{Key: "default", Label: acts[0].Label}}, acts...)
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
		n.log.Debug("action on a notification that is not ours", "id", id, "action", key)
		return
	}
	n.log.Info("notification action", "action", key, "alert", t.alert, "pid", t.pid)
	n.act(key, t, kind, apps)
}

// AlertActions are the buttons for an active alert as ActiveAlerts lists
// it (the tray's menu), keys and labels as on its notification.
func AlertActions(a *api.Alert, explain bool) (target, []notify.Action) {
	kind := a.Kind
	t := targetOf(a)
	s := &shown{kind: kind, alerts: []string{""}, apps: []string{t.comm}, target: t}
	return t, actionsFor(kind, s, explain)[1:] // without the "default" duplicate
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
		// Never below the current nice value: raising priority needs an
		// administrator (the kernel's rule), and "lower" must not do it.
		nice, err := n.lowerNice(ctx, t)
		if err == nil {
			err = n.client.SetProcessPriority(ctx, t.pid, t.start, nice, client.CallOptions{Interactive: true})
		}
		n.result(err, fmt.Sprintf("Lowered the priority of %s (nice %d)", comm, nice), "Could not lower the priority of "+comm)
	case "explain":
		n.explain(ctx, t)
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

// lowerNice is the nice value "Lower its priority" sets: 10, or the
// process's current value when that is already lower priority.
func (n *Notifier) lowerNice(ctx context.Context, t target) (int32, error) {
	p, err := n.client.GetProcess(ctx, t.pid)
	if err != nil {
		return 0, err
	}
	return max(p.Nice, lowPriorityNice), nil
}

// lowPriorityNice is what "Lower its priority" aims for.
const lowPriorityNice = 10

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
