package sensors

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestUnitFromCgroupNamesTheInnermostUnit(t *testing.T) {
	cases := map[string]string{
		"/system.slice/ssh.service": "ssh.service",
		"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service": "foo.service",
		"/user.slice/user-1000.slice/session-3.scope":                         "session-3.scope",
		"/":                      "",
		"":                       "",
		"/docker/abc123":         "",
		"/system.slice/x.slice/": "",
	}
	for in, want := range cases {
		if got := UnitFromCgroup(in); got != want {
			t.Errorf("UnitFromCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHealthFollowsMemoryAndPressure(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		name string
		s    Snapshot
		want string
	}{
		{"plenty", Snapshot{MemoryTotal: 8 * gib, MemoryAvailable: 4 * gib}, HealthOK},
		{"low memory, no swap", Snapshot{MemoryTotal: 100, MemoryAvailable: 8}, HealthWarning},
		{"low memory, swap free", Snapshot{MemoryTotal: 100, MemoryAvailable: 8, SwapTotal: 100, SwapFree: 90}, HealthOK},
		{"very low memory and swap", Snapshot{MemoryTotal: 100, MemoryAvailable: 4, SwapTotal: 100, SwapFree: 5}, HealthCritical},
		{"memory pressure some", Snapshot{MemoryTotal: 100, MemoryAvailable: 80, Pressure: map[string][3]float64{"memory": {12, 0, 0}}}, HealthWarning},
		{"memory pressure full", Snapshot{MemoryTotal: 100, MemoryAvailable: 80, PressureFull: map[string][3]float64{"memory": {6, 0, 0}}}, HealthCritical},
		{"full beats some", Snapshot{MemoryTotal: 100, MemoryAvailable: 80, Pressure: map[string][3]float64{"memory": {50, 0, 0}}, PressureFull: map[string][3]float64{"memory": {6, 0, 0}}}, HealthCritical},
	}
	for _, tc := range cases {
		if got := tc.s.Health(); got != tc.want {
			t.Errorf("%s: Health() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProcessTableSeesThisProcessAndMeasuresCPU(t *testing.T) {
	table, err := NewProcessTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	burn := exec.Command("sh", "-c", "while :; do :; done")
	if err := burn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { burn.Process.Kill(); burn.Wait() }()
	p, err := table.Get(uint32(burn.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if p.Comm != "sh" || p.PPID != uint32(os.Getpid()) || p.UID != uint32(os.Getuid()) {
		t.Errorf("got comm %q ppid %d uid %d", p.Comm, p.PPID, p.UID)
	}
	if p.CPUPercent < 30 {
		t.Errorf("a busy loop shows %.1f%% CPU", p.CPUPercent)
	}
	if !strings.HasPrefix(p.Cmdline, "sh -c while") {
		t.Errorf("cmdline %q", p.Cmdline)
	}
	list, err := table.List(ListOptions{SortBy: "cpu", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].PID != uint32(burn.Process.Pid) {
		t.Errorf("busiest process is not the busy loop: %+v", list)
	}
}

func TestProcessTableNamesMissingPids(t *testing.T) {
	table, _ := NewProcessTable("/proc")
	for _, pid := range []uint32{0, 0x7ffffff0} {
		if _, err := table.Get(pid); !errors.Is(err, ErrNoSuchProcess) {
			t.Errorf("Get(%d) = %v, want ErrNoSuchProcess", pid, err)
		}
	}
}

func TestManagerKeepsWhySkippedAndHonoursForcedVariant(t *testing.T) {
	reg := Registration{Name: "test-ladder", Variants: []Variant{
		{Name: "best", Start: func(context.Context, *Env) (Running, error) {
			return nil, &Unavailable{Reason: "not on this kernel", Fix: "upgrade"}
		}},
		{Name: "good", Start: func(context.Context, *Env) (Running, error) { return fakeRunning{}, nil }},
		{Name: "fallback", Start: func(context.Context, *Env) (Running, error) { return fakeRunning{}, nil }},
	}}
	m := &Manager{env: &Env{Log: discardLog()}}
	a := &active{reg: reg, enabled: true}
	m.start(context.Background(), a)
	if a.variant != "good" || len(a.skipped) != 1 || !strings.Contains(a.skipped[0], "best: not on this kernel") {
		t.Errorf("variant %q skipped %q", a.variant, a.skipped)
	}
	m.env.ForceVariant = map[string]string{"test-ladder": "fallback"}
	a = &active{reg: reg, enabled: true}
	m.start(context.Background(), a)
	if a.variant != "fallback" || len(a.skipped) != 2 || !strings.Contains(a.skipped[1], "forced") {
		t.Errorf("forced: variant %q skipped %q", a.variant, a.skipped)
	}
	m.env.ForceVariant = map[string]string{"test-ladder": "best"}
	a = &active{reg: reg, enabled: true}
	m.start(context.Background(), a)
	if a.run != nil || a.reason != "not on this kernel" || a.fix != "upgrade" {
		t.Errorf("unavailable: run %v reason %q fix %q", a.run, a.reason, a.fix)
	}
}

type fakeRunning struct{}

func (fakeRunning) Counters() map[string]uint64 { return nil }
func (fakeRunning) Close() error                { return nil }

func TestFindCgroupResolvesIdsToPaths(t *testing.T) {
	root := t.TempDir()
	dir := root + "/a/b"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if got := findCgroup(root, st.Sys().(*syscall.Stat_t).Ino); got != "/a/b" {
		t.Errorf("findCgroup = %q, want /a/b", got)
	}
	if got := findCgroup(root, 1); got != "" {
		t.Errorf("findCgroup of a missing id = %q", got)
	}
}
