package sensors

import (
	"context"
	"errors"
	"log/slog"
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

func TestMountTableFixture(t *testing.T) {
	mounts := filepath.Join(fixtureProc, "self", "mounts")
	// Pseudo (sysfs, proc, squashfs), read-only and repeated mounts are
	// left out, and network ones unless asked for.
	want := []mountEntry{
		{"/", "/dev/vda1", "ext4"},
		{"/media/alice/my disk", "/dev/sdb1", "ext4"},
		{"/run", "tmpfs", "tmpfs"},
	}
	got, err := (&disksSensor{mounts: mounts}).mountTable()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("mount table: %v\n got %q\nwant %q", err, got, want)
	}
	want = append(want, mountEntry{`/mnt/back\slash`, "server:/export\ttab", "nfs4"})
	got, err = (&disksSensor{mounts: mounts, opts: DiskOptions{IncludeNetwork: true}}).mountTable()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("with network file systems: %v\n got %q\nwant %q", err, got, want)
	}
}

// A scan statfs-es the mounts of a table: a real directory whose name has
// a space, "/" once although listed twice, and nothing for a mount point
// that does not exist.
func TestDisksScanOfFixtureTable(t *testing.T) {
	root := t.TempDir()
	disk := filepath.Join(root, "my disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	table := "/dev/vda1 / ext4 rw 0 0\n" +
		"/dev/sdb1 " + strings.ReplaceAll(disk, " ", `\040`) + " ext4 rw,nosuid 0 0\n" +
		"/dev/vda1 / ext4 rw 0 0\n" +
		"/dev/sdc1 /nonexistent\\040npllm ext4 rw 0 0\n"
	mounts := filepath.Join(root, "mounts")
	if err := os.WriteFile(mounts, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &disksSensor{mounts: mounts, log: slog.Default(), pending: map[string]chan statfsResult{}, hung: map[string]bool{}}
	disks, err := d.scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range disks {
		got = append(got, u.Mount)
		if u.Unknown || u.TotalBytes == 0 || u.UsedPercent < 0 || u.UsedPercent > 100 || u.FSType != "ext4" {
			t.Errorf("%+v", u)
		}
	}
	if want := []string{"/", disk}; !slices.Equal(got, want) {
		t.Errorf("mounts %q, want %q", got, want)
	}
	if len(disks) == 2 && disks[1].Device != "/dev/sdb1" {
		t.Errorf("device %q", disks[1].Device)
	}
}
