package api

import "github.com/godbus/dbus/v5"

// Tuning trials (GetTunables, StartTrial, GetTrials, GetTrialHistory): the
// records npllmd sends and the keys of StartTrial's options.

// Tunable is one row of GetTunables: a knob on one target.
type Tunable struct {
	Name      string   `json:"name"`   // "vm.swappiness", "block.scheduler", "unit.CPUWeight"
	Family    string   `json:"family"` // "sysctl", "block", "thp", "unit", …
	Target    string   `json:"target,omitempty"`
	NeedsUnit bool     `json:"needs_unit,omitempty"` // the caller names the unit (StartTrial "KNOB@UNIT")
	Type      string   `json:"type"`                 // "int", "enum", "bytes"
	Allowed   []string `json:"allowed,omitempty"`    // enum values the live system offers
	Min       int64    `json:"min,omitempty"`
	Max       int64    `json:"max,omitempty"`
	Current   string   `json:"current,omitempty"`
	Default   string   `json:"default,omitempty"`
	Risk      string   `json:"risk"` // "low", "medium", "high"
	Why       string   `json:"why"`
	Available bool     `json:"available"`
	Reason    string   `json:"reason,omitempty"` // why unavailable
	Trial     string   `json:"trial,omitempty"`  // the unfinished trial holding it
}

// Encode is the tunable as a{sv}.
func (t *Tunable) Encode() map[string]dbus.Variant { return encodeRecord(t) }

// DecodeTunable reads a tunable, checking every type.
func DecodeTunable(m map[string]dbus.Variant) (Tunable, error) {
	var t Tunable
	return t, decodeRecord(m, &t, "tunable")
}

// TrialChange is one knob of a trial with its undo value.
type TrialChange struct {
	Knob   string `json:"knob"`
	Target string `json:"target,omitempty"`
	Old    string `json:"old"`
	New    string `json:"new"`
	File   string `json:"file,omitempty"` // the file a persisted, confirmed trial wrote
}

// Figure is one measured value of a watched metric (PSI in percent,
// latencies in µs, CPU in cores, memory in bytes).
type Figure struct {
	Metric string  `json:"metric"`
	Target string  `json:"target,omitempty"`
	Value  float64 `json:"value"`
}

// Trial is one element of GetTrials.
type Trial struct {
	ID           string        `json:"id"`
	State        string        `json:"state"` // one of the TrialState constants
	Changes      []TrialChange `json:"changes"`
	Workload     string        `json:"workload,omitempty"`
	Watch        []string      `json:"watch,omitempty"` // "metric" or "metric:target"
	StartedNS    uint64        `json:"started_ns"`
	CanaryEndsNS uint64        `json:"canary_ends_ns"`
	LeaseEndsNS  uint64        `json:"lease_ends_ns"`
	EndedNS      uint64        `json:"ended_ns,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Persist      bool          `json:"persist,omitempty"`
	Persisted    bool          `json:"persisted,omitempty"`
	Before       []Figure      `json:"before,omitempty"`
	After        []Figure      `json:"after,omitempty"`
}

// Encode is the trial as a{sv}.
func (t *Trial) Encode() map[string]dbus.Variant { return encodeRecord(t) }

// DecodeTrial reads a trial, checking every type.
func DecodeTrial(m map[string]dbus.Variant) (Trial, error) {
	var t Trial
	return t, decodeRecord(m, &t, "trial")
}

// TrialOutcome is one element of GetTrialHistory: a finished trial as
// remembered for its workload.
type TrialOutcome struct {
	ID        string        `json:"id"`
	Outcome   string        `json:"outcome"` // "confirmed", "reverted", "ended"
	Changes   []TrialChange `json:"changes"`
	Reason    string        `json:"reason,omitempty"`
	Before    []Figure      `json:"before,omitempty"`
	After     []Figure      `json:"after,omitempty"`
	StartedNS uint64        `json:"started_ns"`
	EndedNS   uint64        `json:"ended_ns"`
}

// Encode is the outcome as a{sv}.
func (t *TrialOutcome) Encode() map[string]dbus.Variant { return encodeRecord(t) }

// DecodeTrialOutcome reads an outcome, checking every type.
func DecodeTrialOutcome(m map[string]dbus.Variant) (TrialOutcome, error) {
	var t TrialOutcome
	return t, decodeRecord(m, &t, "trial outcome")
}

// Trial states.
const (
	TrialApplying  = "applying"
	TrialCanary    = "canary"
	TrialAwaiting  = "awaiting-confirmation"
	TrialConfirmed = "confirmed"
	TrialReverted  = "reverted"
	TrialEnded     = "ended" // a knob was changed by someone else
)

// Keys of StartTrial's options.
const (
	TrialOptCanaryMS    = "canary_ms"   // u: canary window, default 60000
	TrialOptLeaseMS     = "lease_ms"    // u: lease from the apply, default 600000
	TrialOptEveryMS     = "every_ms"    // u: sampling period, default 500
	TrialOptWatch       = "watch"       // as: "psi.memory.some", "unit.cpu:build.service"
	TrialOptThreshold   = "threshold"   // d: relative worsening tolerated, default 0.25
	TrialOptWorkload    = "workload"    // s: program or unit the trial is for (history key)
	TrialOptPersist     = "persist"     // b: on confirm, write a file that re-applies it at boot
	TrialOptInteractive = "interactive" // b: polkit may ask for a password
	TrialOptAutomated   = "automated"   // b: a model asked (MCP, ask loop)
)
