package packaging_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/systemd/msgid"
)

// End to end under real systemd: the freshly built .deb is installed into a
// throw-away container booted from this machine's own root (systemd-nspawn
// with overlays, so the host is untouched) and exercised as an admin would.

type container struct {
	cmd  *exec.Cmd
	init int
	log  string
	pkgs string
}

func bootContainer(t *testing.T, pkgDir string) *container {
	t.Helper()
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Fatal("systemd-nspawn is not installed (.ci/run installs systemd-container)")
	}
	c := &container{log: filepath.Join(t.TempDir(), "nspawn.log"), pkgs: pkgDir}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command("systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", "/", "--volatile=yes",
		"--overlay=/usr::/usr", "--overlay=/etc::/etc", "--overlay=/var::/var", "--bind-ro="+pkgDir+":/mnt/pkg",
		// nspawn gives containers no /dev/kmsg; a real machine has one.
		"--bind-ro=/dev/kmsg",
		"--capability=all", "--system-call-filter=bpf perf_event_open", "-b", "--console=pipe")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// No Pdeathsig: nspawn must get to stop its container (stop does it).
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	// The container's init is nspawn's child once it has become systemd
	// (before, the child is still nspawn setting things up).
	for deadline := time.Now().Add(30 * time.Second); c.init == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the container's systemd did not start:\n%s", c.output())
		}
		out, _ := exec.Command("pgrep", "-P", fmt.Sprint(c.cmd.Process.Pid)).Output()
		var pid int
		fmt.Sscan(string(out), &pid)
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
			c.init = pid
		}
	}
	// Until its systemd has a bus, is-system-running cannot even ask.
	var state string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		out, _ := c.run("timeout", "60", "systemctl", "is-system-running", "--wait")
		if state = strings.TrimSpace(out); state == "running" || state == "degraded" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("container system state %q:\n%s", state, c.output())
		}
	}
}

func (c *container) output() string {
	data, _ := os.ReadFile(c.log)
	return string(data)
}

// run runs a command inside the container.
func (c *container) run(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(c.init), "-a"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *container) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

// restartedFrom waits until unit runs again under another main pid and is
// ready (a process stopped before READY=1 has no watchdog armed yet).
func (c *container) restartedFrom(t *testing.T, unit, before string, timeout time.Duration) {
	t.Helper()
	c.waitFor(t, unit+" restarted", timeout, func() string {
		pid := c.mainPID(t, unit)
		state, _ := c.run("systemctl", "show", "-p", "ActiveState", "--value", unit)
		if pid == before || pid == "0" || strings.TrimSpace(state) != "active" {
			return "MainPID " + pid + ", " + state
		}
		return ""
	})
}

func (c *container) mainPID(t *testing.T, unit string) string {
	return strings.TrimSpace(c.must(t, "systemctl", "show", "-p", "MainPID", "--value", unit))
}

// waitFor polls f until it returns "" (done) or the deadline passes.
func (c *container) waitFor(t *testing.T, what string, timeout time.Duration, f func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(250 * time.Millisecond) {
		if last = f(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, last)
		}
	}
}

func (c *container) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	if c.init != 0 {
		c.run("systemctl", "poweroff")
	}
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		// Killing the container's init ends everything in it; killing
		// only nspawn would leave its systemd running on the host.
		if c.init != 0 {
			syscall.Kill(c.init, syscall.SIGKILL)
		}
		c.cmd.Process.Kill()
		<-done
	}
}

// buildDeb runs "make deb" and returns the directory holding the package.
func buildDeb(t *testing.T) string {
	t.Helper()
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-C", root, "deb").CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(root, "dist", "npllm_*_amd64.deb"))
	if len(debs) == 0 {
		t.Fatal("make deb made no package")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	newest := debs[0]
	for _, d := range debs {
		a, _ := os.Stat(d)
		b, _ := os.Stat(newest)
		if a.ModTime().After(b.ModTime()) {
			newest = d
		}
	}
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "npllm.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDebUnderRealSystemd(t *testing.T) {
	testbus.Privileged(t)
	pkgs := buildDeb(t)
	t.Run("lintian", func(t *testing.T) {
		if _, err := exec.LookPath("lintian"); err != nil {
			t.Fatal("lintian is not installed (.ci/run installs it)")
		}
		out, err := exec.Command("lintian", "--fail-on", "error,warning", filepath.Join(pkgs, "npllm.deb")).CombinedOutput()
		if err != nil {
			t.Errorf("lintian: %v\n%s", err, out)
		}
	})
	c := bootContainer(t, pkgs)

	// This machine's image forbids service starts in package scripts (a
	// Docker-style /usr/sbin/policy-rc.d that exits 101), which the package
	// honours through deb-systemd-invoke; a real system has none.
	c.run("rm", "-f", "/usr/sbin/policy-rc.d")
	c.must(t, "dpkg", "-i", "/mnt/pkg/npllm.deb")
	c.waitFor(t, "npllmd started by the package", 20*time.Second, func() string {
		if out, _ := c.run("systemctl", "is-active", "npllmd"); strings.TrimSpace(out) != "active" {
			return "npllmd is " + out
		}
		return ""
	})
	if out := c.must(t, "systemctl", "is-enabled", "npllmd"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("npllmd is %s after install", out)
	}

	t.Run("units verify", func(t *testing.T) {
		if out, err := c.run("systemd-analyze", "verify", "/usr/lib/systemd/system/npllmd.service"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify npllmd.service: %v\n%s", err, out)
		}
		// A user manager needs a runtime directory, even to verify.
		if out, err := c.run("env", "XDG_RUNTIME_DIR=/tmp", "systemd-analyze", "--user", "verify", "/usr/lib/systemd/user/npllm-agent.service"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze --user verify npllm-agent.service: %v\n%s", err, out)
		}
	})

	t.Run("bus activation", func(t *testing.T) {
		c.must(t, "systemctl", "stop", "npllmd")
		out := c.must(t, "busctl", "get-property", "org.npllm.Assistant", "/org/npllm/Assistant1", "org.npllm.Assistant1", "Health")
		if !strings.HasPrefix(out, `s "`) {
			t.Errorf("Health: %q", out)
		}
		if out, _ := c.run("systemctl", "is-active", "npllmd"); strings.TrimSpace(out) != "active" {
			t.Errorf("not activated by the call: %s", out)
		}
	})

	t.Run("shell completions are installed", func(t *testing.T) {
		for _, p := range []string{"/usr/share/bash-completion/completions/npllmctl", "/usr/share/zsh/vendor-completions/_npllmctl",
			"/usr/share/fish/vendor_completions.d/npllmctl.fish"} {
			if out, err := c.run("grep", "-c", "npllmctl", p); err != nil {
				t.Errorf("%s: %v %s", p, err, out)
			}
		}
		// What the bash script asks the binary for: the commands.
		if out := c.must(t, "npllmctl", "__complete", "st"); !strings.Contains(out, "status") {
			t.Errorf("completions for st: %s", out)
		}
	})

	t.Run("eBPF sensors run under the hardened unit", func(t *testing.T) {
		out := c.must(t, "npllmctl", "--json", "sensors")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, r := range rows {
			if r["name"] == "process" && r["variant"] != "tp_btf" || r["name"] == "units" && r["state"] != "running" {
				t.Errorf("sensor %v", r)
			}
		}
	})

	t.Run("restart after a crash", func(t *testing.T) {
		before := c.mainPID(t, "npllmd")
		c.must(t, "kill", "-SEGV", before)
		c.restartedFrom(t, "npllmd", before, 30*time.Second)
	})

	t.Run("watchdog", func(t *testing.T) {
		before := c.mainPID(t, "npllmd")
		c.must(t, "kill", "-STOP", before)
		c.restartedFrom(t, "npllmd", before, 60*time.Second)
		if out := c.must(t, "journalctl", "-u", "npllmd", "--no-pager"); !strings.Contains(out, "Watchdog timeout") || !strings.Contains(out, "Failed with result 'watchdog'") {
			t.Errorf("no watchdog timeout in the journal:\n%s", out)
		}
	})

	t.Run("structured journal fields", func(t *testing.T) {
		out := c.must(t, "journalctl", "-u", "npllmd", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=npllmd")
		if !strings.Contains(out, `"SENSOR":"process"`) || !strings.Contains(out, `"VARIANT":"tp_btf"`) {
			t.Errorf("no structured fields in:\n%.2000s", out)
		}
	})

	t.Run("unit failure becomes an event and an alert", func(t *testing.T) {
		c.must(t, "sh", "-c", "printf '[Service]\\nType=oneshot\\nExecStart=/bin/sh -c \"exit 3\"\\n' > /etc/systemd/system/npllm-test-fail.service && systemctl daemon-reload")
		c.run("systemctl", "start", "npllm-test-fail.service")
		c.waitFor(t, "unit.failed event", 20*time.Second, func() string {
			out, _ := c.run("npllmctl", "--json", "events", "--kind", "unit.failed", "--limit", "20")
			if !strings.Contains(out, "npllm-test-fail.service") || !strings.Contains(out, `"exit_status": 3`) {
				return out
			}
			return ""
		})
		// The alert engine follows committed events a moment later.
		c.waitFor(t, "unit.failed alert", 10*time.Second, func() string {
			if out, _ := c.run("npllmctl", "alerts"); !strings.Contains(out, "npllm-test-fail.service failed") {
				return out
			}
			return ""
		})
	})

	t.Run("forged systemd signals from a user neither crash npllmd nor make unit.failed", func(t *testing.T) {
		// issue 12 follow-up: signals sent straight to each of npllmd's bus
		// connections (match rules do not filter unicast signals).
		c.must(t, "useradd", "--no-create-home", "npllm-forger")
		pid := strings.TrimSpace(c.must(t, "systemctl", "show", "-p", "MainPID", "--value", "npllmd"))
		script := `for n in $(busctl --system list --no-legend | awk -v p="$1" '$2==p && $1 ~ /^:/ {print $1}'); do
  emit() { runuser -u npllm-forger -- gdbus emit --system --object-path /org/freedesktop/systemd1/unit/npllm_2dforged_2eservice \
    --signal org.freedesktop.DBus.Properties.PropertiesChanged --dest "$n" "$@" || exit 1; }
  emit "uint32 1"
  emit "'org.freedesktop.systemd1.Unit'" "{'ActiveState': <'failed'>}" "@as []"
  echo "$n"
done`
		out := c.must(t, "sh", "-c", script, "forge", pid)
		if strings.TrimSpace(out) == "" {
			t.Fatalf("no bus connection of npllmd (pid %s) found", pid)
		}
		time.Sleep(2 * time.Second)
		if now := strings.TrimSpace(c.must(t, "systemctl", "show", "-p", "MainPID", "--value", "npllmd")); now != pid {
			t.Fatalf("npllmd restarted (pid %s → %s) after forged signals to %s", pid, now, out)
		}
		if out, _ := c.run("npllmctl", "--json", "events", "--kind", "unit.failed", "--limit", "100"); strings.Contains(out, "npllm-forged") {
			t.Fatalf("a forged signal became an event:\n%s", out)
		}
	})

	t.Run("ManageUnit as root and refused to a user", func(t *testing.T) {
		c.must(t, "sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/npllm-test-ok.service && systemctl daemon-reload && systemctl start npllm-test-ok.service")
		before := c.mainPID(t, "npllm-test-ok.service")
		c.must(t, "npllmctl", "unit", "restart", "npllm-test-ok.service")
		c.restartedFrom(t, "npllm-test-ok.service", before, 20*time.Second)
		// GetUnit reads what systemd says (the MCP bridge's unit_status).
		if out := c.must(t, "busctl", "call", "org.npllm.Assistant", "/org/npllm/Assistant1", "org.npllm.Assistant1", "GetUnit", "s", "npllm-test-ok.service"); !strings.Contains(out, `"active_state" s "active"`) || !strings.Contains(out, `"sub_state" s "running"`) {
			t.Errorf("GetUnit: %s", out)
		}
		c.must(t, "useradd", "--no-create-home", "npllm-tester")
		before = c.mainPID(t, "npllm-test-ok.service")
		out, err := c.run("runuser", "-u", "npllm-tester", "--", "npllmctl", "unit", "restart", "npllm-test-ok.service")
		if err == nil || !(strings.Contains(out, "authentication is required") || strings.Contains(out, "not authorized")) {
			t.Errorf("a user restarted a unit: %v %s", err, out)
		}
		time.Sleep(time.Second)
		if pid := c.mainPID(t, "npllm-test-ok.service"); pid != before {
			t.Errorf("the unit restarted anyway (MainPID %s → %s)", before, pid)
		}
	})

	t.Run("OOM kills reach npllmd through /dev/kmsg under the hardened unit", func(t *testing.T) {
		// The eBPF OOM sensor forced off: the fallback must read /dev/kmsg
		// through PrivateDevices=, DevicePolicy= and the capability set.
		c.must(t, "sh", "-c", "mkdir -p /etc/systemd/system/npllmd.service.d && printf '[Service]\nExecStart=\nExecStart=/usr/libexec/npllmd --force-variant=oom=kmsg\n' > /etc/systemd/system/npllmd.service.d/kmsg.conf && systemctl daemon-reload && systemctl restart npllmd")
		defer c.run("sh", "-c", "rm -r /etc/systemd/system/npllmd.service.d && systemctl daemon-reload && systemctl restart npllmd")
		out := c.must(t, "npllmctl", "--json", "sensors")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, r := range rows {
			if r["name"] == "oom" && (r["variant"] != "kmsg" || r["state"] != "running") {
				t.Fatalf("oom sensor under the hardened unit: %v", r)
			}
		}
		// A uniquely named hog: the kernel's log is the host's, shared with
		// whatever else runs on this machine.
		hog := fmt.Sprintf("kmsghog%d", os.Getpid()%100000)
		c.must(t, "cp", "/usr/bin/tail", "/tmp/"+hog)
		c.run("systemd-run", "--wait", "--quiet", "-p", "MemoryMax=32M", "-p", "MemorySwapMax=0", "/tmp/"+hog, "/dev/zero")
		c.waitFor(t, "oom.kill from /dev/kmsg", 20*time.Second, func() string {
			out, _ := c.run("npllmctl", "--json", "events", "--kind", "oom.kill", "--limit", "20")
			if !strings.Contains(out, hog) {
				return out
			}
			return ""
		})
	})

	t.Run("an OOM alert is logged with its MESSAGE_ID and explained by the catalog (journalctl -x)", func(t *testing.T) {
		// Our own kill (the previous subtest restarts npllmd as soon as its
		// event is journaled, maybe before the alert is logged); postinst
		// compiled the catalog.
		// The limit takes tens of seconds to bite on this cgroup v1 host, and
		// other sessions' load has restarted npllmd by its watchdog in the
		// middle: a second hog then.
		for attempt := 1; ; attempt++ {
			hog := fmt.Sprintf("cataloghog%d", (os.Getpid()+attempt)%100000)
			c.must(t, "cp", "/usr/bin/tail", "/tmp/"+hog)
			c.run("systemd-run", "--wait", "--quiet", "-p", "MemoryMax=32M", "-p", "MemorySwapMax=0", "/tmp/"+hog, "/dev/zero")
			var out string
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				out, _ = c.run("journalctl", "-x", "--no-pager", "MESSAGE_ID="+msgid.AlertOOMKill)
				if strings.Contains(out, hog) {
					break
				}
			}
			if strings.Contains(out, hog) {
				if !strings.Contains(out, "Subject: Alert: a process was killed for lack of memory") || !strings.Contains(out, "OOM killer") {
					t.Errorf("no catalog text under the alert:\n%.3000s", out)
				}
				return
			}
			if attempt == 2 {
				t.Fatalf("no OOM alert for %s with MESSAGE_ID %s:\n%.3000s", hog, msgid.AlertOOMKill, out)
			}
		}
	})

	t.Run("npllm-exporter: disabled, then socket-activated under its hardened unit as its own user", func(t *testing.T) {
		if out, _ := c.run("systemctl", "is-enabled", "npllm-exporter.socket"); strings.TrimSpace(out) != "disabled" {
			t.Errorf("npllm-exporter.socket is %q after install, want disabled", out)
		}
		if out, _ := c.run("systemctl", "is-active", "npllm-exporter.service"); strings.TrimSpace(out) == "active" {
			t.Error("npllm-exporter runs without being enabled")
		}
		c.must(t, "systemctl", "enable", "--now", "npllm-exporter.socket")
		defer c.run("systemctl", "disable", "--now", "npllm-exporter.socket", "npllm-exporter.service")
		// The container shares the host's network: scrape from here.
		var body string
		c.waitFor(t, "a scrape through the socket", 20*time.Second, func() string {
			resp, err := http.Get("http://127.0.0.1:10140/metrics")
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if body = string(b); !strings.Contains(body, "\nnpllm_up 1\n") {
				return body
			}
			return ""
		})
		if !strings.Contains(body, `npllm_events_total{kind="oom.kill"}`) {
			t.Errorf("no oom.kill counter in:\n%.3000s", body)
		}
		if out, _ := c.run("systemctl", "is-active", "npllm-exporter.service"); strings.TrimSpace(out) != "active" {
			t.Errorf("npllm-exporter.service not started by its socket: %s", out)
		}
		pid := c.mainPID(t, "npllm-exporter.service")
		if out := c.must(t, "ps", "-o", "user=", "-p", pid); strings.TrimSpace(out) != "npllm-exporter" {
			t.Errorf("npllm-exporter runs as %q, want its own system user", out)
		}
	})

	t.Run("a damaged baselines.json is moved aside after kill -9 and logged with its MESSAGE_ID", func(t *testing.T) {
		before := c.mainPID(t, "npllmd")
		c.must(t, "sh", "-c", "kill -KILL "+before+" && printf '[null]' > /var/lib/npllm/baselines.json")
		c.restartedFrom(t, "npllmd", before, 30*time.Second)
		c.waitFor(t, "the moved-aside record in the journal", 10*time.Second, func() string {
			out, _ := c.run("journalctl", "-u", "npllmd", "-o", "json", "--no-pager", "MESSAGE_ID="+msgid.StateMovedAside)
			if !strings.Contains(out, `"MOVED_TO":"/var/lib/npllm/baselines.json.damaged-`) {
				return out
			}
			return ""
		})
		if out, err := c.run("sh", "-c", "ls /var/lib/npllm/baselines.json.damaged-*"); err != nil {
			t.Errorf("no moved-aside file: %v %s", err, out)
		}
	})

	t.Run("purge leaves nothing behind", func(t *testing.T) {
		c.must(t, "dpkg", "-P", "npllm")
		for _, p := range []string{"/usr/libexec/npllmd", "/usr/bin/npllmctl", "/usr/bin/npllm-agent", "/var/lib/npllm", "/etc/npllm",
			"/usr/lib/systemd/system/npllmd.service", "/usr/share/dbus-1/system.d/org.npllm.Assistant.conf",
			"/usr/share/polkit-1/actions/org.npllm.Assistant.policy", "/etc/xdg/autostart/org.npllm.Agent.desktop",
			"/etc/systemd/system/multi-user.target.wants/npllmd.service", "/usr/share/bash-completion/completions/npllmctl",
			"/usr/bin/npllm-exporter", "/usr/lib/systemd/system/npllm-exporter.socket", "/usr/lib/systemd/catalog/npllm.catalog",
			"/usr/lib/sysusers.d/npllm-exporter.conf"} {
			if out, err := c.run("test", "-e", p); err == nil {
				t.Errorf("%s is still there after purge %s", p, out)
			}
		}
		if out, _ := c.run("systemctl", "is-active", "npllmd"); strings.TrimSpace(out) == "active" {
			t.Error("npllmd still runs after purge")
		}
	})
}
