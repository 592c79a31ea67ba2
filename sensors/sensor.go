// Package sensors watches the machine. Each sensor lives in its own file and
// registers itself with a name, whether it is on by default, and a ladder of
// variants, best first. The Manager starts a sensor by really starting its
// variants in order — feature probes lie on some kernels — and keeps, for
// every variant it skipped, the reason, so "why is there no X?" always has an
// answer (the Sensors D-Bus property, npllmctl sensors).
package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// Variant is one way of implementing a sensor ("tp_btf", "raw_tp", "procfs").
type Variant struct {
	Name string
	// Start loads and attaches the variant for real; an error means "try the
	// next one" and is shown to the user as the reason it was skipped.
	Start func(ctx context.Context, env *Env) (Running, error)
}

// Running is a started variant.
type Running interface {
	// Counters are shown beside the sensor's state (events, drops, …).
	Counters() map[string]uint64
	Close() error
}

// Sampler is implemented by running sensors that contribute to the periodic
// Snapshot behind the daemon's properties.
type Sampler interface {
	Sample(*Snapshot) error
}

// Registration describes a sensor to the registry.
type Registration struct {
	Name        string
	Description string
	DefaultOn   bool
	Variants    []Variant
}

// Unavailable is returned by a variant that cannot run on this machine; Fix
// tells the user what would make it work.
type Unavailable struct {
	Reason string
	Fix    string
}

func (u *Unavailable) Error() string {
	if u.Fix == "" {
		return u.Reason
	}
	return u.Reason + " (" + u.Fix + ")"
}

var (
	registryMu sync.Mutex
	registry   = map[string]Registration{}
)

// Register adds a sensor; it is called from the init of the sensor's file.
func Register(r Registration) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[r.Name]; dup {
		panic("sensors: duplicate registration of " + r.Name)
	}
	registry[r.Name] = r
}

// Registered lists all registrations sorted by name.
func Registered() []Registration {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]Registration, 0, len(registry))
	for _, r := range registry {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Env is what variants may use while starting.
type Env struct {
	ProcRoot string // "/proc" outside tests
	Log      *slog.Logger
	// ForceVariant, when set for a sensor, restricts it to that variant
	// (e.g. "processes" → "procfs" on machines where eBPF is forbidden).
	ForceVariant map[string]string
	// Hub receives the events of event sensors (nil: they cannot start).
	Hub *Hub
	// Disks chooses which file systems the disks sensor asks.
	Disks DiskOptions
}

// State of a sensor as shown to users.
const (
	StateRunning     = "running"
	StateUnavailable = "unavailable"
	StateDisabled    = "disabled"
)

// Status is one row of the Sensors property.
type Status struct {
	Name        string
	Variant     string // "" unless running
	State       string
	Description string
	Skipped     []string // "variant: reason", best first
	Reason      string   // why unavailable
	Fix         string   // what would make it available
}

type active struct {
	reg     Registration
	variant string
	run     Running
	skipped []string
	reason  string
	fix     string
	enabled bool
}

// Manager owns the running sensors.
type Manager struct {
	env *Env
	mu  sync.Mutex
	all []*active
}

// NewManager starts every registered sensor whose enabled state (default,
// overridden by enabled[name]) is on.
func NewManager(ctx context.Context, env *Env, enabled map[string]bool) *Manager {
	if env.ProcRoot == "" {
		env.ProcRoot = "/proc"
	}
	if env.Log == nil {
		env.Log = slog.Default()
	}
	m := &Manager{env: env}
	for _, reg := range Registered() {
		on := reg.DefaultOn
		if v, ok := enabled[reg.Name]; ok {
			on = v
		}
		a := &active{reg: reg, enabled: on}
		if on {
			m.start(ctx, a)
		}
		m.all = append(m.all, a)
	}
	return m
}

func (m *Manager) start(ctx context.Context, a *active) {
	a.skipped, a.reason, a.fix = nil, "", ""
	force := m.env.ForceVariant[a.reg.Name]
	var lastUnavailable *Unavailable
	for _, v := range a.reg.Variants {
		if force != "" && v.Name != force {
			a.skipped = append(a.skipped, v.Name+": skipped by configuration (forced variant "+force+")")
			continue
		}
		run, err := v.Start(ctx, m.env)
		if err == nil {
			a.variant, a.run = v.Name, run
			m.env.Log.Info("sensor started", "sensor", a.reg.Name, "variant", v.Name, "skipped", strings.Join(a.skipped, "; "))
			return
		}
		errors.As(err, &lastUnavailable)
		a.skipped = append(a.skipped, v.Name+": "+err.Error())
	}
	a.reason = "no variant could start"
	if lastUnavailable != nil {
		a.reason, a.fix = lastUnavailable.Reason, lastUnavailable.Fix
	}
	m.env.Log.Warn("sensor unavailable", "sensor", a.reg.Name, "reason", a.reason, "skipped", strings.Join(a.skipped, "; "))
}

// Errors of Manager lookups.
var (
	ErrNoSuchSensor      = errors.New("no such sensor")
	ErrSensorNotRunning  = errors.New("sensor not running")
	ErrSensorUnavailable = errors.New("sensor unavailable")
)

// SetEnabled switches a sensor on or off at run time. Switching on a
// sensor none of whose variants can start fails with ErrSensorUnavailable
// (and the reason) and leaves it off.
func (m *Manager) SetEnabled(ctx context.Context, name string, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.find(name)
	if a == nil {
		return fmt.Errorf("%w %q (have %s)", ErrNoSuchSensor, name, m.names())
	}
	if on && a.run == nil {
		m.start(ctx, a)
		if a.run == nil {
			return fmt.Errorf("%w: %s: %s", ErrSensorUnavailable, name, strings.Join(a.skipped, "; "))
		}
	}
	if !on && a.run != nil {
		a.run.Close()
		a.run, a.variant = nil, ""
	}
	a.enabled = on
	return nil
}

// Get returns a running sensor, or an error saying why it is not running.
func (m *Manager) Get(name string) (Running, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.find(name)
	switch {
	case a == nil:
		return nil, fmt.Errorf("%w %q (have %s)", ErrNoSuchSensor, name, m.names())
	case !a.enabled:
		return nil, fmt.Errorf("%w: %s is switched off", ErrSensorNotRunning, name)
	case a.run == nil:
		return nil, fmt.Errorf("%w: %s is unavailable: %s", ErrSensorNotRunning, name, a.reason)
	}
	return a.run, nil
}

// Known says whether a sensor of that name is registered.
func (m *Manager) Known(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.find(name) != nil
}

func (m *Manager) find(name string) *active {
	for _, a := range m.all {
		if a.reg.Name == name {
			return a
		}
	}
	return nil
}

func (m *Manager) names() string {
	var out []string
	for _, a := range m.all {
		out = append(out, a.reg.Name)
	}
	return strings.Join(out, ", ")
}

// Status reports every registered sensor without reading its counters
// (which may mean reading per-CPU kernel maps): see Counters.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.all))
	for _, a := range m.all {
		s := Status{Name: a.reg.Name, Description: a.reg.Description, Skipped: a.skipped, Reason: a.reason, Fix: a.fix}
		switch {
		case !a.enabled:
			s.State = StateDisabled
		case a.run != nil:
			s.State, s.Variant = StateRunning, a.variant
		default:
			s.State = StateUnavailable
		}
		out = append(out, s)
	}
	return out
}

// Counters reads the counters of every running sensor, by name; it is
// called when a client asks, not on every refresh.
func (m *Manager) Counters() map[string]map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]map[string]uint64, len(m.all))
	for _, a := range m.all {
		if a.enabled && a.run != nil {
			out[a.reg.Name] = a.run.Counters()
		}
	}
	return out
}

// Running returns the running instance of a sensor, or nil.
func (m *Manager) Running(name string) Running {
	run, _ := m.Get(name)
	return run
}

// Sample fills a Snapshot from every running Sampler. A sampler's error is
// logged and leaves its part of the snapshot at the previous value.
func (m *Manager) Sample(s *Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.all {
		if sm, ok := a.run.(Sampler); ok && a.run != nil {
			if err := sm.Sample(s); err != nil {
				m.env.Log.Warn("sample failed", "sensor", a.reg.Name, "err", err)
			}
		}
	}
}

// Close stops every sensor.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.all {
		if a.run != nil {
			a.run.Close()
			a.run = nil
		}
	}
}
