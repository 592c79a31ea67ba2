package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/testbus"
)

// The tuning engine's unit-property knobs need systemd as PID 1, which this
// machine lacks: its own test binary runs TestUnitKnobTrialsUnderSystemd
// inside a container booted under real systemd.
func TestTuningUnderRealSystemd(t *testing.T) {
	testbus.Privileged(t)
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	build := exec.Command("go", "test", "-c", "-o", filepath.Join(dir, "tuning.test"), "./actions/tuning")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	c := bootContainer(t, dir)
	out, err := c.run("env", "NPLLM_TUNING_IN_CONTAINER=1", "/mnt/pkg/tuning.test",
		"-test.run=^TestUnitKnobTrialsUnderSystemd$", "-test.v", "-test.count=1")
	if err != nil || !strings.Contains(out, "--- PASS: TestUnitKnobTrialsUnderSystemd") {
		t.Fatalf("inside the container: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
