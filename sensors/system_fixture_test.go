package sensors

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// Fixture tests of the system, pressure and disks sensors (no root).

func TestSystemSensorReadsFixture(t *testing.T) {
	r, err := startSystem(context.Background(), &Env{ProcRoot: fixtureProc})
	if err != nil {
		t.Fatal(err)
	}
	s := r.(*systemSensor)
	var snap Snapshot
	if err := s.Sample(&snap); err != nil {
		t.Fatal(err)
	}
	const kb = 1024
	if snap.Load != [3]float64{0.52, 0.41, 0.30} {
		t.Errorf("load %v", snap.Load)
	}
	if snap.MemoryTotal != 8052092*kb || snap.MemoryAvailable != 3145728*kb || snap.SwapTotal != 2097148*kb || snap.SwapFree != 1048576*kb {
		t.Errorf("memory: %+v", snap)
	}
	if snap.CPUUsage != 0 {
		t.Errorf("CPU %v%% from one unchanged /proc/stat", snap.CPUUsage)
	}
	// 5 s later: busy 1500 → 1900 ticks of 2000 total more, idle+iowait
	// 8500 → 8600: (19-15)/(105-100) = 80%.
	if s.fs, err = procfs.NewFS("testdata/proc-later"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sample(&snap); err != nil {
		t.Fatal(err)
	}
	if math.Abs(snap.CPUUsage-80) > 1e-9 {
		t.Errorf("CPU %v%%, want 80%%", snap.CPUUsage)
	}
}

func TestPressureSensorReadsFixture(t *testing.T) {
	r, err := startPressure(context.Background(), &Env{ProcRoot: fixtureProc})
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := r.(Sampler).Sample(&snap); err != nil {
		t.Fatal(err)
	}
	some := map[string][3]float64{"cpu": {1.5, 0.75, 0.25}, "memory": {12.34, 5.67, 1}, "io": {0, 0.1, 0.2}}
	// The cpu file is a pre-5.13 kernel's: no "full" line.
	full := map[string][3]float64{"memory": {6.5, 2, 0.5}, "io": {0, 0.05, 0.1}}
	if !mapsEqual(snap.Pressure, some) || !mapsEqual(snap.PressureFull, full) {
		t.Errorf("some %v full %v; want %v %v", snap.Pressure, snap.PressureFull, some, full)
	}

	// No /proc/pressure (kernel without PSI): a named reason and its fix.
	_, err = startPressure(context.Background(), &Env{ProcRoot: t.TempDir()})
	var u *Unavailable
	if !errors.As(err, &u) || !strings.Contains(u.Fix, "psi=1") {
		t.Errorf("without /proc/pressure: %v", err)
	}
}

func mapsEqual(a, b map[string][3]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestReadMountsFixture(t *testing.T) {
	f, err := os.Open(filepath.Join(fixtureProc, "self", "mounts"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := readMounts(f)
	if err != nil {
		t.Fatal(err)
	}
	// Pseudo (sysfs, proc, squashfs) and read-only mounts are left out;
	// the duplicate "/" stays for Sample, which statfs-es each path once.
	want := []mountEntry{
		{"/dev/vda1", "/", "ext4"},
		{"/dev/sdb1", "/media/alice/my disk", "ext4"},
		{"tmpfs", "/run", "tmpfs"},
		{"/dev/vda1", "/", "ext4"},
		{"server:/export\ttab", `/mnt/back\slash`, "nfs4"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("readMounts:\n got %q\nwant %q", got, want)
	}
}

// Sample statfs-es the mounts of a table: a real directory whose name has
// a space, "/" once although listed twice, and nothing for a mount point
// that does not exist.
func TestDisksSampleOfFixtureTable(t *testing.T) {
	root := t.TempDir()
	disk := filepath.Join(root, "my disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	table := "/dev/vda1 / ext4 rw 0 0\n" +
		"/dev/sdb1 " + strings.ReplaceAll(disk, " ", `\040`) + " ext4 rw,nosuid 0 0\n" +
		"/dev/vda1 / ext4 rw 0 0\n" +
		"/dev/sdc1 /nonexistent\\040npllm ext4 rw 0 0\n"
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "self", "mounts"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := startDisks(context.Background(), &Env{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := r.(Sampler).Sample(&snap); err != nil {
		t.Fatal(err)
	}
	var mounts []string
	for _, d := range snap.Disks {
		mounts = append(mounts, d.Mount)
		if d.TotalBytes == 0 || d.UsedPercent < 0 || d.UsedPercent > 100 || d.FSType != "ext4" {
			t.Errorf("%+v", d)
		}
	}
	if want := []string{"/", disk}; !slices.Equal(mounts, want) {
		t.Errorf("mounts %q, want %q", mounts, want)
	}
	if len(snap.Disks) == 2 && snap.Disks[1].Device != "/dev/sdb1" {
		t.Errorf("device %q", snap.Disks[1].Device)
	}
}
