package tools

import (
	"math"
	"sort"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
)

// Structured outputs; their JSON schemas are derived from these types.

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

// SortedKeys are a pressure map's resources in order (for prompts).
func SortedKeys(m map[string]PSI) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Tuning trials (tuning.go).

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
