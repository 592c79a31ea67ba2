package testbus

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// Daemon is an npllmd started on a private bus.
type Daemon struct {
	Cmd    *exec.Cmd
	LogOut *os.File
	done   chan error
}

// StartDaemon runs the npllmd binary on the bus and waits until it owns
// org.npllm.Assistant. Its log goes to Dir/npllmd-<n>.log; its journal to
// Dir/state unless args name a --state-dir; its thresholds come from
// Dir/npllmd.toml (absent: the defaults) unless args name a --config, so
// the host's /etc/npllm never leaks into a test.
func (b *Bus) StartDaemon(binary string, args ...string) (*Daemon, error) {
	logf, err := os.CreateTemp(b.Dir, "npllmd-*.log")
	if err != nil {
		return nil, err
	}
	hasState, hasConfig := false, false
	for _, a := range args {
		hasState = hasState || strings.HasPrefix(a, "--state-dir")
		hasConfig = hasConfig || strings.HasPrefix(a, "--config")
	}
	if !hasState {
		args = append([]string{"--state-dir=" + filepath.Join(b.Dir, "state")}, args...)
	}
	if !hasConfig {
		args = append([]string{"--config=" + filepath.Join(b.Dir, "npllmd.toml")}, args...)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	d := &Daemon{Cmd: cmd, LogOut: logf, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	conn, err := b.Connect()
	if err != nil {
		d.Kill()
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var owner string
		if conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, "org.npllm.Assistant").Store(&owner) == nil && d.ownedBy(conn, owner) {
			return d, nil
		}
		select {
		case err := <-d.done:
			d.done <- err
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("npllmd exited before owning the name (%v):\n%s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Kill()
			return nil, errors.New("npllmd did not own org.npllm.Assistant within 15 s")
		}
	}
}

// ownedBy reports whether the name's owner is this daemon's process (and
// not, say, an earlier daemon that is still shutting down).
func (d *Daemon) ownedBy(conn *dbus.Conn, owner string) bool {
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, owner).Store(&pid); err != nil {
		return false
	}
	return int(pid) == d.Cmd.Process.Pid
}

// Wait waits for the daemon to exit and returns its exit error.
func (d *Daemon) Wait(timeout time.Duration) (error, bool) {
	select {
	case err := <-d.done:
		d.done <- err
		return err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Stop sends SIGTERM and waits; it kills after 5 s.
func (d *Daemon) Stop() error {
	d.Cmd.Process.Signal(syscall.SIGTERM)
	if err, ok := d.Wait(5 * time.Second); ok {
		return err
	}
	d.Kill()
	return errors.New("npllmd did not exit within 5 s of SIGTERM")
}

// Kill sends SIGKILL and reaps the process.
func (d *Daemon) Kill() {
	d.Cmd.Process.Kill()
	d.Wait(5 * time.Second)
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogOut.Name())
	return string(b)
}
