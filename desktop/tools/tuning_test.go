package tools_test

// Without root, against the in-process fake of OUR client interface (see
// tools_test.go); the real trials through npllmd, polkitd and the kernel
// are desktop/mcp's TestSDKClientListsTunablesTriesAndRevertsAsRoot and
// dbus/server's tuning tests.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/internal/fakenpllmd"
	"github.com/npllm/npllm/desktop/tools"
)

var tuningTools = []string{"list_tunables", "try_tuning", "confirm_tuning", "revert_tuning"}

func tuningFake() *fakenpllmd.Tuning {
	f := fakenpllmd.NewTuning()
	f.TunablesV = []api.Tunable{
		{Name: "vm.swappiness", Type: "int", Min: 0, Max: 200, Current: "60", Risk: "low", Why: "swap earlier or later", Available: true},
		{Name: "block.scheduler", Target: "sda", Type: "enum", Allowed: []string{"none", "mq-deadline"}, Current: "none", Risk: "low", Available: true, Trial: "t0"},
		{Name: "unit.MemoryHigh", NeedsUnit: true, Type: "bytes", Min: 64 << 20, Risk: "medium", Available: true},
		{Name: "cpufreq.governor", Available: false, Reason: "no cpufreq here"},
	}
	return f
}

func names(defs []*tools.Def) []string {
	var out []string
	for _, d := range defs {
		out = append(out, d.Name)
	}
	return out
}

func TestTuningToolsOnlyWithAClientThatCanTune(t *testing.T) {
	plain := tools.New(fake(), tools.Options{})
	for _, n := range names(plain.Defs(false)) {
		if slices.Contains(tuningTools, n) {
			t.Errorf("a client that cannot tune offers %s", n)
		}
	}
	if r := plain.Call(context.Background(), "list_tunables", nil, false); !r.IsError || !strings.Contains(r.Text, `no tool "list_tunables"`) {
		t.Errorf("list_tunables without a tuner: %+v", r)
	}
	s := tools.New(tuningFake(), tools.Options{})
	all := names(s.Defs(false))
	for _, n := range tuningTools {
		if !slices.Contains(all, n) {
			t.Errorf("a tuner's tool set lacks %s: %v", n, all)
		}
	}
	if len(all) != 12 {
		t.Errorf("tools %v", all)
	}
	// --no-act and Explain: of the tuning tools only list_tunables.
	ro := tools.AskTools{Set: s, ReadOnly: true}.Definitions(false)
	var roNames []string
	for _, d := range ro {
		roNames = append(roNames, d.Name)
	}
	if len(ro) != 6 || !slices.Contains(roNames, "list_tunables") || slices.Contains(roNames, "try_tuning") {
		t.Errorf("read-only tools %v", roNames)
	}
	for _, n := range []string{"try_tuning", "confirm_tuning", "revert_tuning"} {
		if d, _ := tools.Lookup(n); !d.Write || !d.Hints.Destructive || d.Hints.ReadOnly {
			t.Errorf("%s is not marked as a destructive write: %+v", n, d.Hints)
		}
	}
}

func TestTuningArgumentsAreCheckedBeforeNpllmd(t *testing.T) {
	f := tuningFake()
	s := tools.New(f, tools.Options{Interactive: true})
	ok := map[string]any{"vm.swappiness": "10"}
	many := map[string]any{}
	for i := range 17 {
		many[strings.Repeat("k", i+1)] = "1"
	}
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"try_tuning", map[string]any{}, "changes is required"},
		{"try_tuning", map[string]any{"changes": "vm.swappiness=10"}, "changes must be an object of 1 to 16 name → value pairs"},
		{"try_tuning", map[string]any{"changes": map[string]any{}}, "changes must be an object of 1 to 16"},
		{"try_tuning", map[string]any{"changes": many}, "changes must be an object of 1 to 16"},
		{"try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": 1.5}}, "the value of vm.swappiness in changes must be a string or an integer, not 1.5"},
		{"try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": true}}, "must be a string or an integer, not true"},
		{"try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": []any{"1"}}}, "must be a string or an integer"},
		{"try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": ""}}, "the value of vm.swappiness is empty"},
		{"try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": "1\nx"}}, "contains a control character"},
		{"try_tuning", map[string]any{"changes": map[string]any{"": "1"}}, "a name in changes is empty"},
		{"try_tuning", map[string]any{"changes": map[string]any{strings.Repeat("k", 129): "1"}}, "a name in changes is longer than 128 bytes"},
		{"try_tuning", map[string]any{"changes": ok, "watch": "psi.io.some"}, "watch must be a list of at most 8 names"},
		{"try_tuning", map[string]any{"changes": ok, "watch": make([]any, 9)}, "watch must be a list of at most 8 names"},
		{"try_tuning", map[string]any{"changes": ok, "watch": []any{7}}, "watch must be a list of strings, not 7"},
		{"try_tuning", map[string]any{"changes": ok, "watch": []any{"psi.io.some\x1b[2J"}}, "an item of watch contains a control character"},
		{"try_tuning", map[string]any{"changes": ok, "canary_seconds": 0}, "canary_seconds must be an integer from 1 to 3600"},
		{"try_tuning", map[string]any{"changes": ok, "canary_seconds": 3601}, "canary_seconds must be an integer from 1 to 3600"},
		{"try_tuning", map[string]any{"changes": ok, "lease_minutes": 1441}, "lease_minutes must be an integer from 1 to 1440"},
		{"try_tuning", map[string]any{"changes": ok, "lease_minutes": "soon"}, "lease_minutes must be an integer"},
		{"try_tuning", map[string]any{"changes": ok, "persist": true}, `unknown argument "persist": try_tuning takes changes, watch, canary_seconds, lease_minutes, workload`},
		{"confirm_tuning", map[string]any{}, "trial_id is required"},
		{"confirm_tuning", map[string]any{"trial_id": ""}, "trial_id is required"},
		{"revert_tuning", map[string]any{"trial_id": strings.Repeat("x", 65)}, "trial_id is longer than 64 bytes"},
		{"revert_tuning", map[string]any{"trial_id": 12}, "trial_id must be a string"},
		{"revert_tuning", map[string]any{"trial_id": "t0\r\nfake"}, "trial_id contains a control character"},
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

func TestTuningWritesAreAutomatedAndCarryTheRequest(t *testing.T) {
	for _, interactive := range []bool{true, false} {
		f := tuningFake()
		s := tools.New(f, tools.Options{Interactive: interactive})
		ctx := context.Background()
		r := s.Call(ctx, "try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": 10.0, "unit.CPUWeight@build.service": "50"},
			"watch": []any{"psi.memory.some", "unit.cpu:build.service"}, "canary_seconds": 5, "lease_minutes": "2", "workload": "build.service"}, false)
		res, _ := r.Structured.(tools.TrialResult)
		if r.IsError || !res.Done || res.Trial.ID != "trial1" || res.Trial.State != api.TrialCanary || res.Trial.ConfirmUntil == "" ||
			!strings.Contains(r.Text, "Trial trial1 started (unit.CPUWeight@build.service=50, vm.swappiness=10)") || !strings.Contains(r.Text, "unless confirmed") {
			t.Fatalf("try_tuning: %+v", r)
		}
		want := client.TrialRequest{Changes: map[string]string{"vm.swappiness": "10", "unit.CPUWeight@build.service": "50"},
			Watch: []string{"psi.memory.some", "unit.cpu:build.service"}, Canary: 5 * time.Second, Lease: 2 * time.Minute, Workload: "build.service"}
		if got := f.Requests; len(got) != 1 || mustJSON(t, got[0]) != mustJSON(t, want) {
			t.Errorf("request %+v, want %+v", got, want)
		}
		// Defaults: the canary and lease the tool documents.
		s.Call(ctx, "try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": "20"}}, false)
		if got := f.Requests; len(got) != 2 || got[1].Canary != time.Minute || got[1].Lease != 10*time.Minute || got[1].Watch != nil {
			t.Errorf("defaults: %+v", got)
		}
		if r := s.Call(ctx, "confirm_tuning", map[string]any{"trial_id": "trial1"}, false); r.IsError || r.Text != "Trial trial1: confirmed." {
			t.Errorf("confirm_tuning: %+v", r)
		}
		if r := s.Call(ctx, "revert_tuning", map[string]any{"trial_id": "trial2"}, false); r.IsError || r.Structured.(tools.TrialResult).Trial.State != api.TrialReverted {
			t.Errorf("revert_tuning: %+v", r)
		}
		wantCalls := []fakenpllmd.Call{
			{Method: "StartTrial", Arg: "unit.CPUWeight@build.service=50, vm.swappiness=10"},
			{Method: "StartTrial", Arg: "vm.swappiness=20"},
			{Method: "ConfirmTrial", Arg: "trial1"},
			{Method: "RevertTrial", Arg: "trial2"},
		}
		w := f.Writes()
		if len(w) != len(wantCalls) {
			t.Fatalf("writes %+v", w)
		}
		for i := range wantCalls {
			wantCalls[i].Opts = client.CallOptions{Interactive: interactive, Automated: true}
			if w[i] != wantCalls[i] {
				t.Errorf("write %d = %+v, want %+v", i, w[i], wantCalls[i])
			}
		}
	}
}

func TestListTunablesRendersKnobsAndTrials(t *testing.T) {
	f := tuningFake()
	f.TrialsV = []api.Trial{{ID: "t0", State: api.TrialAwaiting, Changes: []api.TrialChange{{Knob: "block.scheduler", Target: "sda", Old: "none", New: "mq-deadline"}},
		CanaryEndsNS: uint64(time.Now().UnixNano()), LeaseEndsNS: uint64(time.Now().Add(time.Hour).UnixNano())}}
	r := tools.New(f, tools.Options{}).Call(context.Background(), "list_tunables", map[string]any{}, true)
	list, _ := r.Structured.(tools.TunableList)
	if r.IsError || r.Text != "3 knobs can be tried here (1 unavailable); 1 trials." {
		t.Fatalf("list_tunables: %+v", r)
	}
	want := []tools.TunableRow{
		{Knob: "vm.swappiness", Current: "60", Values: "0 to 200", Risk: "low", Why: "swap earlier or later"},
		{Knob: "block.scheduler@sda", Current: "none", Values: "none, mq-deadline", Risk: "low", Trial: "t0"},
		{Knob: "unit.MemoryHigh@UNIT", Values: "bytes (K/M/G/T suffix) from 64.0 MiB, or infinity", Risk: "medium"},
	}
	if mustJSON(t, list.Tunables) != mustJSON(t, want) {
		t.Errorf("rows %+v", list.Tunables)
	}
	if len(list.Unavailable) != 1 || list.Unavailable[0] != "cpufreq.governor: no cpufreq here" {
		t.Errorf("unavailable %v", list.Unavailable)
	}
	if len(list.Trials) != 1 || list.Trials[0].Changes[0] != "block.scheduler@sda: none → mq-deadline" || list.Trials[0].ConfirmUntil == "" {
		t.Errorf("trials %+v", list.Trials)
	}
}

func TestTuningRefusalsSayWhy(t *testing.T) {
	f := tuningFake()
	s := tools.New(f, tools.Options{})
	ctx := context.Background()
	if r := s.Call(ctx, "confirm_tuning", map[string]any{"trial_id": "gone"}, false); !r.IsError || !strings.Contains(r.Text, "No trial gone") {
		t.Errorf("unknown trial: %+v", r)
	}
	f.WriteErr = dbus.Error{Name: api.ErrConflict, Body: []any{"trial t0 is still in its canary"}}
	if r := s.Call(ctx, "confirm_tuning", map[string]any{"trial_id": "t0"}, false); !r.IsError || !strings.Contains(r.Text, "Could not confirm trial t0: trial t0 is still in its canary. Nothing was changed.") {
		t.Errorf("conflict: %+v", r)
	}
	f.WriteErr = dbus.Error{Name: api.ErrNotAuthorized, Body: []any{"not authorized"}}
	if r := s.Call(ctx, "try_tuning", map[string]any{"changes": map[string]any{"vm.swappiness": "10"}}, false); !r.IsError ||
		!strings.Contains(r.Text, "polkit did not allow this user to try vm.swappiness=10") {
		t.Errorf("refused: %+v", r)
	}
	if len(f.Requests) != 0 || len(f.TrialsV) != 0 {
		t.Errorf("a refused trial was kept: %+v", f.Requests)
	}
	// The read-only door refuses the writes by name, too.
	res, err := tools.AskTools{Set: s, ReadOnly: true}.Call(ctx, "try_tuning", json.RawMessage(`{"changes":{"vm.swappiness":"10"}}`))
	if err != nil || !res.IsError || !strings.Contains(res.Text, "read-only") {
		t.Errorf("read-only try_tuning: %+v %v", res, err)
	}
}

func TestTuningSchemasSayWhatTheChecksDo(t *testing.T) {
	d, _ := tools.Lookup("try_tuning")
	var schema struct {
		Properties map[string]map[string]any `json:"properties"`
		Required   []string                  `json:"required"`
	}
	if err := json.Unmarshal(d.InputSchema(), &schema); err != nil {
		t.Fatal(err)
	}
	ch, w := schema.Properties["changes"], schema.Properties["watch"]
	if ch["type"] != "object" || ch["maxProperties"] != 16.0 || ch["minProperties"] != 1.0 || w["type"] != "array" || w["maxItems"] != 8.0 ||
		!slices.Equal(schema.Required, []string{"changes"}) {
		t.Errorf("schema %s", d.InputSchema())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
