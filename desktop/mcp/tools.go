package mcp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Output caps keep answers small enough for small local models.
const (
	defaultProcesses = 10
	maxProcesses     = 50
	defaultEvents    = 20
	maxEvents        = 100
	topProcesses     = 5
	topProcessesTTL  = time.Second
	// recent_events without after_seq looks back at most this many
	// journal entries for matches (page further with after_seq).
	eventLookback = 20000
)

// Structured outputs; their JSON schemas are declared with the tools.

type PSI struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
}

type AlertSummary struct {
	ID       string `json:"id"`
	Severity string `json:"severity" jsonschema:"info, warning or critical"`
	Kind     string `json:"kind"`
	Summary  string `json:"summary"`
}

type ProcessSummary struct {
	PID        uint32  `json:"pid"`
	StartTime  uint64  `json:"start_time" jsonschema:"pass it back with the pid to any write tool"`
	Comm       string  `json:"comm"`
	User       string  `json:"user"`
	UID        uint32  `json:"uid"`
	State      string  `json:"state"`
	CPUPercent float64 `json:"cpu_percent" jsonschema:"percent of one CPU"`
	RSSBytes   uint64  `json:"rss_bytes"`
	Cmdline    string  `json:"cmdline,omitempty" jsonschema:"only for your own processes"`
}

type SystemStatus struct {
	Health               string           `json:"health" jsonschema:"ok, warning or critical"`
	Load                 []float64        `json:"load" jsonschema:"1, 5 and 15 minute load averages"`
	CPUUsage             float64          `json:"cpu_usage" jsonschema:"percent of all CPUs"`
	MemoryTotalBytes     uint64           `json:"memory_total_bytes"`
	MemoryAvailableBytes uint64           `json:"memory_available_bytes"`
	SwapTotalBytes       uint64           `json:"swap_total_bytes"`
	SwapFreeBytes        uint64           `json:"swap_free_bytes"`
	Pressure             map[string]PSI   `json:"pressure" jsonschema:"PSI: percent of time tasks stalled on cpu, memory, io"`
	ActiveAlerts         []AlertSummary   `json:"active_alerts"`
	TopProcesses         []ProcessSummary `json:"top_processes" jsonschema:"busiest processes by CPU"`
}

type ProcessList struct {
	Processes []ProcessSummary `json:"processes"`
}

type ProcessDetails struct {
	Process      map[string]any   `json:"process"`
	Baseline     map[string]any   `json:"baseline,omitempty" jsonschema:"what is normal for this program, once learned"`
	RecentEvents []map[string]any `json:"recent_events"`
}

type EventPage struct {
	Events  []map[string]any `json:"events"`
	LastSeq uint64           `json:"last_seq" jsonschema:"pass as after_seq to read on"`
}

type UnitReport struct {
	Unit           map[string]any   `json:"unit"`
	RecentFailures []map[string]any `json:"recent_failures"`
}

type ActionResult struct {
	Done    bool   `json:"done"`
	Message string `json:"message"`
	Job     string `json:"job,omitempty"`
}

func (b *Bridge) addTools() {
	// Every annotation is set explicitly: mcp-go's defaults claim tools are
	// destructive and open-world.
	ro := []mcp.ToolOption{mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false)}
	with := func(opts ...mcp.ToolOption) []mcp.ToolOption { return append(opts, ro...) }

	b.srv.AddTool(mcp.NewTool("system_status", with(
		mcp.WithDescription("Health, load, CPU, memory, swap, pressure, active alerts and the busiest processes of this machine."),
		mcp.WithOutputSchema[SystemStatus]())...), b.systemStatus)

	b.srv.AddTool(mcp.NewTool("list_processes", with(
		mcp.WithDescription("Processes, biggest first."),
		mcp.WithString("sort_by", mcp.Enum("cpu", "memory", "io"), mcp.DefaultString("cpu"), mcp.Description("what to sort by")),
		mcp.WithInteger("limit", mcp.Min(1), mcp.Max(maxProcesses), mcp.DefaultNumber(defaultProcesses), mcp.Description("how many")),
		mcp.WithString("user", mcp.Description("only this user's processes (name or uid)")),
		mcp.WithOutputSchema[ProcessList]())...), b.listProcesses)

	b.srv.AddTool(mcp.NewTool("process_details", with(
		mcp.WithDescription("Everything known about one process: state, memory, CPU, unit, its learned baseline, and its recent events."),
		mcp.WithInteger("pid", mcp.Required(), mcp.Min(1), mcp.Description("process id")),
		mcp.WithOutputSchema[ProcessDetails]())...), b.processDetails)

	b.srv.AddTool(mcp.NewTool("recent_events", with(
		mcp.WithDescription("Events from the journal, oldest first, each with its seq: process.exec, process.exit, oom.kill, tcp.connect, tcp.accept, tcp.close, signal.sent, unit.failed. Without after_seq: the most recent ones."),
		mcp.WithString("kind", mcp.Description("only this kind, or several separated by commas")),
		mcp.WithInteger("limit", mcp.Min(1), mcp.Max(maxEvents), mcp.DefaultNumber(defaultEvents)),
		mcp.WithInteger("after_seq", mcp.Min(0), mcp.Description("return events after this seq (from last_seq of a previous call)")),
		mcp.WithOutputSchema[EventPage]())...), b.recentEvents)

	b.srv.AddTool(mcp.NewTool("unit_status", with(
		mcp.WithDescription("A systemd unit's state and its recent failures."),
		mcp.WithString("unit", mcp.Required(), mcp.Description(`full unit name, e.g. "cups.service"`)),
		mcp.WithOutputSchema[UnitReport]())...), b.unitStatus)

	if b.opts.ReadOnly {
		return
	}
	b.srv.AddTool(mcp.NewTool("signal_process",
		mcp.WithDescription("Send a signal to a process, as the user running this bridge; polkit decides and may ask the user. TERM asks it to quit; KILL ends it at once."),
		mcp.WithInteger("pid", mcp.Required(), mcp.Min(1)),
		mcp.WithInteger("start_time", mcp.Required(), mcp.Min(0), mcp.Description("from list_processes or process_details: proves it is still the same process")),
		mcp.WithString("signal", mcp.Required(), mcp.Enum("TERM", "KILL", "INT", "HUP", "STOP", "CONT")),
		mcp.WithOutputSchema[ActionResult](),
		mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
		mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(false)), b.signalProcess)

	b.srv.AddTool(mcp.NewTool("set_process_priority",
		mcp.WithDescription("Set a process's nice value (all its threads): 19 is the lowest priority, 0 normal; below 0 needs an administrator."),
		mcp.WithInteger("pid", mcp.Required(), mcp.Min(1)),
		mcp.WithInteger("start_time", mcp.Required(), mcp.Min(0)),
		mcp.WithInteger("nice", mcp.Required(), mcp.Min(-20), mcp.Max(19)),
		mcp.WithOutputSchema[ActionResult](),
		mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(false)), b.setPriority)

	b.srv.AddTool(mcp.NewTool("manage_unit",
		mcp.WithDescription("Start, stop, restart or reload a systemd unit; polkit decides (usually an administrator's password)."),
		mcp.WithString("unit", mcp.Required()),
		mcp.WithString("verb", mcp.Required(), mcp.Enum("start", "stop", "restart", "reload")),
		mcp.WithOutputSchema[ActionResult](),
		mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
		mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(false)), b.manageUnit)
}

// status reads the daemon's properties into the system_status shape.
func (b *Bridge) status(ctx context.Context) (SystemStatus, error) {
	st, err := b.client.Status(ctx)
	if err != nil {
		return SystemStatus{}, err
	}
	out := SystemStatus{
		Health: st.Health, Load: []float64{st.Load[0], st.Load[1], st.Load[2]}, CPUUsage: round2(st.CPUUsage),
		MemoryTotalBytes: st.MemoryTotal, MemoryAvailableBytes: st.MemoryAvailable,
		SwapTotalBytes: st.SwapTotal, SwapFreeBytes: st.SwapFree,
		Pressure: map[string]PSI{}, ActiveAlerts: []AlertSummary{}, TopProcesses: []ProcessSummary{},
	}
	for k, v := range st.Pressure {
		out.Pressure[k] = PSI{v[0], v[1], v[2]}
	}
	for _, a := range st.ActiveAlerts {
		out.ActiveAlerts = append(out.ActiveAlerts, AlertSummary{ID: a.ID, Severity: a.Severity, Kind: a.Kind, Summary: a.Summary})
	}
	top, err := b.topProcesses(ctx)
	if err != nil {
		return SystemStatus{}, err
	}
	out.TopProcesses = top
	return out, nil
}

// topProcesses are read at most once per topProcessesTTL: the daemon's own
// figures refresh once a second, and listing processes reads /proc (a few
// ms), which a model polling system_status should not pay each time.
func (b *Bridge) topProcesses(ctx context.Context) ([]ProcessSummary, error) {
	b.mu.Lock()
	if time.Since(b.topAt) < topProcessesTTL {
		top := b.top
		b.mu.Unlock()
		return top, nil
	}
	b.mu.Unlock()
	procs, err := b.client.ListProcesses(ctx, client.ProcessQuery{SortBy: "cpu", Limit: topProcesses})
	if err != nil {
		return nil, err
	}
	top := []ProcessSummary{}
	for _, p := range procs {
		top = append(top, processSummary(p))
	}
	b.mu.Lock()
	b.top, b.topAt = top, time.Now()
	b.mu.Unlock()
	return top, nil
}

func (b *Bridge) systemStatus(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	st, err := b.status(ctx)
	if err != nil {
		return daemonError("read the system status", err), nil
	}
	text := fmt.Sprintf("Health %s. Load %.2f %.2f %.2f, CPU %.0f%%. Memory: %s available of %s. Swap: %s free of %s.",
		st.Health, st.Load[0], st.Load[1], st.Load[2], st.CPUUsage, api.HumanBytes(st.MemoryAvailableBytes), api.HumanBytes(st.MemoryTotalBytes),
		api.HumanBytes(st.SwapFreeBytes), api.HumanBytes(st.SwapTotalBytes))
	if m, ok := st.Pressure["memory"]; ok && m.Avg10 > 0 {
		text += fmt.Sprintf(" Memory pressure %.1f%%.", m.Avg10)
	}
	if len(st.ActiveAlerts) == 0 {
		text += " No active alerts."
	}
	for _, a := range st.ActiveAlerts {
		text += fmt.Sprintf(" Alert [%s] %s.", a.Severity, a.Summary)
	}
	if len(st.TopProcesses) > 0 {
		p := st.TopProcesses[0]
		text += fmt.Sprintf(" Busiest: %s (pid %d, %.0f%% CPU).", p.Comm, p.PID, p.CPUPercent)
	}
	return mcp.NewToolResultStructured(st, text), nil
}

func (b *Bridge) listProcesses(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	sortBy := req.GetString("sort_by", "cpu")
	if sortBy != "cpu" && sortBy != "memory" && sortBy != "io" {
		return mcp.NewToolResultErrorf("sort_by must be cpu, memory or io, not %q", sortBy), nil
	}
	limit, errRes := intArg(req, "limit", defaultProcesses, 1, maxProcesses)
	if errRes != nil {
		return errRes, nil
	}
	q := client.ProcessQuery{SortBy: sortBy, Limit: uint32(limit)}
	if u := req.GetString("user", ""); u != "" {
		uid, err := lookupUID(u)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		q.UID = &uid
	}
	procs, err := b.client.ListProcesses(ctx, q)
	if err != nil {
		return daemonError("list processes", err), nil
	}
	out := ProcessList{Processes: []ProcessSummary{}}
	var lines []string
	for _, p := range procs {
		s := processSummary(p)
		out.Processes = append(out.Processes, s)
		lines = append(lines, fmt.Sprintf("%d %s (%s) cpu %.0f%% rss %s", s.PID, s.Comm, s.User, s.CPUPercent, api.HumanBytes(s.RSSBytes)))
	}
	return mcp.NewToolResultStructured(out, strings.Join(lines, "\n")), nil
}

func (b *Bridge) processDetails(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	pid, errRes := requiredUint(req, "pid", 1, math.MaxInt32)
	if errRes != nil {
		return errRes, nil
	}
	info, err := b.client.GetProcess(ctx, uint32(pid))
	if err != nil {
		return daemonError(fmt.Sprintf("read process %d", pid), err), nil
	}
	out := ProcessDetails{Process: plainMap(info.Encode()), RecentEvents: []map[string]any{}}
	if bl, ok := out.Process["baseline"].(map[string]any); ok {
		out.Baseline = bl
		delete(out.Process, "baseline")
	}
	p32 := uint32(pid)
	evs, _, err := b.lastEvents(ctx, client.EventFilter{PID: &p32}, 10)
	if err == nil {
		out.RecentEvents = evs
	}
	text := fmt.Sprintf("pid %d %s (%s), state %s, cpu %.0f%%, rss %s, start_time %d", pid, info.Comm, info.User,
		info.State, info.CPUPercent, api.HumanBytes(info.RSSBytes), info.StartTime)
	return mcp.NewToolResultStructured(out, text), nil
}

func (b *Bridge) recentEvents(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	limit, errRes := intArg(req, "limit", defaultEvents, 1, maxEvents)
	if errRes != nil {
		return errRes, nil
	}
	var filter client.EventFilter
	if k := req.GetString("kind", ""); k != "" {
		var kinds []string
		for _, s := range strings.Split(k, ",") {
			if s = strings.TrimSpace(s); s != "" {
				kinds = append(kinds, s)
			}
		}
		filter.Kinds = kinds
	}
	var page EventPage
	if _, has := req.GetArguments()["after_seq"]; has {
		after, errRes := requiredUint(req, "after_seq", 0, math.MaxInt64)
		if errRes != nil {
			return errRes, nil
		}
		last, evs, err := b.client.GetEvents(ctx, uint64(after), uint32(limit), filter)
		if err != nil {
			return daemonError("read events", err), nil
		}
		page = EventPage{Events: eventMaps(evs), LastSeq: last}
	} else {
		evs, last, err := b.lastEvents(ctx, filter, limit)
		if err != nil {
			return daemonError("read events", err), nil
		}
		page = EventPage{Events: evs, LastSeq: last}
	}
	var lines []string
	for _, ev := range page.Events {
		lines = append(lines, fmt.Sprintf("#%v %v pid %v %v", ev["seq"], ev["kind"], ev["pid"], ev["comm"]))
	}
	if len(lines) == 0 {
		lines = append(lines, "no events")
	}
	return mcp.NewToolResultStructured(page, strings.Join(lines, "\n")), nil
}

// lastEvents returns the newest n events matching filter, oldest first,
// and the journal's newest seq.
func (b *Bridge) lastEvents(ctx context.Context, filter client.EventFilter, n int) ([]map[string]any, uint64, error) {
	newest, err := b.client.NewestSeq(ctx)
	if err != nil {
		return nil, 0, err
	}
	var found []map[string]any
	for window := uint64(n); ; window *= 4 {
		start := uint64(0)
		if newest > window {
			start = newest - window
		}
		found = found[:0]
		for seq := start; seq < newest; {
			last, evs, err := b.client.GetEvents(ctx, seq, 1000, filter)
			if err != nil {
				return nil, 0, err
			}
			found = append(found, eventMaps(evs)...)
			if len(evs) == 0 || last <= seq {
				break
			}
			seq = last
		}
		if len(found) >= n || start == 0 || window >= eventLookback {
			break
		}
	}
	if len(found) > n {
		found = found[len(found)-n:]
	}
	if found == nil {
		found = []map[string]any{}
	}
	return found, newest, nil
}

func (b *Bridge) unitStatus(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	unit, err := req.RequireString("unit")
	if err != nil || unit == "" {
		return mcp.NewToolResultError(`unit is required: a full unit name such as "cups.service"`), nil
	}
	st, err := b.client.GetUnit(ctx, unit)
	if err != nil {
		return daemonError("read unit "+unit, err), nil
	}
	out := UnitReport{Unit: plainMap(st.Encode()), RecentFailures: []map[string]any{}}
	if evs, _, err := b.lastEvents(ctx, client.EventFilter{Kinds: []string{api.KindUnitFailed}}, maxEvents); err == nil {
		for _, ev := range evs {
			if ev["unit"] == unit {
				out.RecentFailures = append(out.RecentFailures, ev)
			}
		}
	}
	text := fmt.Sprintf("%s: %s (%s), %d recent failures", unit, st.ActiveState, st.SubState, len(out.RecentFailures))
	return mcp.NewToolResultStructured(out, text), nil
}

func (b *Bridge) signalProcess(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	pid, errRes := requiredUint(req, "pid", 1, math.MaxInt32)
	if errRes != nil {
		return errRes, nil
	}
	start, errRes := requiredUint(req, "start_time", 0, math.MaxInt64)
	if errRes != nil {
		return errRes, nil
	}
	sig, err := req.RequireString("signal")
	if err != nil {
		return mcp.NewToolResultError("signal is required: TERM, KILL, INT, HUP, STOP or CONT"), nil
	}
	if err := b.client.SignalProcess(ctx, uint32(pid), uint64(start), sig, b.callOptions()); err != nil {
		return refused(fmt.Sprintf("send %s to pid %d", sig, pid), err), nil
	}
	return mcp.NewToolResultStructured(ActionResult{Done: true, Message: fmt.Sprintf("sent %s to pid %d", sig, pid)}, fmt.Sprintf("Sent %s to pid %d.", sig, pid)), nil
}

func (b *Bridge) setPriority(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	pid, errRes := requiredUint(req, "pid", 1, math.MaxInt32)
	if errRes != nil {
		return errRes, nil
	}
	start, errRes := requiredUint(req, "start_time", 0, math.MaxInt64)
	if errRes != nil {
		return errRes, nil
	}
	nice, errRes := intArg(req, "nice", math.MinInt32, -20, 19)
	if errRes != nil {
		return errRes, nil
	}
	if nice == math.MinInt32 {
		return mcp.NewToolResultError("nice is required: -20 (highest priority) to 19 (lowest)"), nil
	}
	if err := b.client.SetProcessPriority(ctx, uint32(pid), uint64(start), int32(nice), b.callOptions()); err != nil {
		return refused(fmt.Sprintf("set the nice value of pid %d to %d", pid, nice), err), nil
	}
	msg := fmt.Sprintf("set the nice value of pid %d to %d", pid, nice)
	return mcp.NewToolResultStructured(ActionResult{Done: true, Message: msg}, msg+"."), nil
}

func (b *Bridge) manageUnit(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	unit, err := req.RequireString("unit")
	if err != nil || unit == "" {
		return mcp.NewToolResultError("unit is required"), nil
	}
	verb, err := req.RequireString("verb")
	if err != nil {
		return mcp.NewToolResultError("verb is required: start, stop, restart or reload"), nil
	}
	job, err := b.client.ManageUnit(ctx, unit, verb, b.callOptions())
	if err != nil {
		return refused(verb+" "+unit, err), nil
	}
	msg := fmt.Sprintf("systemd queued %s of %s", verb, unit)
	return mcp.NewToolResultStructured(ActionResult{Done: true, Message: msg, Job: string(job)}, msg+"."), nil
}

// callOptions: writes carry the interactive-authorization flag when the
// bridge allows prompting the user.
func (b *Bridge) callOptions() client.CallOptions {
	return client.CallOptions{Interactive: b.opts.Interactive}
}

// refused explains a failed write in words a model can relay: what was
// refused, by whom, and how it could be allowed.
func refused(what string, err error) *mcp.CallToolResult {
	name, msg := api.ErrorName(err), api.ErrorMessage(err)
	switch name {
	case api.ErrNotAuthorized, api.ErrAccessDenied:
		return mcp.NewToolResultErrorf("Refused: polkit did not allow this user to %s (%s). Nothing was changed. To allow it, the user can act from a desktop session whose polkit agent asks for confirmation, or an administrator can grant the npllm polkit action with a rule in /etc/polkit-1/rules.d.", what, msg)
	case api.ErrInteractiveAuthorizationRequired:
		return mcp.NewToolResultErrorf("Refused: polkit requires the user to authenticate to %s, and no one could be asked (%s). Nothing was changed. The user can do it themselves with npllmctl in a terminal, or run the bridge with prompts allowed in a desktop session with a polkit agent.", what, msg)
	case api.ErrProcessChanged:
		return mcp.NewToolResultErrorf("Refused: the process changed (%s): the pid now belongs to another process, so nothing was sent. Look the process up again.", msg)
	case api.ErrNoSuchProcess:
		return mcp.NewToolResultErrorf("No such process: %s. Nothing was changed.", msg)
	case api.ErrInvalidArgument, api.ErrInvalidArgs:
		return mcp.NewToolResultErrorf("Invalid request: %s. Nothing was changed.", msg)
	}
	return daemonError(what, err)
}

func daemonError(what string, err error) *mcp.CallToolResult {
	name := api.ErrorName(err)
	msg := api.ErrorMessage(err)
	switch name {
	case api.ErrServiceUnknown, api.ErrNameHasNoOwner:
		return mcp.NewToolResultErrorf("Could not %s: npllmd is not running on the system bus.", what)
	case api.ErrNotSupported:
		return mcp.NewToolResultErrorf("Could not %s: not supported on this machine: %s", what, msg)
	case api.ErrNoSuchProcess:
		return mcp.NewToolResultErrorf("Could not %s: %s", what, msg)
	case api.ErrInvalidArgument:
		return mcp.NewToolResultErrorf("Could not %s: invalid argument: %s", what, msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return mcp.NewToolResultErrorf("Could not %s: npllmd did not answer in time.", what)
	}
	return mcp.NewToolResultErrorf("Could not %s: %s", what, msg)
}

// Argument readers: every bad argument is a tool error naming it.

func number(req mcp.CallToolRequest, key string) (float64, bool, *mcp.CallToolResult) {
	v, ok := req.GetArguments()[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	switch n := v.(type) {
	case float64:
		return n, true, nil
	case int:
		return float64(n), true, nil
	case int64:
		return float64(n), true, nil
	case string:
		if f, err := strconv.ParseFloat(n, 64); err == nil {
			return f, true, nil
		}
	}
	return 0, false, mcp.NewToolResultErrorf("%s must be an integer, not %v", key, v)
}

func intArg(req mcp.CallToolRequest, key string, def, lo, hi int) (int, *mcp.CallToolResult) {
	f, ok, errRes := number(req, key)
	if errRes != nil {
		return 0, errRes
	}
	if !ok {
		return def, nil
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, mcp.NewToolResultErrorf("%s must be an integer from %d to %d, not %v", key, lo, hi, f)
	}
	return int(f), nil
}

func requiredUint(req mcp.CallToolRequest, key string, lo, hi uint64) (uint64, *mcp.CallToolResult) {
	f, ok, errRes := number(req, key)
	if errRes != nil {
		return 0, errRes
	}
	if !ok {
		return 0, mcp.NewToolResultErrorf("%s is required", key)
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, mcp.NewToolResultErrorf("%s must be an integer from %d to %d, not %v", key, lo, hi, f)
	}
	return uint64(f), nil
}

// lookupUID accepts a user name or a numeric uid.
func lookupUID(u string) (uint32, error) {
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		return uint32(n), nil
	}
	usr, err := user.Lookup(u)
	if err != nil {
		return 0, fmt.Errorf("no user %q on this machine", u)
	}
	n, _ := strconv.ParseUint(usr.Uid, 10, 32)
	return uint32(n), nil
}

func processSummary(p api.Process) ProcessSummary {
	s := ProcessSummary{PID: p.PID, StartTime: p.StartTime, Comm: p.Comm, User: p.User, UID: p.UID, State: p.State,
		RSSBytes: p.RSSBytes, CPUPercent: round2(p.CPUPercent)}
	if p.Cmdline != nil {
		s.Cmdline = *p.Cmdline
	}
	if len(s.Cmdline) > 200 {
		s.Cmdline = s.Cmdline[:200] + "…"
	}
	return s
}

func plainMap(m map[string]dbus.Variant) map[string]any {
	out, _ := api.Plain(m).(map[string]any)
	return out
}

// eventMaps are events as GetEvents sends them, for the tools' JSON.
func eventMaps(evs []api.Event) []map[string]any {
	out := make([]map[string]any, 0, len(evs))
	for i := range evs {
		out = append(out, plainMap(evs[i].Encode()))
	}
	return out
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// sortedKeys is used by the prompts.
func sortedKeys(m map[string]PSI) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
