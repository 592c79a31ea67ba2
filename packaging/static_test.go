package packaging_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/npllm/npllm/dbus/testbus"
)

// systemd-analyze scores the unit's sandbox; the goal is at most 2.5
// (power-profiles-daemon 1.2, UPower 2.6, bolt 5.5, udisks2 9.6).
func TestUnitExposureIsAtMost2Point5(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is not installed (package systemd)")
	}
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", filepath.Join(root, "systemd", "npllmd.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for npllmd.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.5 {
		t.Errorf("exposure %.1f > 2.5:\n%s", level, out)
	}
}
