package tuning

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/npllm/npllm/actions"
)

func TestTunablesListEveryFamilyFromTheLiveSystem(t *testing.T) {
	list := Tunables(bg, DefaultEnv())
	sw := findTunable(list, "vm.swappiness", "")
	if !sw.Available || sw.Current != readKnob(t, swappiness) || sw.Default != "60" || sw.Max != 200 || sw.Why == "" {
		t.Fatalf("vm.swappiness row %+v", sw)
	}
	cur, all := bracketed(readKnob(t, "/sys/block/loop0/queue/scheduler"))
	sched := findTunable(list, "block.scheduler", "loop0")
	if !sched.Available || sched.Current != cur || strings.Join(sched.Allowed, " ") != strings.Join(all, " ") {
		t.Fatalf("loop0 scheduler row %+v, want %s of %v", sched, cur, all)
	}
	if thp := findTunable(list, "thp.enabled", ""); !thp.Available || len(thp.Allowed) < 2 {
		t.Fatalf("thp.enabled row %+v", thp)
	}
	for _, name := range []string{"unit.CPUWeight", "unit.IOWeight", "unit.MemoryHigh", "unit.MemoryMax", "unit.TasksMax"} {
		row := findTunable(list, name, "")
		if !row.NeedsUnit || row.Risk == "" {
			t.Errorf("%s row %+v", name, row)
		}
		if !actions.Booted() && (row.Available || !strings.Contains(row.Reason, "systemd is not running as PID 1")) {
			t.Errorf("%s without systemd: %+v", name, row)
		}
	}
	// Reported unavailable with the reason when absent, as on this VM.
	absent := map[string]string{
		"cpufreq.governor":    "/sys/devices/system/cpu/cpufreq",
		"sched_ext.scheduler": "/sys/kernel/sched_ext",
	}
	for name, dir := range absent {
		if _, err := os.Stat(dir); err == nil {
			continue
		}
		if row := findTunable(list, name, ""); row.Available || row.Reason == "" {
			t.Errorf("%s is absent here but listed as %+v", name, row)
		}
	}
	if row := findTunable(list, "power.profile", ""); row.Name == "" || (!row.Available && row.Reason == "") {
		t.Errorf("power.profile row %+v", row)
	}
}

func TestUnitKnobsValidateWithoutSystemd(t *testing.T) {
	env := DefaultEnv()
	bad := []Change{
		{Knob: "unit.CPUWeight", Target: "build.service", Value: "0"},
		{Knob: "unit.CPUWeight", Target: "build.service", Value: "10001"},
		{Knob: "unit.IOWeight", Target: "build.service", Value: "infinity"},
		{Knob: "unit.MemoryMax", Target: "build.service", Value: "12"},     // below 1 MiB
		{Knob: "unit.MemoryHigh", Target: "build.service", Value: "2X"},    // unknown suffix
		{Knob: "unit.MemoryHigh", Target: "build.service", Value: "-1G"},   // negative
		{Knob: "unit.TasksMax", Target: "build.service", Value: "default"}, // weights only
		{Knob: "unit.CPUWeight", Target: "../../etc/passwd", Value: "100"},
		{Knob: "unit.CPUWeight", Target: "sshd.socket", Value: "100"}, // no cgroup of its own
	}
	for _, c := range bad {
		k, err := Resolve(bg, env, c.Knob, c.Target)
		if err == nil {
			_, err = k.Validate(bg, c.Value)
		}
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s@%s=%s: %v, want ErrInvalidArgument", c.Knob, c.Target, c.Value, err)
		}
	}
	if _, err := Resolve(bg, env, "unit.CPUQuota", "build.service"); !errors.Is(err, ErrUnknownKnob) {
		t.Errorf("unit.CPUQuota: %v, want ErrUnknownKnob", err)
	}
	// Values systemd would take, in canonical form.
	k := &unitKnob{spec: unitProps[3], unit: "build.service"} // MemoryMax
	for in, want := range map[string]uint64{"512M": 512 << 20, "1G": 1 << 30, "1048576": 1 << 20, "infinity": 1<<64 - 1} {
		if got, err := k.parse(in); err != nil || got != want {
			t.Errorf("MemoryMax %s → %d %v, want %d", in, got, err, want)
		}
	}
	if actions.Booted() {
		return // the nspawn container test covers the real systemd path
	}
	kk, err := Resolve(bg, env, "unit.CPUWeight", "build.service")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kk.Validate(bg, "50"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("valid CPUWeight without systemd: %v, want ErrUnavailable", err)
	}
}

// cpufreq is absent on this VM, so its parser runs on a fixture tree.
func TestCPUFreqOnFixture(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"policy0", "policy1"} {
		dir := filepath.Join(root, "devices/system/cpu/cpufreq", p)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "scaling_governor"), []byte("schedutil\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "scaling_available_governors"), []byte("performance schedutil powersave\n"), 0o644)
	}
	// policy1 lacks powersave: only common governors are offered.
	os.WriteFile(filepath.Join(root, "devices/system/cpu/cpufreq/policy1/scaling_available_governors"),
		[]byte("performance schedutil\n"), 0o644)
	env := &Env{Sys: root}
	k, err := Resolve(context.Background(), env, "cpufreq.governor", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Validate(bg, "powersave"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("governor one policy lacks: %v", err)
	}
	if v, err := k.Validate(bg, "performance"); err != nil || v != "performance" {
		t.Fatalf("performance: %q %v", v, err)
	}
	if err := k.Write(bg, "performance"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := k.Read(bg); cur != "performance" {
		t.Fatalf("after write: %s", cur)
	}
	os.WriteFile(filepath.Join(root, "devices/system/cpu/cpufreq/policy1/scaling_governor"), []byte("schedutil\n"), 0o644)
	if cur, _ := k.Read(bg); !strings.HasPrefix(cur, "mixed:") {
		t.Fatalf("policies differ but read %q", cur)
	}
	if row := findTunable(Tunables(bg, env), "cpufreq.epp", ""); row.Available || !strings.Contains(row.Reason, "energy_performance_preference") {
		t.Fatalf("epp without the attribute: %+v", row)
	}
}

func TestBracketedChoiceLists(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never\n":                   "madvise",
		"[none] mq-deadline kyber bfq":               "none",
		"always defer defer+madvise [madvise] never": "madvise",
		"none": "",
		"[] x": "",
	} {
		if cur, _ := bracketed(in); cur != want {
			t.Errorf("%q → %q, want %q", in, cur, want)
		}
	}
}

func TestReadAheadIsRoundedAsTheKernelStoresIt(t *testing.T) {
	k, err := Resolve(bg, DefaultEnv(), "block.read_ahead_kb", "loop0")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(250 - 250%(os.Getpagesize()/1024))
	if v, err := k.Validate(bg, "250"); err != nil || v != want {
		t.Fatalf("read_ahead_kb 250 → %q %v, want %s (what the kernel reads back)", v, err, want)
	}
}
