package alerts

import (
	"fmt"
	"slices"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// State rules on each snapshot: memory pressure, low memory, full disks.

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
