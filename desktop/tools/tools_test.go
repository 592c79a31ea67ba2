package tools_test

// These tests run without root: npllmd is an in-process fake of OUR
// bus-client interface (desktop/internal/fakenpllmd), not D-Bus. The real
// daemon, bus and polkit are exercised by desktop/mcp's and desktop/ask's
// privileged tests.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/desktop/internal/fakenpllmd"
	"github.com/npllm/npllm/desktop/tools"
)

func fake() *fakenpllmd.Fake {
	f := fakenpllmd.New()
	f.StatusV = api.Status{Health: "warning", Load: [3]float64{1.5, 0.75, 0.25}, CPUUsage: 12.345,
		MemoryTotal: 8 << 30, MemoryAvailable: 2 << 30, Pressure: map[string][3]float64{"memory": {4.5, 2, 1}},
		ActiveAlerts: []api.Alert{{ID: "memory.low", Severity: "warning", Kind: "memory.low", Summary: "2 GiB left"}}}
	cmd := "hog --secret"
	f.Processes = []api.Process{
		{PID: 4242, StartTime: 777, Comm: "hog", User: "alice", UID: 1000, State: "R", CPUPercent: 99.5, RSSBytes: 3 << 30, Cmdline: &cmd},
		{PID: 1, StartTime: 1, Comm: "init", User: "root", State: "S"},
	}
	f.Events = []api.Event{
		{Seq: 5, Kind: api.KindProcessExec, PID: 4242, Comm: "hog"},
		{Seq: 6, Kind: api.KindOOMKill, PID: 99, Comm: "leaky", OOM: &api.OOMKill{RSSBytes: 1 << 30}},
	}
	return f
}

func TestBadArgumentsAreNamedAndReachNothing(t *testing.T) {
	f := fake()
	s := tools.New(f, tools.Options{Interactive: true})
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"process_details", map[string]any{}, "pid is required"},
		{"process_details", map[string]any{"pid": "abc"}, `pid must be an integer, not "abc"`},
		{"process_details", map[string]any{"pid": -5}, "pid must be an integer from 1"},
		{"process_details", map[string]any{"pid": 1.5}, "pid must be an integer"},
		{"process_details", map[string]any{"pid": []any{1}}, "pid must be an integer"},
		{"process_details", map[string]any{"pid": 7, "verbose": true}, `unknown argument "verbose": process_details takes pid`},
		{"list_processes", map[string]any{"sort_by": "size"}, `sort_by must be cpu, memory or io, not "size"`},
		{"list_processes", map[string]any{"limit": 1000}, "limit must be an integer from 1 to 50"},
		{"list_processes", map[string]any{"user": "no-such-user-npllm"}, `no user "no-such-user-npllm"`},
		{"list_processes", map[string]any{"user": strings.Repeat("x", 65)}, "user is longer than 64 bytes"},
		{"recent_events", map[string]any{"limit": 0}, "limit must be an integer from 1 to 100"},
		{"recent_events", map[string]any{"after_seq": "later"}, "after_seq must be an integer"},
		{"unit_status", map[string]any{}, "unit is required"},
		{"unit_status", map[string]any{"unit": 5}, "unit must be a string"},
		{"signal_process", map[string]any{"pid": 1, "start_time": 0}, "signal is required: TERM, KILL, INT, HUP, STOP or CONT"},
		{"signal_process", map[string]any{"pid": 1, "signal": "KILL"}, "start_time is required"},
		{"signal_process", map[string]any{"pid": 9, "start_time": 1, "signal": "NUKE"}, `signal must be TERM, KILL, INT, HUP, STOP or CONT, not "NUKE"`},
		{"set_process_priority", map[string]any{"pid": 1, "start_time": 1, "nice": 40}, "nice must be an integer from -20 to 19"},
		{"set_process_priority", map[string]any{"pid": 1, "start_time": 1}, "nice is required"},
		{"manage_unit", map[string]any{"unit": "x.service", "verb": "explode"}, "verb must be start, stop, restart or reload"},
		{"no_such_tool", map[string]any{}, `no tool "no_such_tool"`},
	}
	for _, tc := range cases {
		r := s.Call(context.Background(), tc.tool, tc.args, false)
		if !r.IsError || !strings.Contains(r.Text, tc.want) || r.Structured != nil {
			t.Errorf("%s(%v) = error %v %q, want an error containing %q", tc.tool, tc.args, r.IsError, r.Text, tc.want)
		}
	}
	if w := f.Writes(); len(w) != 0 {
		t.Errorf("bad arguments reached npllmd: %+v", w)
	}
}

func TestSystemStatusRendersTheDaemonsFigures(t *testing.T) {
	s := tools.New(fake(), tools.Options{})
	r := s.Call(context.Background(), "system_status", nil, true)
	if r.IsError {
		t.Fatal(r.Text)
	}
	for _, want := range []string{"Health warning", "Load 1.50 0.75 0.25", "CPU 12%", "2.0 GiB available of 8.0 GiB",
		"Memory pressure 4.5%", "Alert [warning] 2 GiB left", "Busiest: hog (pid 4242, 100% CPU)"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("text %q lacks %q", r.Text, want)
		}
	}
	st := r.Structured.(tools.SystemStatus)
	if st.CPUUsage != 12.35 || st.MemoryTotalBytes != 8<<30 || len(st.TopProcesses) != 2 || st.TopProcesses[0].Cmdline != "hog --secret" {
		t.Errorf("structured %+v", st)
	}
}

func TestRecentEventsFiltersAndPages(t *testing.T) {
	s := tools.New(fake(), tools.Options{})
	r := s.Call(context.Background(), "recent_events", map[string]any{"kind": "oom.kill, process.exit"}, true)
	page := r.Structured.(tools.EventPage)
	if r.IsError || len(page.Events) != 1 || page.Events[0]["comm"] != "leaky" || page.LastSeq != 6 || r.Text != "#6 oom.kill pid 99 leaky" {
		t.Errorf("recent_events: %q %+v", r.Text, page)
	}
	r = s.Call(context.Background(), "recent_events", map[string]any{"after_seq": 5}, true)
	if page := r.Structured.(tools.EventPage); len(page.Events) != 1 || page.Events[0]["seq"] != uint64(6) {
		t.Errorf("after_seq 5: %+v", page)
	}
}

func TestWritesAreAutomatedAndInteractiveAsConfigured(t *testing.T) {
	for _, interactive := range []bool{true, false} {
		f := fake()
		s := tools.New(f, tools.Options{Interactive: interactive})
		ctx := context.Background()
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"signal_process", map[string]any{"pid": 4242, "start_time": 777, "signal": "TERM"}},
			{"set_process_priority", map[string]any{"pid": 4242, "start_time": "777", "nice": 19}},
			{"manage_unit", map[string]any{"unit": "cups.service", "verb": "restart"}},
		} {
			if r := s.Call(ctx, c.tool, c.args, false); r.IsError || r.Structured.(tools.ActionResult).Done != true {
				t.Errorf("%s: %+v", c.tool, r)
			}
		}
		w := f.Writes()
		want := []fakenpllmd.Call{
			{Method: "SignalProcess", PID: 4242, Start: 777, Arg: "TERM"},
			{Method: "SetProcessPriority", PID: 4242, Start: 777, Nice: 19},
			{Method: "ManageUnit", Arg: "cups.service restart"},
		}
		if len(w) != len(want) {
			t.Fatalf("writes %+v", w)
		}
		for i := range want {
			want[i].Opts.Automated, want[i].Opts.Interactive = true, interactive
			if w[i] != want[i] {
				t.Errorf("write %d = %+v, want %+v", i, w[i], want[i])
			}
		}
	}
}

func TestReadOnlyRefusesWritesByName(t *testing.T) {
	f := fake()
	s := tools.New(f, tools.Options{Interactive: true})
	r := s.Call(context.Background(), "signal_process", map[string]any{"pid": 4242, "start_time": 777, "signal": "KILL"}, true)
	if !r.IsError || !strings.Contains(r.Text, "read-only") {
		t.Errorf("read-only write: %+v", r)
	}
	defs := tools.AskTools{Set: s, ReadOnly: true}.Definitions(false)
	for _, d := range defs {
		if d.Write {
			t.Errorf("read-only ask tools offer %s", d.Name)
		}
	}
	if len(defs) != 5 {
		t.Errorf("read-only ask tools: %d", len(defs))
	}
	res, err := tools.AskTools{Set: s, ReadOnly: true}.Call(context.Background(), "signal_process", json.RawMessage(`{"pid":4242,"start_time":777,"signal":"KILL"}`))
	if err != nil || !res.IsError {
		t.Errorf("ask read-only write: %+v %v", res, err)
	}
	if len(f.Writes()) != 0 {
		t.Errorf("a read-only session wrote: %+v", f.Writes())
	}
}

func TestRefusalsSayWhatWouldAllowThem(t *testing.T) {
	f := fake()
	f.WriteErr = dbus.Error{Name: api.ErrNotAuthorized, Body: []any{"not authorized"}}
	s := tools.New(f, tools.Options{Interactive: true})
	r := s.Call(context.Background(), "signal_process", map[string]any{"pid": 1, "start_time": 1, "signal": "KILL"}, false)
	if !r.IsError || !strings.Contains(r.Text, "polkit did not allow this user to send KILL to pid 1") || !strings.Contains(r.Text, "Nothing was changed") {
		t.Errorf("refusal: %q", r.Text)
	}
	f.WriteErr = dbus.Error{Name: api.ErrProcessChanged, Body: []any{"pid 1 was restarted"}}
	r = s.Call(context.Background(), "set_process_priority", map[string]any{"pid": 1, "start_time": 1, "nice": 5}, false)
	if !strings.Contains(r.Text, "the process changed") {
		t.Errorf("changed: %q", r.Text)
	}
}

func TestAskDoorGetsTheSameSchemasAndStructuredJSON(t *testing.T) {
	s := tools.New(fake(), tools.Options{})
	at := tools.AskTools{Set: s}
	defs := at.Definitions(false)
	if len(defs) != 8 {
		t.Fatalf("tools: %d", len(defs))
	}
	for _, d := range defs {
		def, _ := tools.Lookup(d.Name)
		if string(d.Parameters) != string(def.InputSchema()) {
			t.Errorf("%s: ask's schema differs from the table's", d.Name)
		}
		var schema struct {
			Type       string                    `json:"type"`
			Properties map[string]map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(d.Parameters, &schema); err != nil || schema.Type != "object" {
			t.Errorf("%s schema %s: %v", d.Name, d.Parameters, err)
		}
	}
	res, err := at.Call(context.Background(), "list_processes", json.RawMessage(`{"limit":1}`))
	if err != nil || res.IsError {
		t.Fatal(res, err)
	}
	var list tools.ProcessList
	if err := json.Unmarshal(res.Structured, &list); err != nil || len(list.Processes) != 1 || list.Processes[0].PID != 4242 {
		t.Errorf("structured %s: %v", res.Structured, err)
	}
	if res, _ := at.Call(context.Background(), "list_processes", json.RawMessage(`[1]`)); !res.IsError {
		t.Errorf("non-object arguments: %+v", res)
	}
}
