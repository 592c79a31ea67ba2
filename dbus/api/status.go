package api

import (
	"fmt"
	"reflect"

	"github.com/godbus/dbus/v5"
)

// Status is the daemon's property set (GetAll, or PropertiesChanged
// payloads merged into one).
type Status struct {
	Version         string
	Health          string
	Load            [3]float64
	CPUUsage        float64
	MemoryTotal     uint64
	MemoryAvailable uint64
	SwapTotal       uint64
	SwapFree        uint64
	Pressure        map[string][3]float64 // "cpu", "io", "memory" → avg10/60/300
	Sensors         []SensorStatus
	ActiveAlerts    []Alert
}

// DecodeStatus reads the properties that are present, checking types.
func DecodeStatus(all map[string]dbus.Variant) (*Status, error) {
	s := &Status{}
	var load struct{ A, B, C float64 }
	var pressure map[string]struct{ A, B, C float64 }
	var alerts []map[string]dbus.Variant
	// Scalars must have exactly their Go type: godbus's Store would turn a
	// number into a string. (Structs arrive as []any, so the composite
	// properties are left to Store, which checks their shape.)
	fields := []struct {
		name, sig string
		dst       any
	}{
		{"Version", "s", &s.Version}, {"Health", "s", &s.Health}, {"LoadAverage", "(ddd)", &load},
		{"CPUUsage", "d", &s.CPUUsage}, {"MemoryTotal", "t", &s.MemoryTotal},
		{"MemoryAvailable", "t", &s.MemoryAvailable}, {"SwapTotal", "t", &s.SwapTotal},
		{"SwapFree", "t", &s.SwapFree}, {"Pressure", "a{s(ddd)}", &pressure}, {"Sensors", "a(sssa{sv})", &s.Sensors},
		{"ActiveAlerts", "aa{sv}", &alerts},
	}
	for _, f := range fields {
		v, ok := all[f.name]
		if !ok {
			continue
		}
		if want := reflect.TypeOf(f.dst).Elem(); len(f.sig) == 1 && reflect.TypeOf(v.Value()) != want {
			return nil, fmt.Errorf("property %s is %s, want %s", f.name, v.Signature(), f.sig)
		}
		if err := dbus.Store([]any{v.Value()}, f.dst); err != nil {
			return nil, fmt.Errorf("property %s: %w", f.name, err)
		}
	}
	s.Load = [3]float64{load.A, load.B, load.C}
	s.Pressure = map[string][3]float64{}
	for k, v := range pressure {
		s.Pressure[k] = [3]float64{v.A, v.B, v.C}
	}
	s.ActiveAlerts = make([]Alert, 0, len(alerts))
	for _, m := range alerts {
		a, err := DecodeAlert(m)
		if err != nil {
			return nil, fmt.Errorf("property ActiveAlerts: %w", err)
		}
		s.ActiveAlerts = append(s.ActiveAlerts, a)
	}
	return s, nil
}
