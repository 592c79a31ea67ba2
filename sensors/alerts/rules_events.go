package alerts

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// One alert per troubling event: OOM kills, crashes, failed units, regressed tuning trials.

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
