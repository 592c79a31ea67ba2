package desktop

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

func TestRegressedTrialNotificationNamesTheFigures(t *testing.T) {
	s := &shown{alerts: []string{"tuning.regressed/abc"}}
	d := map[string]dbus.Variant{"summary": dbus.MakeVariant("Tuning trial abc was reverted: program.cpu of make went from 1.9 to 0.4 (tolerance 25%)")}
	summary, body := texts(s, api.SeverityWarning, api.KindTuningRegressed, d)
	if !strings.Contains(summary, "reverted") || !strings.Contains(body, "program.cpu of make went from 1.9 to 0.4") {
		t.Errorf("notification %q / %q does not say the trial was reverted with its figures", summary, body)
	}
}
