package tools

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Tuning trials for models: list_tunables (read-only), try_tuning,
// confirm_tuning and revert_tuning (destructive writes; sent "automated",
// so polkit's details say a model asked and npllmd checks agent-tune, which
// is never kept: each one is authorized afresh). Offered only when the
// client can tune (Def.Tuning).

const (
	maxTuningChanges = 16
	maxWatches       = 8
	maxTrialID       = 64
)

var defListTunables = &Def{
	Name:        "list_tunables",
	Description: "Kernel and systemd knobs npllm can try as trials (current value, allowed values, risk, why), and the trials now running.",
	Output:      TunableList{}, Hints: readHints, Tuning: true,
	run: func(ctx context.Context, s *Set, _ *Args) Result {
		list, err := s.tuner.GetTunables(ctx)
		if err != nil {
			return DaemonError("list tunables", err)
		}
		trials, err := s.tuner.GetTrials(ctx)
		if err != nil {
			return DaemonError("list trials", err)
		}
		out := TunableList{Tunables: []TunableRow{}, Unavailable: []string{}, Trials: []TrialSummary{}}
		for _, t := range list {
			knob := KnobName(t.Name, t.Target)
			if t.NeedsUnit {
				knob += "@UNIT"
			}
			if !t.Available {
				out.Unavailable = append(out.Unavailable, knob+": "+t.Reason)
				continue
			}
			out.Tunables = append(out.Tunables, TunableRow{Knob: knob, Current: t.Current, Values: tunableValues(t), Risk: t.Risk, Why: t.Why, Trial: t.Trial})
		}
		for _, t := range trials {
			out.Trials = append(out.Trials, trialSummary(t))
		}
		text := fmt.Sprintf("%d knobs can be tried here (%d unavailable); %d trials.", len(out.Tunables), len(out.Unavailable), len(out.Trials))
		return Result{Text: text, Structured: out}
	},
}

var defTryTuning = &Def{
	Name: "try_tuning",
	Description: "Start a tuning trial: the changes are applied, the watched metrics are compared during the canary, a regression reverts at once, " +
		"and the trial is reverted when its lease ends unless confirm_tuning is called. An administrator must authorize it.",
	Params: []Param{
		{Name: "changes", Kind: Map, Required: true, MaxItems: maxTuningChanges, MaxLen: 128,
			Description: `knob → value, e.g. {"vm.swappiness": "10"}; unit knobs as "unit.CPUWeight@build.service"`},
		{Name: "watch", Kind: List, MaxItems: maxWatches, MaxLen: 128,
			Description: "metrics that must not get worse: psi.cpu.some, psi.memory.some, psi.memory.full, psi.io.some, psi.io.full, runq.p99, blockio.p99, unit.cpu:UNIT, unit.memory:UNIT, program.cpu:COMM, program.memory:COMM"},
		{Name: "canary_seconds", Kind: Integer, Min: 1, Max: 3600, Default: 60},
		{Name: "lease_minutes", Kind: Integer, Min: 1, Max: 1440, Default: 10},
		{Name: "workload", Kind: String, Description: "the program or unit this is for; its history is kept under this name"},
	},
	Output: TrialResult{}, Write: true, Tuning: true, Hints: Hints{Destructive: true},
	run: func(ctx context.Context, s *Set, a *Args) Result {
		r := client.TrialRequest{Changes: a.Map("changes"), Watch: a.List("watch"), Workload: a.Str("workload", ""),
			Canary: time.Duration(a.Int("canary_seconds", 60)) * time.Second, Lease: time.Duration(a.Int("lease_minutes", 10)) * time.Minute}
		pairs := make([]string, 0, len(r.Changes))
		for k, v := range r.Changes {
			pairs = append(pairs, k+"="+v)
		}
		slices.Sort(pairs)
		changes := strings.Join(pairs, ", ")
		id, err := s.tuner.StartTrial(ctx, r, s.tuneCall())
		if err != nil {
			return Refused("try "+changes, err)
		}
		res := TrialResult{Done: true, Trial: s.trial(ctx, id, api.TrialCanary)}
		res.Message = fmt.Sprintf("Trial %s started (%s). It is reverted at %s unless confirmed after the canary ends at %s; a regression reverts it at once.",
			id, changes, res.Trial.ConfirmUntil, res.Trial.CanaryEnds)
		return Result{Text: res.Message, Structured: res}
	},
}

var trialIDParam = Param{Name: "trial_id", Kind: String, Required: true, MaxLen: maxTrialID, Description: "from try_tuning or list_tunables"}

var defConfirmTuning = &Def{
	Name:        "confirm_tuning",
	Description: "Keep a trial's changes, after its canary passed (state awaiting-confirmation). Ask the user first.",
	Params:      []Param{trialIDParam},
	Output:      TrialResult{}, Write: true, Tuning: true, Hints: Hints{Destructive: true, Idempotent: true},
	run: func(ctx context.Context, s *Set, a *Args) Result {
		return s.onTrial(ctx, a, "confirm", s.tuner.ConfirmTrial)
	},
}

var defRevertTuning = &Def{
	Name:        "revert_tuning",
	Description: "Undo a trial now (knobs someone else changed since are left alone).",
	Params:      []Param{trialIDParam},
	Output:      TrialResult{}, Write: true, Tuning: true, Hints: Hints{Destructive: true, Idempotent: true},
	run: func(ctx context.Context, s *Set, a *Args) Result {
		return s.onTrial(ctx, a, "revert", s.tuner.RevertTrial)
	},
}

func (s *Set) onTrial(ctx context.Context, a *Args, verb string, act func(context.Context, string, client.TuneCall) error) Result {
	id := a.Str("trial_id", "")
	if id == "" {
		return Errorf("trial_id is required: %s", trialIDParam.Description)
	}
	if strings.ContainsFunc(id, unicode.IsControl) { // it is echoed in texts
		return Errorf("trial_id contains a control character: %q", id)
	}
	if err := act(ctx, id, s.tuneCall()); err != nil {
		switch api.ErrorName(err) {
		case api.ErrConflict:
			return Errorf("Could not %s trial %s: %s. Nothing was changed.", verb, id, api.ErrorMessage(err))
		case api.ErrNotFound:
			return Errorf("No trial %s (it may be over already; list_tunables shows the trials). Nothing was changed.", id)
		}
		return Refused(verb+" trial "+id, err)
	}
	res := TrialResult{Done: true, Trial: s.trial(ctx, id, "")}
	res.Message = fmt.Sprintf("Trial %s: %s.", id, cmp.Or(res.Trial.State, verb+" sent"))
	return Result{Text: res.Message, Structured: res}
}

// trial is a trial as GetTrials shows it now; if it cannot be read, only
// its id and the state it should be in.
func (s *Set) trial(ctx context.Context, id, state string) TrialSummary {
	if trials, err := s.tuner.GetTrials(ctx); err == nil {
		for _, t := range trials {
			if t.ID == id {
				return trialSummary(t)
			}
		}
	}
	return TrialSummary{ID: id, State: state}
}

func tunableValues(t api.Tunable) string {
	switch {
	case len(t.Allowed) > 0:
		return strings.Join(t.Allowed, ", ")
	case t.Type == "bytes":
		return fmt.Sprintf("bytes (K/M/G/T suffix) from %s, or infinity", api.HumanBytes(uint64(t.Min)))
	}
	return fmt.Sprintf("%d to %d", t.Min, t.Max)
}

func trialSummary(t api.Trial) TrialSummary {
	s := TrialSummary{ID: t.ID, State: t.State, Reason: t.Reason}
	for _, c := range t.Changes {
		s.Changes = append(s.Changes, ChangeText(c))
	}
	if t.State == api.TrialCanary || t.State == api.TrialAwaiting {
		s.CanaryEnds = time.Unix(0, int64(t.CanaryEndsNS)).Format(time.TimeOnly)
		s.ConfirmUntil = time.Unix(0, int64(t.LeaseEndsNS)).Format(time.TimeOnly)
	}
	return s
}

// KnobName is a knob as try_tuning takes it: KNOB or KNOB@TARGET.
func KnobName(knob, target string) string {
	if target == "" {
		return knob
	}
	return knob + "@" + target
}

// ChangeText is one change of a trial: "KNOB@TARGET: OLD → NEW".
func ChangeText(c api.TrialChange) string {
	return fmt.Sprintf("%s: %s → %s", KnobName(c.Knob, c.Target), c.Old, c.New)
}
