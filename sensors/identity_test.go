package sensors

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// The hand parser agrees with the procfs library, including a comm that
// holds ") (" and spaces, pid 1 and kthreadd.
func TestReadIdentityAgreesWithProcfs(t *testing.T) {
	odd := filepath.Join(t.TempDir(), "x) (y z")
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(odd, "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	time.Sleep(100 * time.Millisecond) // past exec
	fs, _ := procfs.NewFS("/proc")
	for _, pid := range []int{child.Process.Pid, os.Getpid(), 1, 2} {
		got, err := ReadIdentity("/proc", uint32(pid))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		p, _ := fs.Proc(pid)
		st, err := p.Stat()
		if err != nil {
			t.Fatal(err)
		}
		status, err := p.NewStatus()
		if err != nil {
			t.Fatal(err)
		}
		want := Identity{PID: uint32(pid), PPID: uint32(st.PPID), UID: uint32(status.UIDs[0]), StartTime: st.Starttime,
			Comm: st.Comm, KernelThread: isKernelThread(st.PID, st.PPID)}
		if got != want {
			t.Errorf("pid %d: got %+v, want %+v", pid, got, want)
		}
	}
	if id, _ := ReadIdentity("/proc", uint32(child.Process.Pid)); id.Comm != "x) (y z" {
		t.Errorf("comm %q", id.Comm)
	}
	if _, err := ReadIdentity("/proc", 0x7ffffff0); err == nil {
		t.Error("a missing pid has an identity")
	}
	for _, bad := range []string{"", "12 (x", "12 (x) S 1 2", "12 (x) S notanumber 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"} {
		if _, err := parseStatIdentity([]byte(bad)); err == nil {
			t.Errorf("malformed stat %q parsed", bad)
		}
	}
}

func BenchmarkReadIdentity(b *testing.B) {
	pid := uint32(os.Getpid())
	for range b.N {
		if _, err := ReadIdentity("/proc", pid); err != nil {
			b.Fatal(err)
		}
	}
}

// The former implementation (procfs library), for the ratio in one run.
func BenchmarkReadIdentityProcfsLibrary(b *testing.B) {
	pid := os.Getpid()
	for range b.N {
		fs, err := procfs.NewFS("/proc")
		if err != nil {
			b.Fatal(err)
		}
		p, err := fs.Proc(pid)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Stat(); err != nil {
			b.Fatal(err)
		}
		if _, err := p.NewStatus(); err != nil {
			b.Fatal(err)
		}
	}
}
