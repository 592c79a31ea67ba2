package testbus

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Desktop is a throw-away desktop session for the agent's tests and for
// "make screenshot": a private session bus, an Xvfb display and a real
// notification server (dunst) on them.
type Desktop struct {
	Dir            string
	SessionAddress string // for DBUS_SESSION_BUS_ADDRESS
	Display        string // for DISPLAY
	procs          []*exec.Cmd
}

// StartDesktop starts the session bus, Xvfb and dunst under dir.
func StartDesktop(dir string) (*Desktop, error) {
	d := &Desktop{Dir: dir}
	sock := filepath.Join(dir, "session.sock")
	d.SessionAddress = "unix:path=" + sock
	if err := d.start(sock, "dbus-daemon", "--session", "--nofork", "--nopidfile", "--address="+d.SessionAddress); err != nil {
		return nil, err
	}
	// A display number nobody uses: the lock file tells.
	n := 90 + os.Getpid()%400
	for ; n < 1000; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); os.IsNotExist(err) {
			break
		}
	}
	d.Display = ":" + strconv.Itoa(n)
	if err := d.start(fmt.Sprintf("/tmp/.X11-unix/X%d", n), "Xvfb", d.Display, "-nolisten", "tcp", "-screen", "0", "1024x600x24"); err != nil {
		d.Close()
		return nil, err
	}
	// dunst's context menu goes through "dmenu": this one picks the first
	// line holding the text in dmenu.pick (Desktop.Invoke).
	dmenu := filepath.Join(dir, "dmenu.sh")
	if err := os.WriteFile(dmenu, []byte("#!/bin/sh\ntee -a "+filepath.Join(dir, "dmenu.in")+" | grep -m1 -F -f "+filepath.Join(dir, "dmenu.pick")+"\n"), 0o755); err != nil {
		d.Close()
		return nil, err
	}
	rc := filepath.Join(dir, "dunstrc")
	// Long timeouts: tests decide when notifications go.
	if err := os.WriteFile(rc, []byte("[global]\n    dmenu = "+dmenu+"\n    markup = full\n    history_length = 100\n    font = Monospace 10\n    width = 420\n    offset = 10x40\n[urgency_low]\n    timeout = 600\n[urgency_normal]\n    timeout = 600\n[urgency_critical]\n    timeout = 0\n"), 0o644); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.start("", "dunst", "-config", rc); err != nil {
		d.Close()
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out, err := d.Dunstctl("is-paused"); err == nil && len(out) > 0 {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.Close()
			return nil, fmt.Errorf("dunst did not come up on the session bus (see %s)", dir)
		}
	}
}

// Env is the environment of a program in this session.
func (d *Desktop) Env() []string {
	return append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+d.SessionAddress, "DISPLAY="+d.Display)
}

// start runs a program with its log in Dir and waits for ready (a path) to exist.
func (d *Desktop) start(ready, name string, args ...string) error {
	logf, err := os.Create(filepath.Join(d.Dir, filepath.Base(name)+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = d.Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	d.procs = append(d.procs, cmd)
	for deadline := time.Now().Add(10 * time.Second); ready != ""; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not create %s", name, ready)
		}
	}
	return nil
}

// Dunstctl runs dunstctl in the session.
func (d *Desktop) Dunstctl(args ...string) ([]byte, error) {
	cmd := exec.Command("dunstctl", args...)
	cmd.Env = d.Env()
	return cmd.Output()
}

// Invoke clicks, through dunst's context menu, the first action whose menu
// line holds text (dunst then sends ActionInvoked, as for a user's click).
func (d *Desktop) Invoke(text string) error {
	if err := os.WriteFile(filepath.Join(d.Dir, "dmenu.pick"), []byte(text+"\n"), 0o644); err != nil {
		return err
	}
	_, err := d.Dunstctl("context")
	return err
}

// Close stops dunst, Xvfb and the session bus.
func (d *Desktop) Close() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func(c *exec.Cmd) { c.Wait(); close(done) }(d.procs[i])
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			d.procs[i].Process.Kill()
		}
	}
	d.procs = nil
}

// DesktopForTest starts a desktop session for one test.
func DesktopForTest(t testing.TB) *Desktop {
	t.Helper()
	for _, tool := range []string{"dbus-daemon", "Xvfb", "dunst", "dunstctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs dbus, xvfb and dunst)", tool)
		}
	}
	d, err := StartDesktop(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(d.Dir, "dunst.log")); err == nil && len(log) > 0 {
				t.Logf("dunst log:\n%s", log)
			}
		}
		d.Close()
	})
	return d
}
