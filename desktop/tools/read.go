package tools

import (
	"context"
	"fmt"
	"math"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Output caps keep answers small enough for small local models.
const (
	defaultProcesses = 10
	maxProcesses     = 50
	DefaultEvents    = 20
	maxEvents        = 100
	topProcesses     = 5
	topProcessesTTL  = time.Second
	// recent_events without after_seq looks back at most this many
	// journal entries for matches (page further with after_seq).
	eventLookback = 20000
)

var pidParam = Param{Name: "pid", Kind: Integer, Required: true, Min: 1, Max: math.MaxInt32, Description: "process id"}

var defSystemStatus = &Def{
	Name:        "system_status",
	Description: "Health, load, CPU, memory, swap, pressure, active alerts and the busiest processes of this machine.",
	Output:      SystemStatus{}, Hints: readHints,
	run: func(ctx context.Context, s *Set, _ *Args) Result {
		st, err := s.Status(ctx)
		if err != nil {
			return DaemonError("read the system status", err)
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
		return Result{Text: text, Structured: st}
	},
}

var defListProcesses = &Def{
	Name:        "list_processes",
	Description: "Processes, biggest first.",
	Params: []Param{
		{Name: "sort_by", Kind: String, Enum: []string{"cpu", "memory", "io"}, Default: "cpu", Description: "what to sort by"},
		{Name: "limit", Kind: Integer, Min: 1, Max: maxProcesses, Default: defaultProcesses, Description: "how many"},
		{Name: "user", Kind: String, MaxLen: 64, Description: "only this user's processes (name or uid)"},
	},
	Output: ProcessList{}, Hints: readHints,
	run: func(ctx context.Context, s *Set, a *Args) Result {
		q := client.ProcessQuery{SortBy: a.Str("sort_by", "cpu"), Limit: uint32(a.Int("limit", defaultProcesses))}
		if u := a.Str("user", ""); u != "" {
			uid, err := lookupUID(u)
			if err != nil {
				return Errorf("%v", err)
			}
			q.UID = &uid
		}
		procs, err := s.client.ListProcesses(ctx, q)
		if err != nil {
			return DaemonError("list processes", err)
		}
		out := ProcessList{Processes: []ProcessSummary{}}
		var lines []string
		for _, p := range procs {
			ps := processSummary(p)
			out.Processes = append(out.Processes, ps)
			lines = append(lines, fmt.Sprintf("%d %s (%s) cpu %.0f%% rss %s", ps.PID, ps.Comm, ps.User, ps.CPUPercent, api.HumanBytes(ps.RSSBytes)))
		}
		return Result{Text: strings.Join(lines, "\n"), Structured: out}
	},
}

var defProcessDetails = &Def{
	Name:        "process_details",
	Description: "Everything known about one process: state, memory, CPU, unit, its learned baseline, and its recent events.",
	Params:      []Param{pidParam},
	Output:      ProcessDetails{}, Hints: readHints,
	run: func(ctx context.Context, s *Set, a *Args) Result {
		pid := uint32(a.Int("pid", 0))
		info, err := s.client.GetProcess(ctx, pid)
		if err != nil {
			return DaemonError(fmt.Sprintf("read process %d", pid), err)
		}
		out := ProcessDetails{Process: plainMap(info.Encode()), RecentEvents: []map[string]any{}}
		if bl, ok := out.Process["baseline"].(map[string]any); ok {
			out.Baseline = bl
			delete(out.Process, "baseline")
		}
		if evs, _, err := s.LastEvents(ctx, client.EventFilter{PID: &pid}, 10); err == nil {
			out.RecentEvents = eventMaps(evs)
		}
		text := fmt.Sprintf("pid %d %s (%s), state %s, cpu %.0f%%, rss %s, start_time %d", pid, info.Comm, info.User,
			info.State, info.CPUPercent, api.HumanBytes(info.RSSBytes), info.StartTime)
		return Result{Text: text, Structured: out}
	},
}

var defRecentEvents = &Def{
	Name: "recent_events",
	Description: "Events from the journal, oldest first, each with its seq: process.exec, process.exit, oom.kill, tcp.connect, " +
		"tcp.accept, tcp.close, signal.sent, unit.failed. Without after_seq: the most recent ones.",
	Params: []Param{
		{Name: "kind", Kind: String, MaxLen: 1024, Description: "only this kind, or several separated by commas"},
		{Name: "limit", Kind: Integer, Min: 1, Max: maxEvents, Default: DefaultEvents},
		{Name: "after_seq", Kind: Integer, Min: 0, Max: math.MaxInt64, Description: "return events after this seq (from last_seq of a previous call)"},
	},
	Output: EventPage{}, Hints: readHints,
	run: func(ctx context.Context, s *Set, a *Args) Result {
		limit := int(a.Int("limit", DefaultEvents))
		var filter client.EventFilter
		for _, k := range strings.Split(a.Str("kind", ""), ",") {
			if k = strings.TrimSpace(k); k != "" {
				filter.Kinds = append(filter.Kinds, k)
			}
		}
		var page EventPage
		if a.Has("after_seq") {
			last, evs, err := s.client.GetEvents(ctx, uint64(a.Int("after_seq", 0)), uint32(limit), filter)
			if err != nil {
				return DaemonError("read events", err)
			}
			page = EventPage{Events: eventMaps(evs), LastSeq: last}
		} else {
			evs, last, err := s.LastEvents(ctx, filter, limit)
			if err != nil {
				return DaemonError("read events", err)
			}
			page = EventPage{Events: eventMaps(evs), LastSeq: last}
		}
		var lines []string
		for _, ev := range page.Events {
			lines = append(lines, fmt.Sprintf("#%v %v pid %v %v", ev["seq"], ev["kind"], ev["pid"], ev["comm"]))
		}
		if len(lines) == 0 {
			lines = append(lines, "no events")
		}
		return Result{Text: strings.Join(lines, "\n"), Structured: page}
	},
}

var defUnitStatus = &Def{
	Name:        "unit_status",
	Description: "A systemd unit's state and its recent failures.",
	Params:      []Param{{Name: "unit", Kind: String, Required: true, Description: `a full unit name such as "cups.service"`}},
	Output:      UnitReport{}, Hints: readHints,
	run: func(ctx context.Context, s *Set, a *Args) Result {
		unit := a.Str("unit", "")
		if unit == "" {
			return Errorf(`unit is required: a full unit name such as "cups.service"`)
		}
		st, err := s.client.GetUnit(ctx, unit)
		if err != nil {
			return DaemonError("read unit "+unit, err)
		}
		out := UnitReport{Unit: plainMap(st.Encode()), RecentFailures: []map[string]any{}}
		if evs, _, err := s.LastEvents(ctx, client.EventFilter{Kinds: []string{api.KindUnitFailed}}, maxEvents); err == nil {
			for i := range evs {
				if u := evs[i].Unit; u != nil && u.Unit == unit {
					out.RecentFailures = append(out.RecentFailures, eventMaps(evs[i:i+1])...)
				}
			}
		}
		text := fmt.Sprintf("%s: %s (%s), %d recent failures", unit, st.ActiveState, st.SubState, len(out.RecentFailures))
		return Result{Text: text, Structured: out}
	},
}

// Status reads the daemon's properties into the system_status shape.
func (s *Set) Status(ctx context.Context) (SystemStatus, error) {
	st, err := s.client.Status(ctx)
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
	top, err := s.topProcesses(ctx)
	if err != nil {
		return SystemStatus{}, err
	}
	out.TopProcesses = top
	return out, nil
}

// topProcesses are read at most once per topProcessesTTL: the daemon's own
// figures refresh once a second, and listing processes reads /proc (a few
// ms), which a model polling system_status should not pay each time.
func (s *Set) topProcesses(ctx context.Context) ([]ProcessSummary, error) {
	s.mu.Lock()
	if time.Since(s.topAt) < topProcessesTTL {
		top := s.top
		s.mu.Unlock()
		return top, nil
	}
	s.mu.Unlock()
	procs, err := s.client.ListProcesses(ctx, client.ProcessQuery{SortBy: "cpu", Limit: topProcesses})
	if err != nil {
		return nil, err
	}
	top := []ProcessSummary{}
	for _, p := range procs {
		top = append(top, processSummary(p))
	}
	s.mu.Lock()
	s.top, s.topAt = top, time.Now()
	s.mu.Unlock()
	return top, nil
}

// LastEvents returns the newest n events matching filter, oldest first,
// and the journal's newest seq; it looks back at most eventLookback.
func (s *Set) LastEvents(ctx context.Context, filter client.EventFilter, n int) ([]api.Event, uint64, error) {
	newest, err := s.client.NewestSeq(ctx)
	if err != nil {
		return nil, 0, err
	}
	var found []api.Event
	for window := uint64(n); ; window *= 4 {
		start := uint64(0)
		if newest > window {
			start = newest - window
		}
		found = found[:0]
		for seq := start; seq < newest; {
			last, evs, err := s.client.GetEvents(ctx, seq, 1000, filter)
			if err != nil {
				return nil, 0, err
			}
			found = append(found, evs...)
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
	return found, newest, nil
}

// EventMaps renders events as the tools' JSON does (for MCP resources).
func EventMaps(evs []api.Event) []map[string]any { return eventMaps(evs) }

// lookupUID accepts a user name or a numeric uid.
func lookupUID(u string) (uint32, error) {
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		return uint32(n), nil
	}
	usr, err := user.Lookup(u)
	if err != nil {
		return 0, fmt.Errorf("no user %q on this machine", clip(u, 64))
	}
	n, _ := strconv.ParseUint(usr.Uid, 10, 32)
	return uint32(n), nil
}
