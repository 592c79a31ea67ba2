package packaging_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/testbus"
)

// The fleet rules pass Debian's promtool: syntax and the unit tests in
// npllm.rules.test.yml (alerts firing and not firing at given times).
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed (Debian package prometheus)")
	}
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "packaging", "prometheus")
	for _, args := range [][]string{{"check", "rules", "npllm.rules.yml"}, {"test", "rules", "npllm.rules.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The exporter's units: the service sandboxed at least as well as npllmd's.
func TestExporterUnitExposure(t *testing.T) {
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", filepath.Join(root, "systemd", "npllm-exporter.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Overall exposure level for npllm-exporter.service: 1.") {
		t.Errorf("exposure above 2:\n%s", out)
	}
}
