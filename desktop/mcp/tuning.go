package mcp

import (
	"context"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/tools"
)

// The tuning tools are desktop/tools' (list_tunables, try_tuning,
// confirm_tuning, revert_tuning); the prompt tune-for-workload is here, and
// like the tools it is offered only when the client can tune.

func (b *Bridge) addTuningPrompt() {
	if _, ok := b.client.(client.Tuner); !ok {
		return
	}
	b.srv.AddPrompt(mcp.NewPrompt("tune-for-workload",
		mcp.WithPromptDescription("Propose one tuning trial for a program or unit, starting from what worked here before."),
		mcp.WithArgument("workload", mcp.RequiredArgument(), mcp.ArgumentDescription("a program name (comm) or a unit (build.service)"))),
		b.tuneForWorkload)
}

func (b *Bridge) tuneForWorkload(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	workload := req.Params.Arguments["workload"]
	if workload == "" || len(workload) > 256 || strings.ContainsFunc(workload, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("workload must be a program or unit name of 1 to 256 printable bytes")
	}
	past := "none"
	if tu, ok := b.client.(client.Tuner); ok {
		if hist, err := tu.GetTrialHistory(ctx, workload); err == nil && len(hist) > 0 {
			var lines []string
			for _, h := range hist[max(0, len(hist)-5):] {
				var ch []string
				for _, c := range h.Changes {
					ch = append(ch, tools.ChangeText(c))
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
