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

// SensorDetails is one sensor's entry in GetSensorDetails: what changes
// often or is large, kept out of the Sensors property so that GetAll stays
// small and Sensors changes only when a sensor's variant or state does.
type SensorDetails struct {
	Description string
	// Counters: emitted, drops, queue, journal, audit, … (running sensors;
	// empty otherwise).
	Counters map[string]uint64
}

// EncodeSensorDetails is the a{sa{sv}} of GetSensorDetails.
func EncodeSensorDetails(in map[string]SensorDetails) map[string]map[string]dbus.Variant {
	out := make(map[string]map[string]dbus.Variant, len(in))
	for name, d := range in {
		m := make(map[string]dbus.Variant, len(d.Counters)+1)
		for k, v := range d.Counters {
			m[k] = dbus.MakeVariant(v)
		}
		m["description"] = dbus.MakeVariant(d.Description)
		out[name] = m
	}
	return out
}

// DecodeSensorDetails reads GetSensorDetails' reply: "description" must be
// a string and every other value a uint64 counter.
func DecodeSensorDetails(raw map[string]map[string]dbus.Variant) (map[string]SensorDetails, error) {
	out := make(map[string]SensorDetails, len(raw))
	for name, m := range raw {
		d := SensorDetails{Counters: make(map[string]uint64, len(m))}
		for k, v := range m {
			switch x := v.Value().(type) {
			case string:
				if k != "description" {
					return nil, fmt.Errorf("sensor %q: %s is a string, want a uint64 counter", name, k)
				}
				d.Description = x
			case uint64:
				if k == "description" {
					return nil, fmt.Errorf("sensor %q: description is %s, want s", name, v.Signature())
				}
				d.Counters[k] = x
			default:
				return nil, fmt.Errorf("sensor %q: %s is %s, want t", name, k, v.Signature())
			}
		}
		out[name] = d
	}
	return out, nil
}
