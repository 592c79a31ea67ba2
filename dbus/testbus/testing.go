package testbus

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Privileged skips a test that needs root, or fails it when
// NPLLM_REQUIRE_PRIVILEGED=1 (CI): there a skip would hide a missing test.
func Privileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NPLLM_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("this test needs root, and NPLLM_REQUIRE_PRIVILEGED=1 forbids skipping it")
	}
	t.Skip("needs root (set NPLLM_REQUIRE_PRIVILEGED=1 to make this a failure)")
}

// ForTest starts a private bus with a real polkitd for one test and stops
// it at cleanup, printing the bus and polkitd log if the test failed.
func ForTest(t testing.TB) *Bus {
	t.Helper()
	Privileged(t)
	b, err := Start(Options{Polkit: true})
	if err != nil {
		t.Fatalf("private bus: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(b.Dir, "bus.log")); err == nil {
				t.Logf("bus and polkitd log:\n%s", log)
			}
		}
		b.Close()
	})
	return b
}

// DaemonForTest starts npllmd on the bus for one test and stops it at
// cleanup, printing its log if the test failed.
func (b *Bus) DaemonForTest(t testing.TB, binary string, args ...string) *Daemon {
	t.Helper()
	d, err := b.StartDaemon(binary, args...)
	if err != nil {
		t.Fatalf("npllmd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("npllmd log:\n%s", d.Log())
		}
		d.Kill()
	})
	return d
}

// BuildBinaries builds the npllm commands into a fresh directory that every
// user can read, so tests can run them as unprivileged users. It also copies
// the running test binary there as "self", for helper processes.
func BuildBinaries(pkgs ...string) (dir string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err = os.MkdirTemp("", "npllm-bin-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %v: %v\n%s", pkgs, err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := copyFile(self, filepath.Join(dir, "self"), 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RunWithBinaries is a TestMain body: with root (or when privileged tests
// are required) it builds pkgs into *dir (see BuildBinaries), runs the
// tests, removes the binaries and exits with the tests' status.
func RunWithBinaries(m *testing.M, dir *string, pkgs ...string) {
	if os.Geteuid() == 0 || os.Getenv("NPLLM_REQUIRE_PRIVILEGED") == "1" {
		d, err := BuildBinaries(pkgs...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		*dir = d
	}
	code := m.Run()
	if *dir != "" {
		os.RemoveAll(*dir)
	}
	os.Exit(code)
}
