// Package testbus starts a private, system-like D-Bus for tests and for
// "make run": a real dbus-daemon whose configuration includes the repo's
// own bus policy and polkit's, and a real polkitd on it, running in a
// private mount namespace where the repo's polkit actions and the test's
// .rules files are bind-mounted over the system's. Nothing on the host is
// changed, so it works beside a real system bus.
package testbus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// Options configures a private bus.
type Options struct {
	// RepoRoot holds packaging/dbus and packaging/polkit (default: found by
	// walking up from the working directory to go.mod).
	RepoRoot string
	// Polkit starts a real polkitd on the bus (needs root).
	Polkit bool
	// Log receives the output of dbus-daemon and polkitd (default: a file
	// in Dir).
	Log io.Writer
	// Policy is extra <policy> XML for the bus configuration, e.g. to let
	// a test own a name that stands in for a service that cannot run here.
	Policy string
}

// Bus is a running private bus.
type Bus struct {
	Dir      string // 0755 directory holding the socket, configs and logs
	Address  string // for DBUS_SYSTEM_BUS_ADDRESS
	RulesDir string // polkitd sees it as /etc/polkit-1/rules.d

	daemon  *exec.Cmd
	polkitd *exec.Cmd
	logFile *os.File
}

// Start launches dbus-daemon (and polkitd when asked) and waits until both
// answer.
func Start(opts Options) (*Bus, error) {
	if opts.RepoRoot == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		opts.RepoRoot = root
	}
	dir, err := os.MkdirTemp("", "npllm-bus-")
	if err != nil {
		return nil, err
	}
	// Unprivileged test users must reach the socket.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	b := &Bus{Dir: dir, RulesDir: filepath.Join(dir, "rules.d")}
	if err := os.Mkdir(b.RulesDir, 0o755); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		f, err := os.Create(filepath.Join(dir, "bus.log"))
		if err != nil {
			return nil, err
		}
		b.logFile, opts.Log = f, f
	}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if err := b.startDaemon(opts); err != nil {
		return nil, err
	}
	if opts.Polkit {
		if err := b.startPolkit(opts); err != nil {
			return nil, err
		}
	}
	ok = true
	return b, nil
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <!-- The default policy of Debian's /usr/share/dbus-1/system.conf. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  %s
  <include>%s</include>
  <include ignore_missing="yes">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
</busconfig>
`

func (b *Bus) startDaemon(opts Options) error {
	sock := filepath.Join(b.Dir, "system_bus_socket")
	policy := filepath.Join(opts.RepoRoot, "packaging", "dbus", "org.npllm.Assistant.conf")
	if _, err := os.Stat(policy); err != nil {
		return fmt.Errorf("bus policy: %w", err)
	}
	conf := filepath.Join(b.Dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, sock, opts.Policy, policy)), 0o644); err != nil {
		return err
	}
	b.daemon = exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	b.daemon.Stderr = opts.Log
	out, err := b.daemon.StdoutPipe()
	if err != nil {
		return err
	}
	b.daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := b.daemon.Start(); err != nil {
		return fmt.Errorf("start dbus-daemon (apt-get install dbus): %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			return fmt.Errorf("dbus-daemon exited without an address; see %s", filepath.Join(b.Dir, "bus.log"))
		}
		b.Address = "unix:path=" + sock
	case <-time.After(10 * time.Second):
		return errors.New("dbus-daemon did not print its address within 10 s")
	}
	return nil
}

// startPolkit runs polkitd (started as root, it switches to the polkitd
// user, the only one the polkit bus policy lets own
// org.freedesktop.PolicyKit1) in a mount namespace where
// /usr/share/polkit-1/actions holds the system's actions plus the repo's
// policy, and /etc/polkit-1/rules.d is b.RulesDir.
func (b *Bus) startPolkit(opts Options) error {
	if os.Geteuid() != 0 {
		return errors.New("polkitd needs root to start (mount namespace, polkitd user)")
	}
	polkitd := "/usr/lib/polkit-1/polkitd"
	if _, err := os.Stat(polkitd); err != nil {
		return fmt.Errorf("polkitd not found (apt-get install polkitd): %w", err)
	}
	actions := filepath.Join(b.Dir, "actions")
	if err := os.Mkdir(actions, 0o755); err != nil {
		return err
	}
	sys, _ := filepath.Glob("/usr/share/polkit-1/actions/*.policy")
	ours, _ := filepath.Glob(filepath.Join(opts.RepoRoot, "packaging", "polkit", "*.policy"))
	for _, src := range append(sys, ours...) {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(actions, filepath.Base(src)), data, 0o644); err != nil {
			return err
		}
	}
	script := `set -e
mount --bind "$1" /usr/share/polkit-1/actions
mount --bind "$2" /etc/polkit-1/rules.d
exec "$3" --no-debug`
	b.polkitd = exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", actions, b.RulesDir, polkitd)
	b.polkitd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	b.polkitd.Stdout, b.polkitd.Stderr = opts.Log, opts.Log
	b.polkitd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := b.polkitd.Start(); err != nil {
		return fmt.Errorf("start polkitd: %w", err)
	}
	conn, err := b.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := WaitForName(conn, "org.freedesktop.PolicyKit1", 15*time.Second); err != nil {
		return fmt.Errorf("polkitd: %w; see %s", err, filepath.Join(b.Dir, "bus.log"))
	}
	return nil
}

// Connect opens a new connection to the bus as the calling process.
func (b *Bus) Connect() (*dbus.Conn, error) {
	return dbus.Connect(b.Address)
}

// WaitForName polls until name has an owner.
func WaitForName(conn *dbus.Conn, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var has bool
		err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
		if err == nil && has {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear on the bus within %s", name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WriteRule installs a polkit .rules file and waits until polkitd has
// reloaded (it emits Authority.Changed).
func (b *Bus) WriteRule(name, javascript string) error {
	return b.changeRules(func() error {
		return os.WriteFile(filepath.Join(b.RulesDir, name), []byte(javascript), 0o644)
	})
}

// RemoveRule deletes a .rules file and waits for the reload.
func (b *Bus) RemoveRule(name string) error {
	return b.changeRules(func() error { return os.Remove(filepath.Join(b.RulesDir, name)) })
}

func (b *Bus) changeRules(change func() error) error {
	conn, err := b.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.PolicyKit1.Authority"), dbus.WithMatchMember("Changed")); err != nil {
		return err
	}
	ch := make(chan *dbus.Signal, 4)
	conn.Signal(ch)
	if err := change(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		select {
		case sig := <-ch:
			if sig.Name == "org.freedesktop.PolicyKit1.Authority.Changed" {
				return nil
			}
		case <-ctx.Done():
			return errors.New("polkitd did not reload its rules within 10 s")
		}
	}
}

// Close stops polkitd and dbus-daemon and removes Dir.
func (b *Bus) Close() {
	for _, c := range []*exec.Cmd{b.polkitd, b.daemon} {
		if c != nil && c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				c.Process.Kill()
				<-done
			}
		}
	}
	if b.logFile != nil {
		b.logFile.Close()
	}
	os.RemoveAll(b.Dir)
}
