package mcp

import (
	"context"
	"fmt"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/desktop/tools"
)

// Prompts give a model a plan: which tools to call, in which order, and
// what to be careful about. Each starts from the current status, so even a
// small model begins with facts.
func (b *Bridge) addPrompts() {
	b.srv.AddPrompt(mcp.NewPrompt("diagnose-slowness",
		mcp.WithPromptDescription("Find out why this machine feels slow.")),
		func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return b.plan(ctx, "Why does this machine feel slow?", `Steps:
1. Read the status above: high load, CPU usage, memory pressure or io pressure (PSI avg10 above ~10% means tasks are waiting).
2. Call list_processes with sort_by "cpu", then "memory", then "io"; look for one process far above the rest.
3. For a suspect, call process_details (pid) to see its baseline: is it beyond its own normal?
4. Call recent_events with kind "oom.kill,process.exit" to see crashes or kills in the last minutes.
5. Explain the cause in two or three sentences. Suggest an action (lower a priority with set_process_priority, or stop a process), but do not act without the user's go-ahead.`)
		})
	b.srv.AddPrompt(mcp.NewPrompt("investigate-process",
		mcp.WithPromptDescription("Look into one process: what it is, what it uses, whether that is normal for it."),
		mcp.WithArgument("pid", mcp.RequiredArgument(), mcp.ArgumentDescription("the process id"))),
		func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			pid, err := strconv.ParseUint(req.Params.Arguments["pid"], 10, 32)
			if err != nil || pid == 0 {
				return nil, fmt.Errorf("pid must be a process id, not %q", req.Params.Arguments["pid"])
			}
			return b.plan(ctx, fmt.Sprintf("Investigate process %d.", pid), fmt.Sprintf(`Steps:
1. Call process_details with pid %d: note its name, owner, state, CPU, memory, and its unit.
2. Compare with its baseline (if shown): peak memory p95, CPU time, how often it crashed.
3. Call recent_events with after_seq omitted and look for its pid: exec, exit, signals, OOM kills, TCP connections.
4. Say in plain words what it is doing and whether that is normal for it. If it misbehaves, propose one action with the exact pid and start_time, and wait for the user's go-ahead.`, pid))
		})
	b.srv.AddPrompt(mcp.NewPrompt("free-memory",
		mcp.WithPromptDescription("Find what is using memory and how to get some back safely.")),
		func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return b.plan(ctx, "Memory is short. What can be freed safely?", `Steps:
1. From the status above, note available memory, free swap and memory pressure.
2. Call list_processes with sort_by "memory" and limit 10.
3. For the largest ones, call process_details: prefer processes that are far above their own baseline, and never suggest ending system services (units under system.slice) or the desktop session itself.
4. Propose, largest first, which process to ask to quit (signal_process with TERM, not KILL), with pid and start_time, and how much memory it would free. Act only on the user's go-ahead.`)
		})
}

func (b *Bridge) plan(ctx context.Context, goal, steps string) (*mcp.GetPromptResult, error) {
	status := "(the status could not be read)"
	if st, err := b.tools.Status(ctx); err == nil {
		status = fmt.Sprintf("health %s; load %.2f %.2f %.2f; CPU %.0f%%; memory %s available of %s; swap %s free of %s",
			st.Health, st.Load[0], st.Load[1], st.Load[2], st.CPUUsage, api.HumanBytes(st.MemoryAvailableBytes), api.HumanBytes(st.MemoryTotalBytes),
			api.HumanBytes(st.SwapFreeBytes), api.HumanBytes(st.SwapTotalBytes))
		for _, k := range tools.SortedKeys(st.Pressure) {
			status += fmt.Sprintf("; %s pressure %.1f%%", k, st.Pressure[k].Avg10)
		}
		for _, a := range st.ActiveAlerts {
			status += fmt.Sprintf("; alert [%s] %s", a.Severity, a.Summary)
		}
	}
	text := fmt.Sprintf("%s\n\nCurrent status: %s.\n\n%s", goal, status, steps)
	return mcp.NewGetPromptResult(goal, []mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent(text))}), nil
}
