package server_test

import (
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/server"
)

// dbus/api is a leaf and spells the engine's states and event kinds again;
// they must stay the same strings.
func TestAPITrialStatesAndKindsAreTheEngines(t *testing.T) {
	for api, engine := range map[string]string{
		api.TrialApplying: tuning.StateApplying, api.TrialCanary: tuning.StateCanary, api.TrialAwaiting: tuning.StateAwaiting,
		api.TrialConfirmed: tuning.StateConfirmed, api.TrialReverted: tuning.StateReverted, api.TrialEnded: tuning.StateEnded,
		api.KindTuningStarted: tuning.EventStarted, api.KindTuningRegressed: tuning.EventRegressed,
		api.KindTuningReverted: tuning.EventReverted, api.KindTuningConfirmed: tuning.EventConfirmed, api.KindTuningEnded: tuning.EventEnded,
	} {
		if api != engine {
			t.Errorf("api says %q, the engine %q", api, engine)
		}
	}
}

// A trial's record survives the wire: nested changes and figures as
// aa{sv}, decoded with every type checked; its event names the evidence.
func TestTrialRecordRoundTripsAndItsEventNamesTheFigures(t *testing.T) {
	now := time.Unix(1700000000, 0)
	info := tuning.TrialInfo{ID: "0123456789abcdef", State: tuning.StateReverted, Started: now,
		Changes: []tuning.ChangeInfo{{Knob: "unit.CPUWeight", Target: "build.service", Key: "unit.CPUWeight@build.service", Old: "100", New: "1"}},
		Options: tuning.Options{Workload: "build.service", Watch: []tuning.Watch{{Metric: tuning.MetricUnitCPU, Target: "build.service"}}},
		Before:  []tuning.Figure{{Metric: tuning.MetricUnitCPU, Target: "build.service", Value: 1.9}},
		After:   []tuning.Figure{{Metric: tuning.MetricUnitCPU, Target: "build.service", Value: 0.2}}}
	rec := server.TrialRecord(info)
	got, err := api.DecodeTrial(rec.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "0123456789abcdef" || len(got.Changes) != 1 || got.Changes[0].Target != "build.service" || got.Changes[0].New != "1" ||
		len(got.Before) != 1 || got.Before[0].Value != 1.9 || got.After[0].Value != 0.2 || got.Watch[0] != "unit.cpu:build.service" ||
		got.StartedNS != uint64(now.UnixNano()) {
		t.Errorf("decoded %+v from %+v", got, rec)
	}
	bad := rec.Encode()
	bad["changes"] = dbus.MakeVariant([]string{"vm.swappiness=10"})
	if _, err := api.DecodeTrial(bad); err == nil {
		t.Error("changes given as strings decoded without error")
	}
	bad = rec.Encode()
	bad["before"] = dbus.MakeVariant([]map[string]dbus.Variant{{"metric": dbus.MakeVariant("psi.io.some"), "value": dbus.MakeVariant("high")}})
	if _, err := api.DecodeTrial(bad); err == nil {
		t.Error("a figure whose value is a string decoded without error")
	}
	ev := server.TuningEvent(tuning.Event{Kind: tuning.EventRegressed, Trial: info, Reason: "regressed",
		Regression: &tuning.Regression{Metric: tuning.MetricUnitCPU, Target: "build.service", Before: 1.9, After: 0.2, Threshold: 0.25}}, now)
	if ev.Kind != api.KindTuningRegressed || ev.Tuning == nil || len(ev.Tuning.Figures) != 1 ||
		ev.Tuning.Figures[0] != "unit.cpu of build.service went from 1.9 to 0.2 (tolerance 25%)" ||
		ev.Tuning.Changes[0] != "unit.CPUWeight@build.service: 100 → 1" {
		t.Errorf("event %+v %+v", ev, ev.Tuning)
	}
	back, err := api.DecodeEvent(ev.Encode())
	if err != nil || back.Tuning == nil || back.Tuning.Figures[0] != ev.Tuning.Figures[0] {
		t.Errorf("event through the wire: %+v, %v", back.Tuning, err)
	}
}
