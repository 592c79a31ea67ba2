package server_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// alertWatcher collects Alert and AlertCleared signals from npllmd.
type alertWatcher struct {
	ch chan *dbus.Signal
}

func watchAlerts(t *testing.T, c *client.Client) *alertWatcher {
	t.Helper()
	conn := c.Conn()
	for _, member := range []string{"Alert", "AlertCleared"} {
		if err := conn.AddMatchSignal(dbus.WithMatchInterface(api.Interface), dbus.WithMatchMember(member)); err != nil {
			t.Fatal(err)
		}
	}
	w := &alertWatcher{ch: make(chan *dbus.Signal, 256)}
	conn.Signal(w.ch)
	return w
}

// next waits for a signal of member whose first argument (the id) passes match.
func (w *alertWatcher) next(t *testing.T, member string, match func(id string, sig *dbus.Signal) bool) *dbus.Signal {
	t.Helper()
	deadline := time.After(25 * time.Second)
	for {
		select {
		case sig := <-w.ch:
			if sig.Name == api.Interface+"."+member && match(sig.Body[0].(string), sig) {
				return sig
			}
		case <-deadline:
			t.Fatalf("no %s signal", member)
			return nil
		}
	}
}

func TestOOMKillRaisesAnAlertWhosePrivateDetailsOnlyTheOwnerSees(t *testing.T) {
	b, _, c := startDaemon(t)
	w := watchAlerts(t, c)
	hog := startHog(t, memoryCgroup(t, 48<<20))
	pid := uint32(hog.Process.Pid)
	sig := w.next(t, "Alert", func(id string, sig *dbus.Signal) bool {
		d := sig.Body[3].(map[string]dbus.Variant)
		return strings.HasPrefix(id, "oom.kill/") && d["pid"].Value() == pid
	})
	id := sig.Body[0].(string)
	details := sig.Body[3].(map[string]dbus.Variant)
	if sig.Body[1] != "critical" || sig.Body[2] != "oom.kill" || details["comm"].Value() != "self" {
		t.Errorf("signal %v", sig.Body)
	}
	if _, leaked := details["cgroup"]; leaked {
		t.Error("the broadcast carries the cgroup path")
	}
	if !strings.Contains(details["summary"].Value().(string), "killed for lack of memory") {
		t.Errorf("summary %v", details["summary"])
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range st.ActiveAlerts {
		found = found || a.ID == id
	}
	if !found {
		t.Errorf("%s not in ActiveAlerts %v", id, st.ActiveAlerts)
	}
	a, err := c.GetAlert(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if cg, _ := a.Private["cgroup"].Value().(string); !strings.Contains(cg, "npllm-test-mem") {
		t.Errorf("root's GetAlert: %v", a)
	}
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	out, err := alice.Command(b, bin("npllmctl"), "--json", "alert", id).Output()
	if err != nil {
		t.Fatalf("npllmctl alert as alice: %v", err)
	}
	if strings.Contains(string(out), "npllm-test-mem") || !strings.Contains(string(out), `"private_withheld": true`) {
		t.Errorf("alice sees root's alert details:\n%s", out)
	}
}

func TestDiskFullAlertOnASmallFileSystemRaisesAndClears(t *testing.T) {
	_, _, c := startDaemon(t)
	w := watchAlerts(t, c)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "npllm-test-disk", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	fill := filepath.Join(dir, "fill")
	if err := os.WriteFile(fill, make([]byte, 3900<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "disk.full/" + dir
	sig := w.next(t, "Alert", func(id string, _ *dbus.Signal) bool { return id == want })
	if sig.Body[1] != "warning" || sig.Body[2] != "disk.full" { // 95%
		t.Errorf("signal %v", sig.Body)
	}
	// Fuller: the same alert is re-raised, critical.
	if err := os.WriteFile(fill, make([]byte, 4000<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	sig = w.next(t, "Alert", func(id string, _ *dbus.Signal) bool { return id == want })
	if sig.Body[1] != "critical" {
		t.Errorf("at 98%%: %v", sig.Body)
	}
	os.Remove(fill)
	w.next(t, "AlertCleared", func(id string, _ *dbus.Signal) bool { return id == want })
}

func TestThresholdsComeFromTheFileAndChangeOnlyWithPolkit(t *testing.T) {
	b := testbus.ForTest(t)
	bad := filepath.Join(b.Dir, "bad.toml")
	os.WriteFile(bad, []byte("[alerts]\ndisk_warning_percen = 80\n"), 0o644)
	out, err := exec.Command(bin("npllmd"), "--config="+bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "disk_warning_percen") {
		t.Fatalf("bad config: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(b.Dir, "npllmd.toml"), []byte("[alerts]\ndisk_warning_percent = 80\n"), 0o644)
	b.DaemonForTest(t, bin("npllmd"))
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.NewClient(conn)
	ctx := context.Background()
	cfg, err := c.GetConfiguration(ctx)
	if err != nil || cfg["disk_warning_percent"] != 80.0 || cfg["memory_pressure_sustain"] != "10s" {
		t.Fatalf("configuration %v %v", err, cfg)
	}
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	aliceOut, _ := alice.Command(b, bin("npllmctl"), "config", "disk_warning_percent=50").CombinedOutput()
	if !strings.Contains(string(aliceOut), "authentication is required") && !strings.Contains(string(aliceOut), "not authorized") {
		t.Errorf("alice changed a threshold: %s", aliceOut)
	}
	obj := conn.Object(api.BusName, api.ObjectPath)
	call := func(settings map[string]any) error {
		return obj.Call(api.Interface+".Configure", 0, api.Options(settings), api.Options(nil)).Err
	}
	if err := call(map[string]any{"disk_warning_percent": 85.0, "no_such_key": 1.0}); api.ErrorName(err) != api.ErrInvalidArgument || !strings.Contains(api.ErrorMessage(err), "no_such_key") {
		t.Errorf("unknown key: %v", err)
	}
	if err := call(map[string]any{"disk_critical_percent": 10.0}); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("critical below warning: %v", err)
	}
	if cfg, _ := c.GetConfiguration(ctx); cfg["disk_warning_percent"] != 80.0 {
		t.Errorf("a refused change changed something: %v", cfg["disk_warning_percent"])
	}
	if err := call(map[string]any{"disk_warning_percent": 85.0, "cpu_runaway_after": "30s"}); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := c.GetConfiguration(ctx); cfg["disk_warning_percent"] != 85.0 || cfg["cpu_runaway_after"] != "30s" {
		t.Errorf("after Configure: %v", cfg)
	}
}

func TestBaselinesAreLearnedFlagABalloonAndSurviveARestart(t *testing.T) {
	b := testbus.ForTest(t)
	os.WriteFile(filepath.Join(b.Dir, "npllmd.toml"), []byte(`[alerts]
anomaly_rss_min_bytes = 31457280
anomaly_min_samples = 3
process_sample_interval = "200ms"
`), 0o644)
	d := b.DaemonForTest(t, bin("npllmd"))
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.NewClient(conn)
	w := watchAlerts(t, c)
	footprint := func(mib, ms string) *exec.Cmd {
		cmd := exec.Command(bin("self"))
		cmd.Env = append(os.Environ(), "NPLLM_TEST_HELPER=footprint", "NPLLM_FOOTPRINT_MIB="+mib, "NPLLM_FOOTPRINT_MS="+ms)
		return cmd
	}
	ctx := context.Background()
	for range 3 {
		if err := footprint("8", "50").Run(); err != nil {
			t.Fatal(err)
		}
	}
	var bl api.Baseline
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if bl, err = c.GetBaseline(ctx, "self"); err == nil && bl.Runs >= 3 {
			break
		}
	}
	p95 := bl.RSSP95Bytes
	if bl.Runs < 3 || p95 < 8<<20 || p95 > 40<<20 {
		t.Fatalf("baseline after three 8 MiB runs: %v %v", err, bl)
	}
	balloon := footprint("150", "4000")
	if err := balloon.Start(); err != nil {
		t.Fatal(err)
	}
	defer balloon.Process.Kill()
	pid := uint32(balloon.Process.Pid)
	sig := w.next(t, "Alert", func(id string, sig *dbus.Signal) bool {
		return strings.HasPrefix(id, "process.anomaly/") && sig.Body[3].(map[string]dbus.Variant)["pid"].Value() == pid
	})
	if d := sig.Body[3].(map[string]dbus.Variant); d["baseline_p95_rss_bytes"].Value() != p95 {
		t.Errorf("anomaly details %v", d)
	}
	info, err := c.GetProcess(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if info.Baseline == nil || info.Baseline.RSSP95Bytes != p95 {
		t.Errorf("GetProcess shows no baseline: %+v", info.Baseline)
	}
	balloon.Process.Signal(syscall.SIGKILL)
	balloon.Wait()
	w.next(t, "AlertCleared", func(id string, _ *dbus.Signal) bool { return strings.HasPrefix(id, "process.anomaly/") })

	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	b.DaemonForTest(t, bin("npllmd"))
	if bl, err := c.GetBaseline(ctx, "self"); err != nil || bl.Runs < 3 {
		t.Fatalf("baseline after a restart: %v %v", err, bl)
	}
	out, err := ctl(b, "baseline", "self", "--forget").CombinedOutput()
	if err != nil {
		t.Fatalf("forget: %v %s", err, out)
	}
	if _, err := c.GetBaseline(ctx, "self"); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("after --forget: %v", err)
	}
}

// Real PSI: a process swapping hard in a small cgroup makes tasks stall on
// memory; npllmd raises memory.pressure and names the biggest processes.
func TestMemoryPressureFromRealPSI(t *testing.T) {
	zramSwap(t)
	b := testbus.ForTest(t)
	os.WriteFile(filepath.Join(b.Dir, "npllmd.toml"), []byte("[alerts]\nmemory_pressure_sustain = \"2s\"\nmemory_pressure_some_percent = 5.0\n"), 0o644)
	b.DaemonForTest(t, bin("npllmd"))
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := watchAlerts(t, client.NewClient(conn))
	into := testbus.MemoryCgroup(t, 32<<20, true)
	thrash := exec.Command(bin("self"))
	thrash.Env = append(os.Environ(), "NPLLM_TEST_HELPER=thrash")
	in, _ := thrash.StdinPipe()
	if err := thrash.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { thrash.Process.Kill(); thrash.Wait() }()
	into(thrash.Process.Pid)
	io.WriteString(in, "go\n")
	sig := w.next(t, "Alert", func(id string, _ *dbus.Signal) bool { return id == "memory.pressure" })
	d := sig.Body[3].(map[string]dbus.Variant)
	some, full := d["some_avg10"].Value().(float64), d["full_avg10"].Value().(float64)
	switch sig.Body[1] {
	case "warning":
		if some < 5 {
			t.Errorf("warning at some avg10 %v", some)
		}
	case "critical":
		if full < 5 {
			t.Errorf("critical at full avg10 %v", full)
		}
	default:
		t.Errorf("severity %v", sig.Body[1])
	}
	if top, ok := d["top"].Value().([]map[string]dbus.Variant); !ok || len(top) == 0 {
		t.Errorf("no top consumers in %v", d)
	}
}
