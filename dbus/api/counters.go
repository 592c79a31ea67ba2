package api

import (
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Counters is GetCounters' reply: the monotonic figures a metrics exporter
// needs in one call (sensor drops are in GetSensorDetails).
type Counters struct {
	// BootID is /proc/sys/kernel/random/boot_id: Events restart from zero
	// only when it changes.
	BootID string `json:"boot_id"`
	// Events counts journaled events by kind since boot, rebuilt from the
	// journal when npllmd restarts (kinds outside EventKinds are "other").
	Events map[string]uint64 `json:"events"`
	// EventsPruned is true when the journal no longer holds every event
	// since boot (pruned by count or age): Events are then lower bounds.
	EventsPruned bool `json:"events_pruned"`
	// AlertsRaised counts alerts raised by kind since npllmd started.
	AlertsRaised map[string]uint64 `json:"alerts_raised"`
	// StartedNS is when npllmd started (unix ns): AlertsRaised restart then.
	StartedNS uint64 `json:"started_ns"`
	// PressureStalledUS is /proc/pressure's total stall time in
	// microseconds by "cpu.some", "cpu.full", "memory.some", … .
	PressureStalledUS map[string]uint64 `json:"pressure_stalled_us"`
	// Baselines is how many (user, program) baselines are learned.
	Baselines uint64 `json:"baselines"`
}

// Encode is the a{sv} of GetCounters.
func (c *Counters) Encode() map[string]dbus.Variant { return encodeRecord(c) }

// DecodeCounters reads GetCounters' reply, checking every type.
func DecodeCounters(m map[string]dbus.Variant) (Counters, error) {
	var c Counters
	err := decodeRecord(m, &c, "counters")
	return c, err
}

// SensorDetails is one sensor's entry in GetSensorDetails, (sa{st}) on the
// wire: what changes often or is large, kept out of the Sensors property so
// that GetAll stays small and Sensors changes only when a sensor's variant
// or state does.
type SensorDetails struct {
	Description string
	// Counters: emitted, drops, queue, journal, audit, … (running sensors;
	// empty otherwise).
	Counters map[string]uint64
}

// DecodeSensorDetails reads GetSensorDetails' a{s(sa{st})} reply as godbus
// delivers it (a struct arrives as []any), checking every type.
func DecodeSensorDetails(raw map[string][]any) (map[string]SensorDetails, error) {
	out := make(map[string]SensorDetails, len(raw))
	for name, fields := range raw {
		if len(fields) != 2 {
			return nil, fmt.Errorf("sensor %q: %d fields, want (description, counters)", name, len(fields))
		}
		desc, ok := fields[0].(string)
		if !ok {
			return nil, fmt.Errorf("sensor %q: description is %T, want s", name, fields[0])
		}
		counters, ok := fields[1].(map[string]uint64)
		if !ok {
			return nil, fmt.Errorf("sensor %q: counters are %T, want a{st}", name, fields[1])
		}
		out[name] = SensorDetails{Description: desc, Counters: counters}
	}
	return out, nil
}
