// Package fakenpllmd is an in-process fake of OUR bus-client interface
// (dbus/client.API), for the agent's and the tool set's tests that run
// without root. It fakes npllmd's answers, not D-Bus or polkit: the real
// paths are covered by the privileged tests on the private bus.
package fakenpllmd

import (
	"context"
	"fmt"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Call is one write the fake received.
type Call struct {
	Method string
	PID    uint32
	Start  uint64
	Arg    string // signal, verb or unit
	Nice   int32
	Opts   client.CallOptions
}

// Fake answers from its fields; writes are recorded and answered with
// WriteErr.
type Fake struct {
	mu        sync.Mutex
	StatusV   api.Status
	Processes []api.Process
	Events    []api.Event // in seq order
	Alerts    map[string]api.Alert
	Baselines map[string]api.Baseline
	Units     map[string]api.Unit
	WriteErr  error
	Calls     []Call
	Notices   chan client.Notice
}

var _ client.API = (*Fake)(nil)

// New is an empty fake.
func New() *Fake {
	return &Fake{Alerts: map[string]api.Alert{}, Baselines: map[string]api.Baseline{}, Units: map[string]api.Unit{},
		StatusV: api.Status{Health: "ok", Pressure: map[string][3]float64{}}, Notices: make(chan client.Notice, 16)}
}

// Writes returns the writes received so far.
func (f *Fake) Writes() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.Calls...)
}

func (f *Fake) record(c Call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, c)
	return f.WriteErr
}

func (f *Fake) Status(context.Context) (*api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.StatusV
	return &st, nil
}

func (f *Fake) ListProcesses(_ context.Context, q client.ProcessQuery) ([]api.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Process
	for _, p := range f.Processes {
		if q.UID != nil && p.UID != *q.UID {
			continue
		}
		if q.Limit != 0 && uint32(len(out)) >= q.Limit {
			break
		}
		out = append(out, p)
	}
	return out, nil
}

func (f *Fake) GetProcess(_ context.Context, pid uint32) (api.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.Processes {
		if p.PID == pid {
			return p, nil
		}
	}
	return api.Process{}, dbus.Error{Name: api.ErrNoSuchProcess, Body: []any{fmt.Sprintf("no process %d", pid)}}
}

func (f *Fake) GetEvents(_ context.Context, after uint64, max uint32, flt client.EventFilter) (uint64, []api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Event
	last := after
	for _, ev := range f.Events {
		if ev.Seq <= after {
			continue
		}
		if max != 0 && uint32(len(out)) >= max {
			break
		}
		last = ev.Seq
		if len(flt.Kinds) > 0 && !contains(flt.Kinds, ev.Kind) || flt.PID != nil && ev.PID != *flt.PID {
			continue
		}
		out = append(out, ev)
	}
	if len(f.Events) > 0 && after >= f.Events[len(f.Events)-1].Seq {
		last = f.Events[len(f.Events)-1].Seq
	}
	return last, out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (f *Fake) NewestSeq(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.Events) == 0 {
		return 0, nil
	}
	return f.Events[len(f.Events)-1].Seq, nil
}

func (f *Fake) GetAlert(_ context.Context, id string) (api.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.Alerts[id]; ok {
		return a, nil
	}
	return api.Alert{}, dbus.Error{Name: api.ErrInvalidArgument, Body: []any{"no alert " + id}}
}

func (f *Fake) GetBaseline(_ context.Context, program string) (api.Baseline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.Baselines[program]; ok {
		return b, nil
	}
	return api.Baseline{}, dbus.Error{Name: api.ErrInvalidArgument, Body: []any{"no baseline for " + program}}
}

func (f *Fake) GetUnit(_ context.Context, unit string) (api.Unit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.Units[unit]; ok {
		return u, nil
	}
	return api.Unit{}, dbus.Error{Name: api.ErrNotSupported, Body: []any{"systemd is not running"}}
}

func (f *Fake) SignalProcess(_ context.Context, pid uint32, start uint64, sig string, o client.CallOptions) error {
	return f.record(Call{Method: "SignalProcess", PID: pid, Start: start, Arg: sig, Opts: o})
}

func (f *Fake) SetProcessPriority(_ context.Context, pid uint32, start uint64, nice int32, o client.CallOptions) error {
	return f.record(Call{Method: "SetProcessPriority", PID: pid, Start: start, Nice: nice, Opts: o})
}

func (f *Fake) SetProcessIOPriority(_ context.Context, pid uint32, start uint64, class string, level int32, o client.CallOptions) error {
	return f.record(Call{Method: "SetProcessIOPriority", PID: pid, Start: start, Arg: class, Nice: level, Opts: o})
}

func (f *Fake) ManageUnit(_ context.Context, unit, verb string, o client.CallOptions) (string, error) {
	err := f.record(Call{Method: "ManageUnit", Arg: unit + " " + verb, Opts: o})
	if err != nil {
		return "", err
	}
	return "/org/freedesktop/systemd1/job/1", nil
}

func (f *Fake) Watch(context.Context) (<-chan client.Notice, error) { return f.Notices, nil }
