package dbus

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/alerts"
)

// Alerts on the bus: the Alert and AlertCleared signals, the ActiveAlerts
// property, GetAlert (private details for root and the owner), baselines
// and run-time thresholds.

// AlertChanged is the alert engine's listener: it emits the signal and
// updates ActiveAlerts at once, not on the next refresh, so an OOM kill
// reaches desktops within milliseconds.
func (s *Server) AlertChanged(c alerts.Change) {
	var err error
	if c.Raised != nil {
		a := c.Raised
		err = s.conn.Emit(ObjectPath, Interface+".Alert", a.ID, a.Severity, a.Kind, alertDetails(a))
		s.log.Info("alert", "id", a.ID, "severity", a.Severity, "summary", a.Summary)
	} else {
		err = s.conn.Emit(ObjectPath, Interface+".AlertCleared", c.Cleared)
		s.log.Info("alert cleared", "id", c.Cleared)
	}
	if err != nil {
		s.log.Warn("emit alert signal", "err", err)
	}
	if err := s.props.update(map[string]any{"ActiveAlerts": s.activeAlerts()}); err != nil {
		s.log.Warn("emit PropertiesChanged", "err", err)
	}
}

// alertDetails are the public details of an alert, with its summary,
// severity and time (what a notification needs).
func alertDetails(a *alerts.Alert) map[string]godbus.Variant {
	d := make(map[string]godbus.Variant, len(a.Details)+5)
	for k, v := range a.Details {
		d[k] = godbus.MakeVariant(v)
	}
	d["summary"] = godbus.MakeVariant(a.Summary)
	d["raised_ns"] = godbus.MakeVariant(a.RaisedNS)
	return d
}

func (s *Server) activeAlerts() []map[string]godbus.Variant {
	out := []map[string]godbus.Variant{}
	if s.cfg.Alerts == nil {
		return out
	}
	for _, a := range s.cfg.Alerts.Active() {
		out = append(out, map[string]godbus.Variant{
			"id": godbus.MakeVariant(a.ID), "severity": godbus.MakeVariant(a.Severity), "kind": godbus.MakeVariant(a.Kind),
			"summary": godbus.MakeVariant(a.Summary), "raised_ns": godbus.MakeVariant(a.RaisedNS),
			"details": godbus.MakeVariant(alertDetails(&a)),
		})
	}
	return out
}

// worse returns the more severe of two health levels.
func worse(a, b string) string {
	rank := map[string]int{sensors.HealthOK: 0, sensors.HealthWarning: 1, sensors.HealthCritical: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func (a *api) GetAlert(msg godbus.Message, id string) (out map[string]godbus.Variant, derr *godbus.Error) {
	c, derr := a.s.begin(msg, "GetAlert")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Alerts == nil {
		return nil, NewError(ErrNotSupported, "this daemon raises no alerts")
	}
	al, ok := a.s.cfg.Alerts.Get(id)
	if !ok {
		return nil, NewError(ErrInvalidArgument, "no active alert %q (it may have cleared; see the ActiveAlerts property)", id)
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	out = map[string]godbus.Variant{
		"id": godbus.MakeVariant(al.ID), "severity": godbus.MakeVariant(al.Severity), "kind": godbus.MakeVariant(al.Kind),
		"summary": godbus.MakeVariant(al.Summary), "raised_ns": godbus.MakeVariant(al.RaisedNS),
		"details": godbus.MakeVariant(alertDetails(&al)),
	}
	mayKnow := callerUID == 0 || (al.HasOwner && al.OwnerUID == callerUID)
	out["private_withheld"] = godbus.MakeVariant(!mayKnow && len(al.Private) > 0)
	if mayKnow {
		private := map[string]godbus.Variant{}
		for k, v := range al.Private {
			private[k] = godbus.MakeVariant(v)
		}
		out["private"] = godbus.MakeVariant(private)
	}
	return out, nil
}

// baselineToDBus shows a learned baseline.
func baselineToDBus(bl alerts.Baseline) map[string]godbus.Variant {
	return map[string]godbus.Variant{
		"program": godbus.MakeVariant(bl.Program), "runs": godbus.MakeVariant(bl.Runs), "crashes": godbus.MakeVariant(bl.Crashes),
		"rss_p50_bytes": godbus.MakeVariant(alerts.Percentile(bl.RSS, 0.5)), "rss_p95_bytes": godbus.MakeVariant(alerts.Percentile(bl.RSS, 0.95)),
		"rss_ewma_bytes":  godbus.MakeVariant(uint64(bl.EWMARSS)),
		"cpu_p95_ns":      godbus.MakeVariant(alerts.Percentile(bl.CPU, 0.95)),
		"lifetime_p95_ns": godbus.MakeVariant(alerts.Percentile(bl.Lifetime, 0.95)),
		"last_seen_ns":    godbus.MakeVariant(uint64(bl.LastSeenNS)),
	}
}

func (a *api) GetBaseline(msg godbus.Message, program string) (out map[string]godbus.Variant, derr *godbus.Error) {
	c, derr := a.s.begin(msg, "GetBaseline")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Baselines == nil {
		return nil, NewError(ErrNotSupported, "this daemon keeps no baselines")
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	bl, ok := a.s.cfg.Baselines.Get(callerUID, program) // the caller's own runs
	if !ok {
		return nil, NewError(ErrInvalidArgument, "no baseline for %q run by uid %d yet: it is learned from your finished runs of the program (by process name)", program, callerUID)
	}
	return baselineToDBus(bl), nil
}

func (a *api) ForgetBaseline(msg godbus.Message, program string, options map[string]godbus.Variant) (derr *godbus.Error) {
	c, derr := a.s.begin(msg, "ForgetBaseline")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	c.audit = append(c.audit, "program", program)
	if a.s.cfg.Baselines == nil {
		return NewError(ErrNotSupported, "this daemon keeps no baselines")
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return ToDBus(err)
	}
	if _, ok := a.s.cfg.Baselines.Get(callerUID, program); !ok {
		return NewError(ErrInvalidArgument, "no baseline for %q run by uid %d", program, callerUID)
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

func (a *api) GetConfiguration(msg godbus.Message) (out map[string]godbus.Variant, derr *godbus.Error) {
	c, derr := a.s.begin(msg, "GetConfiguration")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Alerts == nil {
		return nil, NewError(ErrNotSupported, "this daemon raises no alerts")
	}
	out = map[string]godbus.Variant{}
	for k, v := range a.s.cfg.Alerts.Config().Values() {
		out[k] = godbus.MakeVariant(v)
	}
	return out, nil
}

func (a *api) Configure(msg godbus.Message, settings map[string]godbus.Variant, options map[string]godbus.Variant) (derr *godbus.Error) {
	c, derr := a.s.begin(msg, "Configure")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	if a.s.cfg.Alerts == nil {
		return NewError(ErrNotSupported, "this daemon raises no alerts")
	}
	plain := map[string]any{}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(settings)) { // a stable message for polkit and the audit
		v := settings[k]
		plain[k] = v.Value()
		parts = append(parts, k+"="+godbusValueString(v))
		c.audit = append(c.audit, k, v.Value())
	}
	desc := strings.Join(parts, " ")
	// Validate everything before asking polkit: a bad request changes
	// nothing and bothers nobody for a password.
	next, err := a.s.cfg.Alerts.Config().With(plain)
	if err != nil {
		return NewError(ErrInvalidArgument, "%s", err.Error())
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
	a.s.log.Info("configuration changed", "settings", desc)
	return nil
}

func godbusValueString(v godbus.Variant) string {
	switch x := v.Value().(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return v.String()
}
