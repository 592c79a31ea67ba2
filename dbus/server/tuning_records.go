package server

import (
	"fmt"
	"time"

	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
)

// The tuning engine's records as the API's (dbus/api stays a leaf that
// knows nothing of the engine).

// TunableRecord is one row of GetTunables.
func TunableRecord(t tuning.TunableInfo) api.Tunable {
	return api.Tunable{Name: t.Name, Family: t.Family, Target: t.Target, NeedsUnit: t.NeedsUnit, Type: t.Type,
		Allowed: t.Allowed, Min: t.Min, Max: t.Max, Current: t.Current, Default: t.Default, Risk: t.Risk,
		Why: t.Why, Available: t.Available, Reason: t.Reason, Trial: string(t.Trial)}
}

func trialChanges(cs []tuning.ChangeInfo) []api.TrialChange {
	out := make([]api.TrialChange, len(cs))
	for i, c := range cs {
		out[i] = api.TrialChange{Knob: c.Knob, Target: c.Target, Old: c.Old, New: c.New, File: c.File}
	}
	return out
}

func figures(fs []tuning.Figure) []api.Figure {
	if len(fs) == 0 {
		return nil
	}
	out := make([]api.Figure, len(fs))
	for i, f := range fs {
		out[i] = api.Figure{Metric: f.Metric, Target: f.Target, Value: f.Value}
	}
	return out
}

func unixNS(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// TrialRecord is one element of GetTrials.
func TrialRecord(t tuning.TrialInfo) api.Trial {
	var watch []string
	for _, w := range t.Options.Watch {
		s := w.Metric
		if w.Target != "" {
			s += ":" + w.Target
		}
		watch = append(watch, s)
	}
	return api.Trial{ID: string(t.ID), State: t.State, Changes: trialChanges(t.Changes), Workload: t.Options.Workload,
		Watch: watch, StartedNS: unixNS(t.Started), CanaryEndsNS: unixNS(t.CanaryEnds), LeaseEndsNS: unixNS(t.LeaseEnds),
		EndedNS: unixNS(t.Ended), Reason: t.Reason, Persist: t.Options.Persist, Persisted: t.Persisted,
		Before: figures(t.Before), After: figures(t.After)}
}

// OutcomeRecord is one element of GetTrialHistory.
func OutcomeRecord(h tuning.HistoryEntry) api.TrialOutcome {
	return api.TrialOutcome{ID: string(h.ID), Outcome: h.Outcome, Changes: trialChanges(h.Changes), Reason: h.Reason,
		Before: figures(h.Before), After: figures(h.After), StartedNS: unixNS(h.Started), EndedNS: unixNS(h.Ended)}
}

// TuningEvent is the journal's record of what the engine reports; npllmd
// publishes it (the Record callback), and tuning.regressed raises an alert.
func TuningEvent(ev tuning.Event, now time.Time) api.Event {
	n := &api.TuningNote{Trial: string(ev.Trial.ID), State: ev.Trial.State, Workload: ev.Trial.Options.Workload,
		Reason: ev.Reason, Changes: changeWords(ev.Trial.Changes)}
	if r := ev.Regression; r != nil {
		n.Figures = []string{r.String()}
	} else {
		after := map[string]float64{}
		for _, f := range ev.Trial.After {
			after[f.Metric+"|"+f.Target] = f.Value
		}
		for _, f := range ev.Trial.Before {
			name := f.Metric
			if f.Target != "" {
				name += " of " + f.Target
			}
			if v, ok := after[f.Metric+"|"+f.Target]; ok {
				n.Figures = append(n.Figures, fmt.Sprintf("%s: %.3g → %.3g", name, f.Value, v))
			} else {
				n.Figures = append(n.Figures, fmt.Sprintf("%s: %.3g before", name, f.Value))
			}
		}
	}
	return api.Event{TimeNS: uint64(now.UnixNano()), Kind: ev.Kind, Tuning: n}
}
