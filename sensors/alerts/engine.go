// Package alerts turns sensor data and journaled events into alerts: rules
// with hysteresis for machine state (memory pressure, low memory, full
// disks, runaway processes, processes far beyond their learned normal) and
// one alert per troubling event (OOM kill, crash, failed unit).
package alerts

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// Alert is one raised alert.
type Alert struct {
	ID       string
	Severity string
	Kind     string
	Summary  string // one line for people; never another user's command line or paths
	RaisedNS uint64
	// Details are broadcast with the Alert signal: pids, process names,
	// sizes — nothing private.
	Details map[string]any
	// Private details (cgroup paths, command lines) go only to root and
	// the owner, through GetAlert.
	Private  map[string]any
	OwnerUID uint32
	HasOwner bool

	expires time.Time // zero: cleared by its rule
}

// Change is what the engine tells its listener: an alert raised (or
// re-raised with a new severity or details), or cleared.
type Change struct {
	Raised  *Alert
	Cleared string
}

// Engine evaluates the rules. Its methods are safe for concurrent use;
// the listener is called without the engine's lock held, in order.
type Engine struct {
	baselines *Baselines
	procs     ProcessLister
	listener  func(Change)

	mu      sync.Mutex
	cfg     Config
	active  map[string]*Alert
	pending []Change

	pressureSince  time.Time // first sample above the warning level
	fullSince      time.Time
	pressureCalmAt time.Time // first sample below the clear level
	runawaySince   map[string]time.Time
	lastProcSample time.Time
	lastProcs      []sensors.Process
	lastProcsAt    time.Time

	notifyMu sync.Mutex
}

// maxEventAlerts bounds alerts raised by single events; the oldest is
// cleared first.
const maxEventAlerts = 64

// New makes an engine. procs may be nil (no cpu.runaway, no live anomaly).
func New(cfg Config, baselines *Baselines, procs ProcessLister, listener func(Change)) *Engine {
	return &Engine{cfg: cfg, baselines: baselines, procs: procs, listener: listener,
		active: map[string]*Alert{}, runawaySince: map[string]time.Time{}}
}

// SetListener sets who hears of changes; call it before events flow.
func (e *Engine) SetListener(listener func(Change)) {
	e.notifyMu.Lock()
	e.listener = listener
	e.notifyMu.Unlock()
}

// EventKinds are the kinds Event looks at (subscribe to these only).
var EventKinds = []string{api.KindProcessExit, api.KindOOMKill, api.KindUnitFailed, api.KindUnitRestarted, api.KindTuningRegressed}

// Follow feeds committed events from sub to the engine until ctx ends.
func (e *Engine) Follow(ctx context.Context, sub *sensors.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-sub.C:
			e.Event(ev, time.Now())
		}
	}
}

// Config returns the thresholds in force.
func (e *Engine) Config() Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}

// SetConfig replaces the thresholds (already validated).
func (e *Engine) SetConfig(c Config) {
	e.mu.Lock()
	e.cfg = c
	e.mu.Unlock()
}

// Active lists the active alerts, oldest first.
func (e *Engine) Active() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Alert, 0, len(e.active))
	for _, a := range e.active {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Alert) int {
		if a.RaisedNS != b.RaisedNS {
			if a.RaisedNS < b.RaisedNS {
				return -1
			}
			return 1
		}
		return cmpString(a.ID, b.ID)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get returns one active alert.
func (e *Engine) Get(id string) (Alert, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.active[id]
	if !ok {
		return Alert{}, false
	}
	return *a, true
}

// raise adds or updates an alert; an unchanged re-raise is not reported.
func (e *Engine) raise(a *Alert, now time.Time) {
	if old, ok := e.active[a.ID]; ok {
		if old.Severity == a.Severity && maps.EqualFunc(old.Details, a.Details, func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
			return
		}
		a.RaisedNS = old.RaisedNS
	} else {
		a.RaisedNS = uint64(now.UnixNano())
	}
	e.active[a.ID] = a
	c := *a
	e.pending = append(e.pending, Change{Raised: &c})
}

func (e *Engine) clear(id string) {
	if _, ok := e.active[id]; !ok {
		return
	}
	delete(e.active, id)
	e.pending = append(e.pending, Change{Cleared: id})
}

// flush hands pending changes to the listener outside the engine's lock,
// in the order they happened.
func (e *Engine) flush() {
	e.notifyMu.Lock()
	defer e.notifyMu.Unlock()
	e.mu.Lock()
	pending := e.pending
	e.pending = nil
	e.mu.Unlock()
	if e.listener == nil {
		return
	}
	for _, c := range pending {
		e.listener(c)
	}
}

// Machine evaluates the state rules on one snapshot, and every
// ProcessSampleInterval samples the process table.
func (e *Engine) Machine(snap *sensors.Snapshot, now time.Time) {
	defer e.flush()
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, a := range e.active {
		if !a.expires.IsZero() && now.After(a.expires) {
			e.clear(id)
		}
	}
	e.pressureRule(snap, now)
	e.memoryLowRule(snap, now)
	e.diskRule(snap, now)
	if e.procs != nil && now.Sub(e.lastProcSample) >= e.cfg.ProcessSampleInterval.D() {
		e.lastProcSample = now
		e.processRules(now)
	}
}

// Health is the highest severity among state alerts; alerts about single
// events count as warnings (they tell of something past).
func (e *Engine) Health() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	level := sensors.HealthOK
	for _, a := range e.active {
		sev := a.Severity
		if !a.expires.IsZero() && sev == api.SeverityCritical {
			sev = api.SeverityWarning
		}
		switch {
		case sev == api.SeverityCritical:
			return sensors.HealthCritical
		case sev == api.SeverityWarning:
			level = sensors.HealthWarning
		}
	}
	return level
}
