package tuning

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// systemdEnv marks the container half of packaging's
// TestTuningUnderRealSystemd: this machine's systemd is not PID 1, so the
// unit-property knobs run for real only inside the nspawn container, where
// that test runs this binary.
const systemdEnv = "NPLLM_TUNING_IN_CONTAINER"

func TestUnitKnobTrialsUnderSystemd(t *testing.T) {
	if os.Getenv(systemdEnv) != "1" {
		t.Skip("runs inside the nspawn container of packaging's TestTuningUnderRealSystemd")
	}
	unit := fmt.Sprintf("npllm-tune-%d.service", os.Getpid())
	if out, err := exec.Command("systemd-run", "--unit="+unit, "sleep", "300").CombinedOutput(); err != nil {
		t.Fatalf("systemd-run: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("systemctl", "stop", unit).Run() })
	show := func(prop string) string {
		out, err := exec.Command("systemctl", "show", "-p", prop, "--value", unit).Output()
		if err != nil {
			t.Fatalf("systemctl show %s: %v", prop, err)
		}
		return strings.TrimSpace(string(out))
	}
	e, ev := newEngine(t, t.TempDir(), nil)

	// Confirmed change, read back by systemctl (another client) and, where
	// the cgroup file exists, by the kernel.
	id, err := e.Start(bg, []Change{{Knob: "unit.CPUWeight", Target: unit, Value: "50"}},
		Options{Canary: 200 * time.Millisecond, Lease: 2 * time.Second, Every: 20 * time.Millisecond, Workload: unit})
	if err != nil {
		t.Fatal(err)
	}
	if got := show("CPUWeight"); got != "50" {
		t.Fatalf("CPUWeight %q after the trial started, want 50", got)
	}
	checkCgroupWeight(t, show("MainPID"), unit, 50)
	waitState(t, e, id, StateAwaiting, 2*time.Second)
	if _, err := e.Confirm(id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2200 * time.Millisecond)
	if got := show("CPUWeight"); got != "50" {
		t.Fatalf("confirmed CPUWeight became %q", got)
	}

	// Persisted on request: a drop-in npllm owns, which systemd loads, and
	// which the revert removes.
	ioBefore := show("IOWeight")
	id, err = e.Start(bg, []Change{{Knob: "unit.IOWeight", Target: unit, Value: "30"}},
		Options{Canary: 100 * time.Millisecond, Lease: 5 * time.Second, Every: 20 * time.Millisecond, Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e, id, StateAwaiting, 2*time.Second)
	if _, err := e.Confirm(id); err != nil {
		t.Fatal(err)
	}
	dropIn := "/etc/systemd/system/" + unit + ".d/90-npllm-IOWeight.conf"
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		t.Fatalf("daemon-reload: %v\n%s", err, out)
	}
	if got := show("DropInPaths"); !strings.Contains(got, dropIn) || show("IOWeight") != "30" {
		t.Fatalf("after daemon-reload: DropInPaths %q, IOWeight %q", got, show("IOWeight"))
	}
	if _, err := e.Revert(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dropIn); !os.IsNotExist(err) {
		t.Fatalf("%s left after the revert: %v", dropIn, err)
	}
	if got := show("IOWeight"); got != ioBefore {
		t.Fatalf("IOWeight %q after the revert, want %q", got, ioBefore)
	}

	// Unconfirmed MemoryMax: reverted when the lease ends.
	id, err = e.Start(bg, []Change{{Knob: "unit.MemoryMax", Target: unit, Value: "512M"}},
		Options{Canary: 100 * time.Millisecond, Lease: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := show("MemoryMax"); got != strconv.Itoa(512<<20) {
		t.Fatalf("MemoryMax %q, want %d", got, 512<<20)
	}
	ev.waitID(t, EventReverted, id, 3*time.Second)
	if got := show("MemoryMax"); got != "infinity" {
		t.Fatalf("MemoryMax %q after the lease, want infinity", got)
	}

	// A foreign change during a trial ends it and stays.
	if _, err := e.Start(bg, []Change{{Knob: "unit.TasksMax", Target: unit, Value: "64"}},
		Options{Canary: 5 * time.Second, Lease: 10 * time.Second, Every: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemctl", "set-property", "--runtime", unit, "TasksMax=77").CombinedOutput(); err != nil {
		t.Fatalf("set-property: %v\n%s", err, out)
	}
	ev.wait(t, EventEnded, 2*time.Second)
	time.Sleep(100 * time.Millisecond)
	if got := show("TasksMax"); got != "77" {
		t.Fatalf("foreign TasksMax 77 became %q", got)
	}

	// An alias would let two trials hold one unit's property.
	_, err = e.Start(bg, []Change{{Knob: "unit.CPUWeight", Target: "dbus-org.freedesktop.hostname1.service", Value: "20"}}, Options{})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "systemd-hostnamed.service") {
		t.Fatalf("CPUWeight on an alias: %v, want ErrInvalidArgument naming systemd-hostnamed.service", err)
	}

	// Invalid: a unit that does not exist; nothing changes.
	_, err = e.Start(bg, []Change{{Knob: "unit.MemoryMax", Target: "npllm-no-such-unit.service", Value: "1G"}}, Options{})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("MemoryMax on a missing unit: %v, want ErrInvalidArgument", err)
	}
	if got := show("CPUWeight"); got != "50" {
		t.Fatalf("CPUWeight %q after a refused trial, want 50", got)
	}
}

// checkCgroupWeight reads the kernel's view when the container has a cpu
// controller: cpu.weight on cgroup v2, cpu.shares (weight × 1024 / 100) on
// v1, found through /proc/PID/cgroup of the unit's main process. On this
// machine's cgroup v1 host the container's systemd manages only its
// name=systemd hierarchy, so the value is checked through systemd alone.
func checkCgroupWeight(t *testing.T, pid, unit string, weight int) {
	t.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasSuffix(parts[2], "/"+unit) {
			continue // not the unit's own cgroup: systemd does not manage that controller here
		}
		var file string
		want := weight
		switch ctl := parts[1]; {
		case ctl == "":
			file = filepath.Join("/sys/fs/cgroup", parts[2], "cpu.weight")
		case strings.Contains(","+ctl+",", ",cpu,"):
			file, want = filepath.Join("/sys/fs/cgroup", ctl, parts[2], "cpu.shares"), weight*1024/100
		default:
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		if got := strings.TrimSpace(string(b)); got != strconv.Itoa(want) {
			t.Fatalf("%s is %s, want %d", file, got, want)
		}
		t.Logf("kernel: %s = %d", file, want)
		return
	}
	t.Logf("no cpu controller for pid %s in this container (%q); checked through systemd only", pid, data)
}
