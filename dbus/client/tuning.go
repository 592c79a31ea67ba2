package client

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// Tuning trials. The MCP bridge and the ask loop reach these through the
// Tuner interface, so a client that cannot tune (an old npllmd, a fake)
// simply offers no tuning tools.

// Tuner is the tuning part of npllmd's API; *Client implements it.
type Tuner interface {
	GetTunables(ctx context.Context) ([]api.Tunable, error)
	StartTrial(ctx context.Context, req TrialRequest, opts TuneCall) (string, error)
	ConfirmTrial(ctx context.Context, id string, opts TuneCall) error
	RevertTrial(ctx context.Context, id string, opts TuneCall) error
	GetTrials(ctx context.Context) ([]api.Trial, error)
	GetTrialHistory(ctx context.Context, workload string) ([]api.TrialOutcome, error)
}

var _ Tuner = (*Client)(nil)

// TuneCall is how a tuning write is sent.
type TuneCall struct {
	Interactive bool // polkit may ask the user
	Automated   bool // a model asked (the MCP bridge, npllmctl ask)
}

// TrialRequest is one StartTrial; zero values take the daemon's defaults.
type TrialRequest struct {
	// Changes maps "KNOB" or "KNOB@TARGET" (a device or unit) to a value.
	Changes   map[string]string
	Canary    time.Duration
	Lease     time.Duration
	Every     time.Duration
	Watch     []string // "psi.memory.some", "unit.cpu:build.service"
	Threshold float64
	Workload  string
	Persist   bool
}

func (r TrialRequest) options(call TuneCall) (map[string]dbus.Variant, error) {
	o := map[string]any{}
	for key, d := range map[string]time.Duration{api.TrialOptCanaryMS: r.Canary, api.TrialOptLeaseMS: r.Lease, api.TrialOptEveryMS: r.Every} {
		if d == 0 {
			continue
		}
		ms := d.Milliseconds()
		if ms <= 0 || ms > 1<<32-1 {
			return nil, fmt.Errorf("%s: %v is out of range", key, d)
		}
		o[key] = uint32(ms)
	}
	if len(r.Watch) > 0 {
		o[api.TrialOptWatch] = r.Watch
	}
	if r.Threshold != 0 {
		o[api.TrialOptThreshold] = r.Threshold
	}
	if r.Workload != "" {
		o[api.TrialOptWorkload] = r.Workload
	}
	if r.Persist {
		o[api.TrialOptPersist] = true
	}
	if call.Automated {
		o[api.TrialOptAutomated] = true
	}
	return api.Options(o), nil
}

// GetTunables lists every knob on this machine.
func (c *Client) GetTunables(ctx context.Context) ([]api.Tunable, error) {
	var raw []map[string]dbus.Variant
	if err := c.read(ctx, "GetTunables", &raw); err != nil {
		return nil, err
	}
	return decodeAll(raw, api.DecodeTunable)
}

// StartTrial starts a trial and returns its id.
func (c *Client) StartTrial(ctx context.Context, req TrialRequest, call TuneCall) (string, error) {
	opts, err := req.options(call)
	if err != nil {
		return "", err
	}
	changes := make(map[string]any, len(req.Changes))
	for k, v := range req.Changes {
		changes[k] = v
	}
	res := c.write(ctx, CallOptions{Interactive: call.Interactive}, "StartTrial", api.Options(changes), opts)
	if res.Err != nil {
		return "", res.Err
	}
	var id string
	if err := res.Store(&id); err != nil {
		return "", err
	}
	return id, nil
}

func tuneOptions(call TuneCall) map[string]dbus.Variant {
	o := map[string]any{}
	if call.Automated {
		o[api.TrialOptAutomated] = true
	}
	return api.Options(o)
}

// ConfirmTrial keeps a trial's changes (after its canary passed).
func (c *Client) ConfirmTrial(ctx context.Context, id string, call TuneCall) error {
	return c.write(ctx, CallOptions{Interactive: call.Interactive}, "ConfirmTrial", id, tuneOptions(call)).Err
}

// RevertTrial undoes a trial now.
func (c *Client) RevertTrial(ctx context.Context, id string, call TuneCall) error {
	return c.write(ctx, CallOptions{Interactive: call.Interactive}, "RevertTrial", id, tuneOptions(call)).Err
}

// GetTrials lists unfinished and recently finished trials.
func (c *Client) GetTrials(ctx context.Context) ([]api.Trial, error) {
	var raw []map[string]dbus.Variant
	if err := c.read(ctx, "GetTrials", &raw); err != nil {
		return nil, err
	}
	return decodeAll(raw, api.DecodeTrial)
}

// GetTrialHistory lists a workload's finished trials.
func (c *Client) GetTrialHistory(ctx context.Context, workload string) ([]api.TrialOutcome, error) {
	var raw []map[string]dbus.Variant
	if err := c.read(ctx, "GetTrialHistory", &raw, workload); err != nil {
		return nil, err
	}
	return decodeAll(raw, api.DecodeTrialOutcome)
}

// decodeAll decodes each record of an aa{sv} reply, checking every type.
func decodeAll[T any](raw []map[string]dbus.Variant, decode func(map[string]dbus.Variant) (T, error)) ([]T, error) {
	out := make([]T, 0, len(raw))
	for _, m := range raw {
		t, err := decode(m)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
