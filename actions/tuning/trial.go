package tuning

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// TrialID names a trial: 16 hex digits.
type TrialID string

// Trial states. Only the first three are kept in the state file.
const (
	StateApplying  = "applying"
	StateCanary    = "canary"
	StateAwaiting  = "awaiting-confirmation"
	StateConfirmed = "confirmed"
	StateReverted  = "reverted"
	StateEnded     = "ended" // a knob was changed by someone else
)

// Event kinds handed to the Recorder (the daemon journals them).
const (
	EventStarted   = "tuning.started"
	EventRegressed = "tuning.regressed"
	EventReverted  = "tuning.reverted"
	EventConfirmed = "tuning.confirmed"
	EventEnded     = "tuning.ended"
)

// Limits on a request.
const (
	DefaultCanary  = 60 * time.Second
	DefaultLease   = 10 * time.Minute
	DefaultEvery   = 500 * time.Millisecond
	maxChanges     = 16
	maxWorkloadLen = 256
)

// Change asks for one knob (on one target) to take one value.
type Change struct {
	Knob   string `json:"knob"`
	Target string `json:"target,omitempty"`
	Value  string `json:"value"`
}

// ChangeInfo is a change with its undo value, as recorded.
type ChangeInfo struct {
	Knob   string `json:"knob"`
	Target string `json:"target,omitempty"`
	Key    string `json:"key"`
	Old    string `json:"old"`
	New    string `json:"new"`
	File   string `json:"file,omitempty"` // written when a persisted trial was confirmed
}

// Options of a trial; zero values take the defaults.
type Options struct {
	Canary time.Duration `json:"canary"` // [100ms, 1h], default 60 s
	Lease  time.Duration `json:"lease"`  // (Canary, 24h], default 10 min, counted from the apply
	Every  time.Duration `json:"every"`  // sampling and foreign-change check, [10ms, 10s], default 500 ms
	Watch  []Watch       `json:"watch,omitempty"`
	// Workload is the program or unit the trial is for; its history is
	// kept under this name.
	Workload string `json:"workload,omitempty"`
	// Persist: on Confirm, also write a file owned by npllm that re-applies
	// the change at boot (sysctls and service/slice properties only).
	Persist bool `json:"persist,omitempty"`
}

// TrialInfo is a trial as reported and as stored.
type TrialInfo struct {
	ID         TrialID      `json:"id"`
	State      string       `json:"state"`
	Changes    []ChangeInfo `json:"changes"`
	Options    Options      `json:"options"`
	Started    time.Time    `json:"started"`
	CanaryEnds time.Time    `json:"canary_ends"`
	LeaseEnds  time.Time    `json:"lease_ends"`
	Ended      time.Time    `json:"ended,omitzero"`
	Reason     string       `json:"reason,omitempty"`
	Before     []Figure     `json:"before,omitempty"`
	After      []Figure     `json:"after,omitempty"`
	Persisted  bool         `json:"persisted,omitempty"` // confirmed with its files written
}

// final trials are done with; a confirmed and persisted one is not (it
// can still be reverted, which removes its files).
func (t *TrialInfo) final() bool {
	return t.State == StateReverted || t.State == StateEnded || (t.State == StateConfirmed && !t.Persisted)
}

// Event is what the engine reports to the daemon.
type Event struct {
	Kind       string
	Trial      TrialInfo
	Reason     string
	Regression *Regression // EventRegressed only
}

func newID() TrialID {
	var b [8]byte
	rand.Read(b[:])
	return TrialID(hex.EncodeToString(b[:]))
}

func validateOptions(o *Options, haveMetrics bool) error {
	if o.Canary == 0 {
		o.Canary = DefaultCanary
	}
	if o.Lease == 0 {
		o.Lease = max(DefaultLease, 2*o.Canary)
	}
	if o.Every == 0 {
		o.Every = min(DefaultEvery, o.Canary)
	}
	switch {
	case o.Canary < 100*time.Millisecond || o.Canary > time.Hour:
		return invalid("canary %v is outside [100ms, 1h]", o.Canary)
	case o.Lease <= o.Canary || o.Lease > 24*time.Hour:
		return invalid("lease %v must be longer than the canary (%v) and at most 24h", o.Lease, o.Canary)
	case o.Every < 10*time.Millisecond || o.Every > 10*time.Second || o.Every > o.Canary:
		return invalid("sampling period %v is outside [10ms, 10s] or longer than the canary", o.Every)
	case len(o.Watch) > maxWatches:
		return invalid("at most %d watched metrics", maxWatches)
	case len(o.Workload) > maxWorkloadLen:
		return invalid("workload name longer than %d bytes", maxWorkloadLen)
	}
	for _, r := range o.Workload {
		if r < 0x20 || r == 0x7f {
			return invalid("workload name has control characters")
		}
	}
	for i := range o.Watch {
		if err := validateWatch(&o.Watch[i]); err != nil {
			return err
		}
	}
	if len(o.Watch) > 0 && !haveMetrics {
		return fmt.Errorf("%w: no metric source: this engine cannot watch metrics", ErrUnavailable)
	}
	return nil
}
