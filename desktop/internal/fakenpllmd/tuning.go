package fakenpllmd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Tuning is a Fake that can tune (client.Tuner). Its writes are recorded
// like the Fake's (Arg: "KNOB=VALUE, …" for StartTrial, the trial id for
// Confirm/Revert; Opts from the TuneCall) and answered with WriteErr; the
// trial requests themselves are kept in Requests. A started trial is
// "canary" in GetTrials; Confirm/Revert of an unknown id is NotFound.
type Tuning struct {
	*Fake
	TunablesV []api.Tunable
	TrialsV   []api.Trial
	History   map[string][]api.TrialOutcome
	Requests  []client.TrialRequest
}

var _ client.Tuner = (*Tuning)(nil)

// NewTuning is an empty fake that can tune.
func NewTuning() *Tuning {
	return &Tuning{Fake: New(), History: map[string][]api.TrialOutcome{}}
}

func opts(c client.TuneCall) client.CallOptions {
	return client.CallOptions(c)
}

func (f *Tuning) GetTunables(context.Context) ([]api.Tunable, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.TunablesV), nil
}

func (f *Tuning) GetTrials(context.Context) ([]api.Trial, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.TrialsV), nil
}

func (f *Tuning) GetTrialHistory(_ context.Context, workload string) ([]api.TrialOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.History[workload]), nil
}

func (f *Tuning) StartTrial(_ context.Context, r client.TrialRequest, c client.TuneCall) (string, error) {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(r.Changes)) {
		pairs = append(pairs, k+"="+r.Changes[k])
	}
	if err := f.record(Call{Method: "StartTrial", Arg: strings.Join(pairs, ", "), Opts: opts(c)}); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Requests = append(f.Requests, r)
	id := fmt.Sprintf("trial%d", len(f.Requests))
	now := time.Now()
	t := api.Trial{ID: id, State: api.TrialCanary, Workload: r.Workload, Watch: r.Watch, StartedNS: uint64(now.UnixNano()),
		CanaryEndsNS: uint64(now.Add(r.Canary).UnixNano()), LeaseEndsNS: uint64(now.Add(r.Lease).UnixNano())}
	for _, k := range slices.Sorted(maps.Keys(r.Changes)) {
		knob, target, _ := strings.Cut(k, "@")
		t.Changes = append(t.Changes, api.TrialChange{Knob: knob, Target: target, Old: "?", New: r.Changes[k]})
	}
	f.TrialsV = append(f.TrialsV, t)
	return id, nil
}

func (f *Tuning) ConfirmTrial(_ context.Context, id string, c client.TuneCall) error {
	return f.end("ConfirmTrial", id, api.TrialConfirmed, c)
}

func (f *Tuning) RevertTrial(_ context.Context, id string, c client.TuneCall) error {
	return f.end("RevertTrial", id, api.TrialReverted, c)
}

func (f *Tuning) end(method, id, state string, c client.TuneCall) error {
	if err := f.record(Call{Method: method, Arg: id, Opts: opts(c)}); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.TrialsV {
		if f.TrialsV[i].ID == id {
			f.TrialsV[i].State = state
			return nil
		}
	}
	return dbus.Error{Name: api.ErrNotFound, Body: []any{"no trial " + id}}
}
