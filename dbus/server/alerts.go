package server

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors/alerts"
	"github.com/npllm/npllm/systemd/msgid"
)

// Alerts on the bus: the Alert and AlertCleared signals, the ActiveAlerts
// property, GetAlert (private details for root and the owner), baselines
// and run-time thresholds.

// AlertChanged is the alert engine's listener: it updates ActiveAlerts and
// emits the signal at once, not on the next refresh, so an OOM kill reaches
// desktops within milliseconds. The property is updated first, so a client
// that reads ActiveAlerts when the signal arrives finds the alert there.
func (s *Server) AlertChanged(c alerts.Change) {
	if err := s.props.update(map[string]any{"ActiveAlerts": s.activeAlerts()}); err != nil {
		s.log.Warn("emit PropertiesChanged", "err", err)
	}
	var err error
	if c.Raised != nil {
		a := c.Raised
		err = s.conn.Emit(api.ObjectPath, api.SignalAlert, alertRecord(a).SignalBody()...)
		s.counters.alertRaised(a.Kind)
		s.log.Info("alert", msgid.Attr(msgid.ForAlert(a.Kind)), "id", a.ID, "kind", a.Kind, "severity", a.Severity, "summary", a.Summary)
	} else {
		err = s.conn.Emit(api.ObjectPath, api.SignalAlertCleared, c.Cleared)
		s.log.Info("alert cleared", msgid.Attr(msgid.AlertCleared), "id", c.Cleared)
	}
	if err != nil {
		s.log.Warn("emit alert signal", "err", err)
	}
}

// alertDetails are the public details of an alert, with its summary,
// severity and time (what a notification needs).
func alertDetails(a *alerts.Alert) map[string]dbus.Variant {
	d := make(map[string]dbus.Variant, len(a.Details)+5)
	for k, v := range a.Details {
		d[k] = dbus.MakeVariant(v)
	}
	d["summary"] = dbus.MakeVariant(a.Summary)
	d["raised_ns"] = dbus.MakeVariant(a.RaisedNS)
	return d
}

// alertRecord is the API's view of an engine's alert (public part).
func alertRecord(a *alerts.Alert) *api.Alert {
	return &api.Alert{ID: a.ID, Severity: a.Severity, Kind: a.Kind, Summary: a.Summary, RaisedNS: a.RaisedNS, Details: alertDetails(a)}
}

func (s *Server) activeAlerts() []map[string]dbus.Variant {
	out := []map[string]dbus.Variant{}
	if s.cfg.Alerts == nil {
		return out
	}
	for _, a := range s.cfg.Alerts.Active() {
		out = append(out, alertRecord(&a).Encode())
	}
	return out
}

// worse returns the more severe of two health levels.
func worse(a, b string) string {
	rank := map[string]int{api.HealthOK: 0, api.SeverityWarning: 1, api.SeverityCritical: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func (a *assistant) GetAlert(msg dbus.Message, id string) (out map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetAlert")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Alerts == nil {
		return nil, api.NewError(api.ErrNotSupported, "this daemon raises no alerts")
	}
	al, ok := a.s.cfg.Alerts.Get(id)
	if !ok {
		return nil, api.NewError(api.ErrInvalidArgument, "no active alert %q (it may have cleared; see the ActiveAlerts property)", id)
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	out = alertRecord(&al).Encode()
	mayKnow := callerUID == 0 || (al.HasOwner && al.OwnerUID == callerUID)
	out["private_withheld"] = dbus.MakeVariant(!mayKnow && len(al.Private) > 0)
	if mayKnow {
		private := map[string]dbus.Variant{}
		for k, v := range al.Private {
			private[k] = dbus.MakeVariant(v)
		}
		out["private"] = dbus.MakeVariant(private)
	}
	return out, nil
}

// baselineOf shows a learned baseline.
func baselineOf(bl alerts.Baseline) api.Baseline {
	return api.Baseline{
		Program: bl.Program, Runs: bl.Runs, Crashes: bl.Crashes,
		RSSP50Bytes: alerts.Percentile(bl.RSS, 0.5), RSSP95Bytes: alerts.Percentile(bl.RSS, 0.95),
		RSSEWMABytes:  uint64(bl.EWMARSS),
		CPUP95NS:      alerts.Percentile(bl.CPU, 0.95),
		LifetimeP95NS: alerts.Percentile(bl.Lifetime, 0.95),
		LastSeenNS:    uint64(bl.LastSeenNS),
	}
}

func (a *assistant) GetBaseline(msg dbus.Message, program string) (out map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetBaseline")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Baselines == nil {
		return nil, api.NewError(api.ErrNotSupported, "this daemon keeps no baselines")
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	bl, ok := a.s.cfg.Baselines.Get(callerUID, program) // the caller's own runs
	if !ok {
		return nil, api.NewError(api.ErrInvalidArgument, "no baseline for %q run by uid %d yet: it is learned from your finished runs of the program (by process name)", program, callerUID)
	}
	b := baselineOf(bl)
	return b.Encode(), nil
}

func (a *assistant) ForgetBaseline(msg dbus.Message, program string, options map[string]dbus.Variant) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, "ForgetBaseline")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	c.note("program", program)
	if a.s.cfg.Baselines == nil {
		return api.NewError(api.ErrNotSupported, "this daemon keeps no baselines")
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return ToDBus(err)
	}
	if _, ok := a.s.cfg.Baselines.Get(callerUID, program); !ok {
		return api.NewError(api.ErrInvalidArgument, "no baseline for %q run by uid %d", program, callerUID)
	}
	o := optionReader{method: "ForgetBaseline", opts: options}
	interactive := c.interactive(&o)
	if o.err != nil {
		return o.err
	}
	if derr := c.authorize(c.rule.Action, map[string]string{"setting": "forget the baseline of " + program, "program": program}, interactive); derr != nil {
		return derr
	}
	a.s.cfg.Baselines.Forget(callerUID, program)
	if err := a.s.cfg.Baselines.Save(); err != nil {
		return ToDBus(err)
	}
	return nil
}

func (a *assistant) GetConfiguration(msg dbus.Message) (out map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetConfiguration")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Alerts == nil {
		return nil, api.NewError(api.ErrNotSupported, "this daemon raises no alerts")
	}
	out = map[string]dbus.Variant{}
	for k, v := range a.s.cfg.Alerts.Config().Values() {
		out[k] = dbus.MakeVariant(v)
	}
	return out, nil
}

func (a *assistant) Configure(msg dbus.Message, settings map[string]dbus.Variant, options map[string]dbus.Variant) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, "Configure")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	if a.s.cfg.Alerts == nil {
		return api.NewError(api.ErrNotSupported, "this daemon raises no alerts")
	}
	plain := map[string]any{}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(settings)) { // a stable message for polkit and the audit
		v := settings[k]
		plain[k] = v.Value()
		parts = append(parts, k+"="+godbusValueString(v))
	}
	desc := strings.Join(parts, " ")
	// Caller keys and values are one quoted value of a fixed key, never
	// keys of the record (they could forge caller_uid or result).
	c.note("settings", desc)
	// Validate everything before asking polkit: a bad request changes
	// nothing and bothers nobody for a password.
	next, err := a.s.cfg.Alerts.Config().With(plain)
	if err != nil {
		return api.NewError(api.ErrInvalidArgument, "%s", err.Error())
	}
	o := optionReader{method: "Configure", opts: options}
	interactive := c.interactive(&o)
	if o.err != nil {
		return o.err
	}
	if derr := c.authorize(c.rule.Action, map[string]string{"setting": desc}, interactive); derr != nil {
		return derr
	}
	a.s.cfg.Alerts.SetConfig(next)
	a.s.log.Info("configuration changed", "settings", auditString(desc))
	return nil
}

func godbusValueString(v dbus.Variant) string {
	switch x := v.Value().(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return v.String()
}
