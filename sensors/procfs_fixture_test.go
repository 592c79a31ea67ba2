package sensors

import (
	"errors"
	"os"
	"slices"
	"testing"
)

// Fixture tests of the process table's parsers (no root): testdata/proc
// holds, node_exporter style, a user's process whose comm is "(a) (b)"
// (cgroup v2), a service on a cgroup v1 machine, kthreadd and a kernel
// thread, and a damaged process directory (stat cut short).
const fixtureProc = "testdata/proc"

const (
	pidParens  = 4194301
	pidCron    = 4194302
	pidKworker = 4194303
	pidDamaged = 4194300
)

func TestProcessTableParsesFixtureProcess(t *testing.T) {
	table, err := NewProcessTable(fixtureProc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := table.Get(pidParens)
	if err != nil {
		t.Fatal(err)
	}
	page := uint64(os.Getpagesize())
	want := Process{
		PID: pidParens, PPID: 1, UID: 1000, User: UserName(1000), Comm: "(a) (b)", State: "S",
		StartTime: 123456, Nice: 5, Threads: 3, RSSBytes: 2560 * page,
		IOReadBytes: 1048576, IOWriteBytes: 4096,
		Cgroup:  "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope",
		Unit:    "app-firefox-1234.scope",
		Cmdline: "/opt/a b/run --name (a) (b)",
		// utime+stime 300 ticks, unchanged in the second sample: 0%.
		CPUPercent: 0, cpuTicks: 300,
	}
	if p != want {
		t.Errorf("Get(%d):\n got %+v\nwant %+v", pidParens, p, want)
	}

	cron, err := table.Get(pidCron)
	if err != nil {
		t.Fatal(err)
	}
	if cron.Comm != "cron" || cron.UID != 0 || cron.Cgroup != "/system.slice/cron.service" || cron.Unit != "cron.service" ||
		cron.RSSBytes != 8192*page || cron.IOWriteBytes != 123456789 || cron.Cmdline != "/usr/sbin/cron -f" || cron.KernelThread {
		t.Errorf("cron (cgroup v1): %+v", cron)
	}
	if k, err := table.Get(pidKworker); err != nil || !k.KernelThread || k.Comm != "kworker/0:1-events" || k.State != "I" {
		t.Errorf("kernel thread: %+v, %v", k, err)
	}
	if _, err := table.Get(pidDamaged); err == nil {
		t.Error("a stat cut short parsed without error")
	}
	if _, err := table.Get(4194304); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("absent pid: %v, want ErrNoSuchProcess", err)
	}
}

func TestProcessTableListsFixtureInOrder(t *testing.T) {
	table, err := NewProcessTable(fixtureProc)
	if err != nil {
		t.Fatal(err)
	}
	pids := func(opts ListOptions) []uint32 {
		t.Helper()
		procs, err := table.List(opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint32
		for _, p := range procs {
			out = append(out, p.PID)
		}
		return out
	}
	// The damaged directory is left out; ties sort by pid.
	if got, want := pids(ListOptions{SortBy: "memory"}), []uint32{pidCron, pidParens, 2, pidKworker}; !slices.Equal(got, want) {
		t.Errorf("by memory: %v, want %v", got, want)
	}
	if got, want := pids(ListOptions{SortBy: "io", Limit: 2}), []uint32{pidCron, pidParens}; !slices.Equal(got, want) {
		t.Errorf("by io, 2: %v, want %v", got, want)
	}
	uid := uint32(1000)
	if got, want := pids(ListOptions{SortBy: "memory", UID: &uid}), []uint32{pidParens}; !slices.Equal(got, want) {
		t.Errorf("uid 1000: %v, want %v", got, want)
	}
	if up := table.uptime(); up != 12345.67 {
		t.Errorf("uptime %v, want 12345.67", up)
	}
}

func TestReadIdentityFromFixture(t *testing.T) {
	id, err := ReadIdentity(fixtureProc, pidParens)
	want := Identity{PID: pidParens, PPID: 1, UID: 1000, StartTime: 123456, Comm: "(a) (b)"}
	if err != nil || id != want {
		t.Errorf("ReadIdentity: %+v, %v; want %+v", id, err, want)
	}
	if id, err := ReadIdentity(fixtureProc, pidKworker); err != nil || !id.KernelThread || id.PPID != 2 {
		t.Errorf("kernel thread: %+v, %v", id, err)
	}
	if _, err := ReadIdentity(fixtureProc, pidDamaged); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("damaged stat: %v, want ErrNoSuchProcess", err)
	}
}

// The procfs process sensor's scan: user processes only, keyed by start time.
func TestProcfsScanOfFixture(t *testing.T) {
	s := &processProcfs{env: &Env{ProcRoot: fixtureProc}}
	known, err := s.scan()
	if err != nil {
		t.Fatal(err)
	}
	want := map[procKey]string{{pidParens, 123456}: "(a) (b)", {pidCron, 2000}: "cron"}
	if len(known) != len(want) {
		t.Errorf("scan found %v, want %v", known, want)
	}
	for k, comm := range want {
		if known[k].Comm != comm || known[k].PID != k.pid {
			t.Errorf("scan[%v] = %+v, want comm %q", k, known[k], comm)
		}
	}
}

func TestReadCgroupFixtures(t *testing.T) {
	cases := []struct{ file, cgroup, unit string }{
		{"v2", "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope", "app-firefox-1234.scope"},
		{"v1", "/system.slice/cron.service", "cron.service"},               // the first hierarchy
		{"hybrid", "/system.slice/docker-1f2e.scope", "docker-1f2e.scope"}, // the unified line wins
		{"root", "/", ""},
		{"damaged", "", ""},
		{"absent", "", ""},
	}
	for _, c := range cases {
		cg, unit := readCgroup("testdata/cgroup/" + c.file)
		if cg != c.cgroup || unit != c.unit {
			t.Errorf("%s: (%q, %q), want (%q, %q)", c.file, cg, unit, c.cgroup, c.unit)
		}
	}
}
