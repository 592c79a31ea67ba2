package mcp

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/tools"
)

// Tuning trials for models: list_tunables (read-only), try_tuning,
// confirm_tuning and revert_tuning (annotated destructive; every call is
// sent with the "automated" option, so polkit's details say a model asked,
// and org.npllm.Assistant.tune is never kept: each one is authorized
// afresh), and the prompt tune-for-workload. Offered only when the client
// can tune (client.Tuner).

const (
	maxTuningChanges = 16
	maxWatches       = 8
)

type TunableRow struct {
	Knob    string `json:"knob" jsonschema:"pass it as a key of try_tuning's changes; @TARGET names the device or unit"`
	Current string `json:"current,omitempty"`
	Values  string `json:"values" jsonschema:"what try_tuning accepts"`
	Risk    string `json:"risk"`
	Why     string `json:"why"`
	Trial   string `json:"trial,omitempty" jsonschema:"the trial holding it"`
}

type TrialSummary struct {
	ID           string   `json:"id"`
	State        string   `json:"state" jsonschema:"canary, awaiting-confirmation, confirmed, reverted or ended"`
	Changes      []string `json:"changes"`
	CanaryEnds   string   `json:"canary_ends,omitempty"`
	ConfirmUntil string   `json:"confirm_until,omitempty" jsonschema:"reverted at this time unless confirmed"`
	Reason       string   `json:"reason,omitempty"`
}

type TunableList struct {
	Tunables    []TunableRow   `json:"tunables"`
	Unavailable []string       `json:"unavailable" jsonschema:"knobs this machine cannot change, with the reason"`
	Trials      []TrialSummary `json:"trials"`
}

type TrialResult struct {
	Done    bool         `json:"done"`
	Message string       `json:"message"`
	Trial   TrialSummary `json:"trial"`
}

func (b *Bridge) tuner() (client.Tuner, bool) {
	t, ok := b.client.(client.Tuner)
	return t, ok
}

func (b *Bridge) addTuning() {
	if _, ok := b.tuner(); !ok {
		return
	}
	b.srv.AddTool(mcp.NewTool("list_tunables",
		mcp.WithDescription("Kernel and systemd knobs npllm can try as trials (current value, allowed values, risk, why), and the trials now running."),
		mcp.WithOutputSchema[TunableList](),
		mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false)), b.listTunables)
	b.srv.AddPrompt(mcp.NewPrompt("tune-for-workload",
		mcp.WithPromptDescription("Propose one tuning trial for a program or unit, starting from what worked here before."),
		mcp.WithArgument("workload", mcp.RequiredArgument(), mcp.ArgumentDescription("a program name (comm) or a unit (build.service)"))),
		b.tuneForWorkload)
	if b.opts.ReadOnly {
		return
	}
	write := func(idempotent bool) []mcp.ToolOption {
		return []mcp.ToolOption{mcp.WithOutputSchema[TrialResult](), mcp.WithReadOnlyHintAnnotation(false),
			mcp.WithDestructiveHintAnnotation(true), mcp.WithIdempotentHintAnnotation(idempotent), mcp.WithOpenWorldHintAnnotation(false)}
	}
	b.srv.AddTool(mcp.NewTool("try_tuning", append([]mcp.ToolOption{
		mcp.WithDescription("Start a tuning trial: the changes are applied, the watched metrics are compared during the canary, a regression reverts at once, and the trial is reverted when its lease ends unless confirm_tuning is called. An administrator must authorize it."),
		mcp.WithObject("changes", mcp.Required(), mcp.Description(`knob → value, e.g. {"vm.swappiness": "10"}; unit knobs as "unit.CPUWeight@build.service"`)),
		mcp.WithArray("watch", mcp.WithStringItems(), mcp.MaxItems(maxWatches), mcp.Description("metrics that must not get worse: psi.cpu.some, psi.memory.some, psi.memory.full, psi.io.some, psi.io.full, runq.p99, blockio.p99, unit.cpu:UNIT, unit.memory:UNIT, program.cpu:COMM, program.memory:COMM")),
		mcp.WithInteger("canary_seconds", mcp.Min(1), mcp.Max(3600), mcp.DefaultNumber(60)),
		mcp.WithInteger("lease_minutes", mcp.Min(1), mcp.Max(1440), mcp.DefaultNumber(10)),
		mcp.WithString("workload", mcp.Description("the program or unit this is for; its history is kept under this name")),
	}, write(false)...)...), b.tryTuning)
	b.srv.AddTool(mcp.NewTool("confirm_tuning", append([]mcp.ToolOption{
		mcp.WithDescription("Keep a trial's changes, after its canary passed (state awaiting-confirmation). Ask the user first."),
		mcp.WithString("trial_id", mcp.Required()),
	}, write(true)...)...), b.confirmTuning)
	b.srv.AddTool(mcp.NewTool("revert_tuning", append([]mcp.ToolOption{
		mcp.WithDescription("Undo a trial now (knobs someone else changed since are left alone)."),
		mcp.WithString("trial_id", mcp.Required()),
	}, write(true)...)...), b.revertTuning)
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
		s.Changes = append(s.Changes, fmt.Sprintf("%s%s: %s → %s", c.Knob, targetSuffix(c.Target), c.Old, c.New))
	}
	if t.State == api.TrialCanary || t.State == api.TrialAwaiting {
		s.CanaryEnds = time.Unix(0, int64(t.CanaryEndsNS)).Format(time.TimeOnly)
		s.ConfirmUntil = time.Unix(0, int64(t.LeaseEndsNS)).Format(time.TimeOnly)
	}
	return s
}

func targetSuffix(target string) string {
	if target == "" {
		return ""
	}
	return "@" + target
}

func (b *Bridge) listTunables(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	tu, _ := b.tuner()
	list, err := tu.GetTunables(ctx)
	if err != nil {
		return daemonError("list tunables", err), nil
	}
	trials, err := tu.GetTrials(ctx)
	if err != nil {
		return daemonError("list trials", err), nil
	}
	out := TunableList{Tunables: []TunableRow{}, Unavailable: []string{}, Trials: []TrialSummary{}}
	for _, t := range list {
		knob := t.Name + targetSuffix(t.Target)
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
	return mcp.NewToolResultStructured(out, text), nil
}

func (b *Bridge) tuneCall() client.TuneCall {
	return client.TuneCall{Interactive: b.opts.Interactive, Automated: true}
}

func (b *Bridge) tryTuning(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	tu, _ := b.tuner()
	args := req.GetArguments()
	raw, ok := args["changes"].(map[string]any)
	if !ok || len(raw) == 0 || len(raw) > maxTuningChanges {
		return mcp.NewToolResultErrorf("changes must be an object of 1 to %d knob → value pairs, e.g. {\"vm.swappiness\": \"10\"}", maxTuningChanges), nil
	}
	r := client.TrialRequest{Changes: map[string]string{}, Workload: req.GetString("workload", "")}
	for k, v := range raw {
		switch x := v.(type) {
		case string:
			r.Changes[k] = x
		case float64:
			if x != float64(int64(x)) {
				return mcp.NewToolResultErrorf("the value of %s must be a string or an integer, not %v", k, x), nil
			}
			r.Changes[k] = fmt.Sprint(int64(x))
		default:
			return mcp.NewToolResultErrorf("the value of %s must be a string or an integer, not %v", k, v), nil
		}
	}
	if w, ok := args["watch"]; ok && w != nil {
		list, ok := w.([]any)
		if !ok || len(list) > maxWatches {
			return mcp.NewToolResultErrorf("watch must be a list of at most %d metric names", maxWatches), nil
		}
		for _, m := range list {
			s, ok := m.(string)
			if !ok {
				return mcp.NewToolResultErrorf("watch must be a list of metric names, not %v", m), nil
			}
			r.Watch = append(r.Watch, s)
		}
	}
	canary, errRes := intArg(req, "canary_seconds", 60, 1, 3600)
	if errRes != nil {
		return errRes, nil
	}
	lease, errRes := intArg(req, "lease_minutes", 10, 1, 1440)
	if errRes != nil {
		return errRes, nil
	}
	r.Canary, r.Lease = time.Duration(canary)*time.Second, time.Duration(lease)*time.Minute
	keys := make([]string, 0, len(r.Changes))
	for k, v := range r.Changes {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	what := "try " + strings.Join(keys, ", ")
	id, err := tu.StartTrial(ctx, r, b.tuneCall())
	if err != nil {
		return refused(what, err), nil
	}
	res := TrialResult{Done: true, Trial: TrialSummary{ID: id, State: api.TrialCanary}}
	if trials, err := tu.GetTrials(ctx); err == nil {
		for _, t := range trials {
			if t.ID == id {
				res.Trial = trialSummary(t)
			}
		}
	}
	res.Message = fmt.Sprintf("Trial %s started (%s). It is reverted at %s unless confirmed after the canary ends at %s; a regression reverts it at once.",
		id, strings.Join(keys, ", "), res.Trial.ConfirmUntil, res.Trial.CanaryEnds)
	return mcp.NewToolResultStructured(res, res.Message), nil
}

func (b *Bridge) confirmTuning(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return b.onTrial(ctx, req, "confirm", func(tu client.Tuner, id string) error { return tu.ConfirmTrial(ctx, id, b.tuneCall()) })
}

func (b *Bridge) revertTuning(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return b.onTrial(ctx, req, "revert", func(tu client.Tuner, id string) error { return tu.RevertTrial(ctx, id, b.tuneCall()) })
}

func (b *Bridge) onTrial(ctx context.Context, req mcp.CallToolRequest, verb string, act func(client.Tuner, string) error) (*mcp.CallToolResult, error) {
	tu, _ := b.tuner()
	id, err := req.RequireString("trial_id")
	if err != nil || id == "" || len(id) > 64 {
		return mcp.NewToolResultError("trial_id is required (from try_tuning or list_tunables)"), nil
	}
	if err := act(tu, id); err != nil {
		switch api.ErrorName(err) {
		case api.ErrConflict:
			return mcp.NewToolResultErrorf("Could not %s trial %s: %s. Nothing was changed.", verb, id, api.ErrorMessage(err)), nil
		case api.ErrNotFound:
			return mcp.NewToolResultErrorf("No trial %s (it may be over already; list_tunables shows the trials).", id), nil
		}
		return refused(verb+" trial "+id, err), nil
	}
	res := TrialResult{Done: true, Trial: TrialSummary{ID: id}}
	if trials, err := tu.GetTrials(ctx); err == nil {
		for _, t := range trials {
			if t.ID == id {
				res.Trial = trialSummary(t)
			}
		}
	}
	res.Message = fmt.Sprintf("Trial %s: %s.", id, res.Trial.State)
	return mcp.NewToolResultStructured(res, res.Message), nil
}

func (b *Bridge) tuneForWorkload(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	workload := req.Params.Arguments["workload"]
	if workload == "" || len(workload) > 256 || strings.ContainsFunc(workload, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("workload must be a program or unit name of 1 to 256 printable bytes")
	}
	past := "none"
	if tu, ok := b.tuner(); ok {
		if hist, err := tu.GetTrialHistory(ctx, workload); err == nil && len(hist) > 0 {
			var lines []string
			for _, h := range hist[max(0, len(hist)-5):] {
				var ch []string
				for _, c := range h.Changes {
					ch = append(ch, fmt.Sprintf("%s%s %s → %s", c.Knob, targetSuffix(c.Target), c.Old, c.New))
				}
				line := fmt.Sprintf("- %s: %s", h.Outcome, strings.Join(ch, ", "))
				if h.Reason != "" {
					line += " (" + h.Reason + ")"
				}
				lines = append(lines, line)
			}
			past = "\n" + strings.Join(lines, "\n")
		}
	}
	return b.plan(ctx, fmt.Sprintf("Tune this machine for %s.", workload), fmt.Sprintf(`Earlier trials for %s here: %s

Steps:
1. Call list_tunables: note the knobs with low risk and what they are now. Do not retry a change that was reverted for a regression above.
2. From the status above, name the bottleneck (memory pressure, io pressure, CPU contention) and pick ONE knob that addresses it.
3. Tell the user what you propose and why, which metric will be watched, and that it is reverted automatically unless confirmed. Wait for their go-ahead.
4. Call try_tuning with that change, workload %q and watch set to the metric that shows the bottleneck (for a unit also unit.cpu:UNIT or unit.memory:UNIT).
5. After the canary (canary_ends), call list_tunables: if the trial is awaiting-confirmation, report the result and ask the user whether to keep it (confirm_tuning) or not (revert_tuning).`, workload, past, workload))
}

// Until the tuning tools join desktop/tools' table, they convert its
// refusal texts here.
func daemonError(what string, err error) *mcp.CallToolResult {
	return toMCP(tools.DaemonError(what, err))
}
func refused(what string, err error) *mcp.CallToolResult { return toMCP(tools.Refused(what, err)) }

func intArg(req mcp.CallToolRequest, key string, def, lo, hi int) (int, *mcp.CallToolResult) {
	v, ok := req.GetArguments()[key]
	if !ok || v == nil {
		return def, nil
	}
	f, isNum := v.(float64)
	if !isNum || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, mcp.NewToolResultErrorf("%s must be an integer from %d to %d, not %v", key, lo, hi, v)
	}
	return int(f), nil
}
