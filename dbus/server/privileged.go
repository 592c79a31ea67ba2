package server

import (
	"context"
	"fmt"
	"strconv"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/polkit"
	"github.com/npllm/npllm/sensors"
)

// The privileged methods. Each one follows the same order: validate every
// argument, pin and identify the target, authorize with polkit, act — and
// returns straight after any failure, so a denial never has an effect.

func (a *assistant) SignalProcess(msg dbus.Message, pid uint32, startTime uint64, signal string, options map[string]dbus.Variant) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, "SignalProcess")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	sig, name, err := actions.ParseSignal(signal)
	if err != nil {
		return ToDBus(err)
	}
	details := map[string]string{"signal": name, "operation": "send SIG" + name + " to"}
	return c.onProcess(pid, startTime, options, details, nil, func(t *actions.Target) error { return t.Signal(sig) })
}

func (a *assistant) SetProcessPriority(msg dbus.Message, pid uint32, startTime uint64, nice int32, options map[string]dbus.Variant) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, "SetProcessPriority")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	if err := actions.ValidateNice(nice); err != nil {
		return ToDBus(err)
	}
	n := strconv.Itoa(int(nice))
	details := map[string]string{"nice": n, "operation": "set the nice value to " + n + " of"}
	// As the kernel: below 0, or below any thread's current value, is root's power.
	escalate := func(t *actions.Target) (bool, error) {
		raises, err := t.RaisesNice(nice)
		return nice < 0 || raises, err
	}
	return c.onProcess(pid, startTime, options, details, escalate, func(t *actions.Target) error { return t.SetNice(nice) })
}

func (a *assistant) SetProcessIOPriority(msg dbus.Message, pid uint32, startTime uint64, class string, level int32, options map[string]dbus.Variant) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, "SetProcessIOPriority")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	classID, err := actions.ValidateIOPriority(class, level)
	if err != nil {
		return ToDBus(err)
	}
	l := strconv.Itoa(int(level))
	details := map[string]string{"io_class": class, "io_level": l, "operation": "set the I/O priority to " + class + " " + l + " of"}
	escalate := func(t *actions.Target) (bool, error) {
		raises, err := t.RaisesIOPriority(classID, level)
		return class == "realtime" || raises, err
	}
	return c.onProcess(pid, startTime, options, details, escalate, func(t *actions.Target) error { return t.SetIOPriority(classID, level) })
}

func (a *assistant) ManageUnit(msg dbus.Message, unit, verb string, options map[string]dbus.Variant) (job dbus.ObjectPath, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "ManageUnit")
	if derr != nil {
		return "/", derr
	}
	defer c.end(&derr)
	c.note("unit", unit)
	c.note("verb", verb)
	if err := actions.ValidateUnitName(unit); err != nil {
		return "/", ToDBus(err)
	}
	if err := actions.ValidateVerb(verb); err != nil {
		return "/", ToDBus(err)
	}
	o := optionReader{method: "ManageUnit", opts: options}
	interactive := c.interactive(&o)
	if o.err != nil {
		return "/", o.err
	}
	if a.s.cfg.Units == nil || !actions.Booted() {
		return "/", api.NewError(api.ErrNotSupported, "systemd is not running as PID 1 on this machine, so units cannot be managed")
	}
	if derr := c.authorize(c.rule.Action, map[string]string{"unit": unit, "verb": verb}, interactive); derr != nil {
		return "/", derr
	}
	job, err := a.s.cfg.Units.Manage(context.Background(), unit, verb)
	if err != nil {
		return "/", ToDBus(err)
	}
	c.note("job", string(job))
	return job, nil
}

func (a *assistant) SetSensorEnabled(msg dbus.Message, name string, on bool, options map[string]dbus.Variant) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, "SetSensorEnabled")
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	c.note("sensor", name)
	c.note("on", on)
	if a.s.cfg.Sensors == nil {
		return api.NewError(api.ErrNotSupported, "this daemon runs no sensors")
	}
	if !a.s.cfg.Sensors.Known(name) {
		return ToDBus(fmt.Errorf("%w %q; npllmctl sensors lists them", sensors.ErrNoSuchSensor, name))
	}
	o := optionReader{method: "SetSensorEnabled", opts: options}
	interactive := c.interactive(&o)
	if o.err != nil {
		return o.err
	}
	state := map[bool]string{true: "on", false: "off"}[on]
	details := map[string]string{"sensor": name, "state": state, "setting": "sensor " + name + " " + state}
	if derr := c.authorize(c.rule.Action, details, interactive); derr != nil {
		return derr
	}
	a.s.sensorUse.Lock() // no read is using the sensor's maps while it closes
	err := a.s.cfg.Sensors.SetEnabled(context.Background(), name, on)
	a.s.sensorUse.Unlock()
	if err != nil {
		return ToDBus(err)
	}
	a.s.log.Info("sensor switched", "sensor", auditString(name), "on", on)
	return nil
}

func (a *assistant) GetUnit(msg dbus.Message, unit string) (out map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetUnit")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if err := actions.ValidateUnitName(unit); err != nil {
		return nil, ToDBus(err)
	}
	if a.s.cfg.Units == nil || !actions.Booted() {
		return nil, api.NewError(api.ErrNotSupported, "systemd is not running as PID 1 on this machine, so there are no units to show")
	}
	st, err := a.s.cfg.Units.Status(context.Background(), unit)
	if err != nil {
		return nil, ToDBus(err)
	}
	rec := api.Unit{
		Unit: st.Unit, Description: st.Description, LoadState: st.LoadState, ActiveState: st.ActiveState,
		SubState: st.SubState, Result: st.Result, Restarts: st.Restarts, MainPID: st.MainPID,
		ExecMainStatus: st.ExecMainStatus, ActiveEnterTimestampUS: st.ActiveEnterTimestampUS,
	}
	return rec.Encode(), nil
}

// onProcess pins the target, authorizes the caller for it and acts.
// escalate, if set, says whether the request goes beyond what a user may
// do to their own processes (raising priority above the current one); such
// requests need the any-process action.
func (c *call) onProcess(pid uint32, startTime uint64, options map[string]dbus.Variant, details map[string]string, escalate func(*actions.Target) (bool, error), act func(*actions.Target) error) *dbus.Error {
	c.note("pid", pid)
	c.note("start_time", startTime)
	for _, k := range []string{"signal", "nice", "io_class", "io_level"} { // validated by the caller's method
		if v, ok := details[k]; ok {
			c.note(k, v)
		}
	}
	o := optionReader{method: c.method, opts: options}
	interactive := c.interactive(&o)
	if o.err != nil {
		return o.err
	}
	t, err := actions.Open(c.s.cfg.ProcRoot, pid, startTime)
	if err != nil {
		return ToDBus(err)
	}
	defer t.Close()
	callerUID, err := c.callerUID()
	if err != nil {
		return ToDBus(err)
	}
	user := sensors.UserName(t.UID)
	c.note("comm", t.Comm)
	c.note("target_uid", t.UID)
	action := c.rule.ActionFor(callerUID, t.UID)
	if escalate != nil {
		up, err := escalate(t)
		if err != nil {
			return ToDBus(err)
		}
		if up {
			action = polkit.ActionManageAnyProcess // ForCall maps it for automated calls
		}
	}
	details["pid"] = strconv.FormatUint(uint64(pid), 10)
	details["uid"] = strconv.FormatUint(uint64(t.UID), 10)
	details["user"] = user
	details["comm"] = t.Comm
	if derr := c.authorize(action, details, interactive); derr != nil {
		return derr
	}
	if err := act(t); err != nil {
		return ToDBus(err)
	}
	return nil
}
