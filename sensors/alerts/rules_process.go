package alerts

import (
	"fmt"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// Process rules on a sample of the process table: runaway CPU, far beyond the learned normal.

// ProcessLister is the part of the process table the engine samples.
type ProcessLister interface {
	List(sensors.ListOptions) ([]sensors.Process, error)
}

// rankedLister ranks by CPU and by memory from one listing
// (sensors.ProcessTable); other listers are asked twice.
type rankedLister interface {
	Ranked(cpuN, memN int) (byCPU, byMem []sensors.Process, err error)
}

func (e *Engine) ranked(cpuN, memN int) (byCPU, byMem []sensors.Process, err error) {
	if r, ok := e.procs.(rankedLister); ok {
		return r.Ranked(cpuN, memN)
	}
	if byCPU, err = e.procs.List(sensors.ListOptions{SortBy: "cpu", Limit: cpuN}); err != nil {
		return nil, nil, err
	}
	byMem, err = e.procs.List(sensors.ListOptions{SortBy: "memory", Limit: memN})
	return byCPU, byMem, err
}

func (e *Engine) processRules(now time.Time) {
	byCPU, byMem, err := e.ranked(5, 10)
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
