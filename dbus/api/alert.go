package api

import (
	"fmt"
	"reflect"

	"github.com/godbus/dbus/v5"
)

// Alert is one raised alert: the Alert signal (id, severity, kind,
// details), an element of ActiveAlerts, or GetAlert's reply.
//
// The fields every client reads are typed; Details keeps the kind's whole
// a{sv} (pids, sizes, percentages, the top processes of a memory alert),
// read with Uint and String, which check types.
type Alert struct {
	ID       string
	Severity string // SeverityInfo, SeverityWarning, SeverityCritical
	Kind     string // one of AlertKinds
	Summary  string
	RaisedNS uint64

	// From Details, when the kind has them (0 or "" otherwise).
	Seq       uint64 // the event that raised it
	PID       uint32
	StartTime uint64
	Comm      string
	Unit      string

	Details map[string]dbus.Variant
	// GetAlert only: the private details (root and the owner), or whether
	// there were some that this caller may not see.
	Private         map[string]dbus.Variant
	PrivateWithheld bool
}

// Uint reads an unsigned detail (0 if absent or not an unsigned number).
func (a *Alert) Uint(key string) uint64 { return Uint(a.Details[key]) }

// String reads a string detail ("" if absent or not a string).
func (a *Alert) String(key string) string { return String(a.Details[key]) }

// Top is the busiest processes a memory alert names, most first.
func (a *Alert) Top() []map[string]dbus.Variant {
	top, _ := a.Details["top"].Value().([]map[string]dbus.Variant)
	return top
}

func (a *Alert) fromDetails() {
	a.Summary = a.String("summary")
	a.RaisedNS = a.Uint("raised_ns")
	a.Seq = a.Uint("seq")
	a.PID = uint32(a.Uint("pid"))
	a.StartTime = a.Uint("start_time")
	a.Comm = a.String("comm")
	a.Unit = a.String("unit")
}

// SignalBody is the body of the Alert signal for a, (sssa{sv}).
func (a *Alert) SignalBody() []any {
	return []any{a.ID, a.Severity, a.Kind, a.Details}
}

// DecodeAlertSignal reads the body of an Alert signal, (sssa{sv}),
// checking every element's type.
func DecodeAlertSignal(body []any) (Alert, error) {
	if len(body) != 4 {
		return Alert{}, fmt.Errorf("Alert signal with %d arguments, want 4", len(body))
	}
	var a Alert
	var ok [4]bool
	a.ID, ok[0] = body[0].(string)
	a.Severity, ok[1] = body[1].(string)
	a.Kind, ok[2] = body[2].(string)
	a.Details, ok[3] = body[3].(map[string]dbus.Variant)
	if !ok[0] || !ok[1] || !ok[2] || !ok[3] {
		return Alert{}, fmt.Errorf("Alert signal of type (%T, %T, %T, %T), want (sssa{sv})", body[0], body[1], body[2], body[3])
	}
	a.fromDetails()
	return a, nil
}

// DecodeAlert reads an element of ActiveAlerts or GetAlert's reply.
func DecodeAlert(m map[string]dbus.Variant) (Alert, error) {
	var a Alert
	r := variantReader{m: m, what: "alert"}
	r.str("id", &a.ID)
	r.str("severity", &a.Severity)
	r.str("kind", &a.Kind)
	r.get("details", &a.Details)
	r.get("private", &a.Private)
	r.get("private_withheld", &a.PrivateWithheld)
	if r.err != nil {
		return Alert{}, r.err
	}
	a.fromDetails()
	r.str("summary", &a.Summary)
	r.get("raised_ns", &a.RaisedNS)
	return a, r.err
}

// Encode is the alert as an element of ActiveAlerts (without the private
// part, which GetAlert adds for callers who may see it).
func (a *Alert) Encode() map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"id": dbus.MakeVariant(a.ID), "severity": dbus.MakeVariant(a.Severity), "kind": dbus.MakeVariant(a.Kind),
		"summary": dbus.MakeVariant(a.Summary), "raised_ns": dbus.MakeVariant(a.RaisedNS),
		"details": dbus.MakeVariant(a.Details),
	}
}

// variantReader reads typed values out of an a{sv}; the first wrong type
// is kept as the error.
type variantReader struct {
	m    map[string]dbus.Variant
	what string
	err  error
}

func (r *variantReader) get(key string, dst any) {
	v, ok := r.m[key]
	if !ok {
		return
	}
	d := reflect.ValueOf(dst).Elem()
	x := reflect.ValueOf(v.Value())
	if !x.IsValid() || x.Type() != d.Type() {
		if r.err == nil {
			r.err = fmt.Errorf("%s: %q is %s, want %s", r.what, key, v.Signature(), d.Type())
		}
		return
	}
	d.Set(x)
}

func (r *variantReader) str(key string, dst *string) { r.get(key, dst) }
