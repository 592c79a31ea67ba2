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
	"strconv"
	"strings"
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

// ProcessLister is the part of the process table the engine samples.
type ProcessLister interface {
	List(sensors.ListOptions) ([]sensors.Process, error)
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

// fatalSignals end a process in a way that is a crash, not a request.
var fatalSignals = map[uint32]string{4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV"}

// Event looks at one journaled event.
func (e *Engine) Event(ev sensors.Event, now time.Time) {
	defer e.flush()
	e.mu.Lock()
	defer e.mu.Unlock()
	seq := strconv.FormatUint(ev.Seq, 10)
	switch ev.Kind {
	case api.KindProcessExit:
		x := ev.Exit
		if x == nil {
			x = &api.ExitStatus{} // seen by the /proc fallback: no status
		}
		sig, core := x.Signal, x.CoreDumped
		name, crashed := fatalSignals[sig]
		crashed = crashed || core
		if e.baselines != nil && ev.HasUID { // a run nobody can be held to teaches nothing
			e.baselines.Observe(ev.UID, ev.Comm, x.MaxRSSBytes, x.CPUNS, x.RuntimeNS, crashed, now)
		}
		if !crashed {
			return
		}
		if name == "" {
			name = "signal " + strconv.FormatUint(uint64(sig), 10)
		}
		e.raiseEvent(&Alert{ID: api.KindProcessCrash + "/" + seq, Severity: api.SeverityWarning, Kind: api.KindProcessCrash,
			Summary: fmt.Sprintf("%s (pid %d) crashed: %s%s", ev.Comm, ev.PID, name, map[bool]string{true: ", core dumped", false: ""}[core]),
			Details: map[string]any{"pid": ev.PID, "uid": ev.UID, "comm": ev.Comm, "signal": sig, "signal_name": name,
				"core_dumped": core, "start_time": ev.StartTime, "seq": ev.Seq},
			OwnerUID: ev.UID, HasOwner: ev.HasUID}, now)
	case api.KindOOMKill:
		o := ev.OOM
		if o == nil {
			o = &api.OOMKill{}
		}
		e.raiseEvent(&Alert{ID: api.KindOOMKill + "/" + seq, Severity: api.SeverityCritical, Kind: api.KindOOMKill,
			Summary: fmt.Sprintf("%s (pid %d) was killed for lack of memory (%s in use)", ev.Comm, ev.PID, api.HumanBytes(o.RSSBytes)),
			Details: map[string]any{"pid": ev.PID, "uid": ev.UID, "comm": ev.Comm, "rss_bytes": o.RSSBytes, "seq": ev.Seq},
			Private: map[string]any{"cgroup": o.Cgroup}, OwnerUID: ev.UID, HasOwner: ev.HasUID}, now)
	case api.KindUnitFailed:
		if ev.Unit == nil {
			return
		}
		unit := ev.Unit.Unit
		e.raiseEvent(&Alert{ID: api.KindUnitFailed + "/" + unit, Severity: api.SeverityWarning, Kind: api.KindUnitFailed,
			Summary: fmt.Sprintf("%s failed (%s)", unit, ev.Unit.Result),
			Details: map[string]any{"unit": unit, "result": ev.Unit.Result, "seq": ev.Seq}}, now)
	case api.KindUnitRestarted:
		if ev.Unit != nil {
			e.clear(api.KindUnitFailed + "/" + ev.Unit.Unit)
		}
	case api.KindTuningRegressed:
		if n := ev.Tuning; n != nil {
			// The trial is already reverted; the alert says so with the evidence.
			e.raiseEvent(&Alert{ID: api.KindTuningRegressed + "/" + n.Trial, Severity: api.SeverityWarning, Kind: api.KindTuningRegressed,
				Summary: fmt.Sprintf("Tuning trial %s was reverted: %s", n.Trial, strings.Join(n.Figures, "; ")),
				Details: map[string]any{"trial": n.Trial, "changes": n.Changes, "figures": n.Figures, "workload": n.Workload, "seq": ev.Seq}}, now)
		}
	}
}

func (e *Engine) raiseEvent(a *Alert, now time.Time) {
	a.expires = now.Add(e.cfg.EventAlertTTL.D())
	var event []*Alert
	for _, x := range e.active {
		if !x.expires.IsZero() {
			event = append(event, x)
		}
	}
	if len(event) >= maxEventAlerts {
		slices.SortFunc(event, func(a, b *Alert) int { return a.expires.Compare(b.expires) })
		for _, x := range event[:len(event)-maxEventAlerts+1] {
			e.clear(x.ID)
		}
	}
	e.raise(a, now)
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

func (e *Engine) pressureRule(snap *sensors.Snapshot, now time.Time) {
	some, full := snap.Pressure["memory"][0], snap.PressureFull["memory"][0]
	sustain := e.cfg.PressureSustain.D()
	since := func(t *time.Time, cond bool) bool {
		if !cond {
			*t = time.Time{}
			return false
		}
		if t.IsZero() {
			*t = now
		}
		return now.Sub(*t) >= sustain
	}
	warn := since(&e.pressureSince, some >= e.cfg.PressureSomePercent)
	crit := since(&e.fullSince, full >= e.cfg.PressureFullPercent)
	calm := since(&e.pressureCalmAt, some < e.cfg.PressureSomePercent/2 && full < e.cfg.PressureFullPercent/2)
	_, active := e.active[api.KindMemoryPressure]
	switch {
	case crit || warn:
		sev := api.SeverityWarning
		if crit {
			sev = api.SeverityCritical
		}
		// Rounded so that small wobbles do not re-raise the alert.
		e.raise(&Alert{ID: api.KindMemoryPressure, Severity: sev, Kind: api.KindMemoryPressure,
			Summary: fmt.Sprintf("memory pressure: tasks stalled %.0f%% of the last 10 s waiting for memory", some),
			Details: map[string]any{"some_avg10": float64(int(some)), "full_avg10": float64(int(full)), "top": e.topMemory(3, now)}}, now)
	case active && calm:
		e.clear(api.KindMemoryPressure)
	}
}

func (e *Engine) memoryLowRule(snap *sensors.Snapshot, now time.Time) {
	if snap.MemoryTotal == 0 {
		return
	}
	mem := 100 * float64(snap.MemoryAvailable) / float64(snap.MemoryTotal)
	swap := 0.0
	if snap.SwapTotal > 0 {
		swap = 100 * float64(snap.SwapFree) / float64(snap.SwapTotal)
	}
	low := e.cfg.MemoryLowPercent
	_, active := e.active[api.KindMemoryLow]
	switch {
	case mem < low && swap < low:
		sev := api.SeverityWarning
		if mem < low/2 {
			sev = api.SeverityCritical
		}
		e.raise(&Alert{ID: api.KindMemoryLow, Severity: sev, Kind: api.KindMemoryLow,
			Summary: fmt.Sprintf("memory is running out: %s available, %.0f%% of swap free", api.HumanBytes(snap.MemoryAvailable), swap),
			Details: map[string]any{"available_percent": float64(int(mem)), "swap_free_percent": float64(int(swap)), "top": e.topMemory(3, now)}}, now)
	case active && (mem >= low+5 || swap >= low+5):
		e.clear(api.KindMemoryLow)
	}
}

func (e *Engine) diskRule(snap *sensors.Snapshot, now time.Time) {
	seen := map[string]bool{}
	for _, d := range snap.Disks {
		id := api.KindDiskFull + "/" + d.Mount
		seen[id] = true
		if d.Unknown {
			continue // a hung mount keeps whatever alert it had
		}
		used := max(d.UsedPercent, d.InodesPercent)
		_, active := e.active[id]
		switch {
		case used >= e.cfg.DiskWarningPercent:
			sev := api.SeverityWarning
			if used >= e.cfg.DiskCriticalPercent {
				sev = api.SeverityCritical
			}
			what := "space"
			if d.InodesPercent > d.UsedPercent {
				what = "inodes"
			}
			e.raise(&Alert{ID: id, Severity: sev, Kind: api.KindDiskFull,
				Summary: fmt.Sprintf("%s is %.0f%% full (%s; %s free)", d.Mount, used, what, api.HumanBytes(d.AvailBytes)),
				Details: map[string]any{"mount": d.Mount, "fstype": d.FSType, "used_percent": float64(int(d.UsedPercent)),
					"inodes_percent": float64(int(d.InodesPercent)), "avail_bytes": d.AvailBytes / (1 << 20) << 20}}, now)
		case active && used < e.cfg.DiskWarningPercent-3:
			e.clear(id)
		}
	}
	for id, a := range e.active {
		if a.Kind == api.KindDiskFull && !seen[id] {
			e.clear(id) // unmounted
		}
	}
}

// topByMemory returns the n largest processes by RSS.
func topByMemory(all []sensors.Process, n int) []sensors.Process {
	list := slices.Clone(all)
	slices.SortFunc(list, func(a, b sensors.Process) int {
		if a.RSSBytes != b.RSSBytes {
			if a.RSSBytes > b.RSSBytes {
				return -1
			}
			return 1
		}
		return int(a.PID) - int(b.PID)
	})
	return list[:min(n, len(list))]
}

// topMemory names the largest processes, from the last process sample
// when it is recent, so that a pressure alert offers them to act on.
func (e *Engine) topMemory(n int, now time.Time) []map[string]any {
	list := e.lastProcs
	if e.procs != nil && now.Sub(e.lastProcsAt) > 2*e.cfg.ProcessSampleInterval.D() {
		// Not sampled lately (the interval is long): read now.
		if fresh, err := e.procs.List(sensors.ListOptions{SortBy: "memory", Limit: n}); err == nil {
			list = fresh
		}
	}
	list = topByMemory(list, n)
	out := make([]map[string]any, 0, len(list))
	for _, p := range list {
		out = append(out, map[string]any{"pid": p.PID, "start_time": p.StartTime, "comm": p.Comm, "uid": p.UID,
			"rss_bytes": p.RSSBytes / (1 << 20) << 20})
	}
	return out
}

// processRules: cpu.runaway and the live side of process.anomaly.
func (e *Engine) processRules(now time.Time) {
	// Two short reads: the table details only the processes it returns.
	byCPU, err := e.procs.List(sensors.ListOptions{SortBy: "cpu", Limit: 5})
	if err != nil {
		return
	}
	byMem, err := e.procs.List(sensors.ListOptions{SortBy: "memory", Limit: 10})
	if err != nil {
		return
	}
	e.lastProcs, e.lastProcsAt = byMem, now
	seen := map[string]bool{}
	for _, p := range byCPU {
		id := fmt.Sprintf("%s/%d/%d", api.KindCPURunaway, p.PID, p.StartTime)
		if p.CPUPercent < e.cfg.RunawayCPUPercent {
			if p.CPUPercent < e.cfg.RunawayCPUPercent/2 {
				delete(e.runawaySince, id)
				e.clear(id)
			} else if _, active := e.active[id]; active {
				seen[id] = true
			}
			continue
		}
		seen[id] = true
		start, ok := e.runawaySince[id]
		if !ok {
			e.runawaySince[id] = now
			continue
		}
		if now.Sub(start) >= e.cfg.RunawayAfter.D() {
			e.raise(&Alert{ID: id, Severity: api.SeverityWarning, Kind: api.KindCPURunaway,
				Summary:  fmt.Sprintf("%s (pid %d) has kept a CPU busy for %s", p.Comm, p.PID, now.Sub(start).Round(time.Second)),
				Details:  map[string]any{"pid": p.PID, "start_time": p.StartTime, "comm": p.Comm, "uid": p.UID, "cpu_percent": float64(int(p.CPUPercent))},
				OwnerUID: p.UID, HasOwner: true}, now)
		}
	}
	for id := range e.runawaySince {
		if !seen[id] {
			delete(e.runawaySince, id)
			e.clear(id)
		}
	}
	if e.baselines == nil {
		return
	}
	over := map[string]bool{}
	for _, p := range byMem {
		bl, ok := e.baselines.Get(p.UID, p.Comm)
		if !ok || bl.Runs < uint64(e.cfg.AnomalyMinSamples) {
			continue
		}
		p95 := Percentile(bl.RSS, 0.95)
		if float64(p.RSSBytes) <= e.cfg.AnomalyFactor*float64(p95) || p.RSSBytes <= e.cfg.AnomalyMinBytes {
			continue
		}
		id := fmt.Sprintf("%s/%d/%d", api.KindAnomaly, p.PID, p.StartTime)
		over[id] = true
		e.raise(&Alert{ID: id, Severity: api.SeverityWarning, Kind: api.KindAnomaly,
			Summary: fmt.Sprintf("%s (pid %d) uses %s, %.0f× its usual peak of %s", p.Comm, p.PID, api.HumanBytes(p.RSSBytes), float64(p.RSSBytes)/float64(max(p95, 1)), api.HumanBytes(p95)),
			Details: map[string]any{"pid": p.PID, "start_time": p.StartTime, "comm": p.Comm, "uid": p.UID,
				"rss_bytes": p.RSSBytes / (1 << 20) << 20, "baseline_p95_rss_bytes": p95, "baseline_runs": bl.Runs},
			OwnerUID: p.UID, HasOwner: true}, now)
	}
	for id, a := range e.active {
		if a.Kind == api.KindAnomaly && !over[id] {
			e.clear(id)
		}
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
