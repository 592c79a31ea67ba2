package server_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/server"
	"github.com/npllm/npllm/dbus/testbus"
)

// startDaemon gives a test a private bus with polkitd and an npllmd on it,
// plus a root client connection.
func startDaemon(t testing.TB, args ...string) (*testbus.Bus, *testbus.Daemon, *client.Client) {
	t.Helper()
	b := testbus.ForTest(t)
	d := b.DaemonForTest(t, bin("npllmd"), args...)
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return b, d, client.NewClient(conn)
}

func meminfoBytes(t *testing.T, key string) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key+":" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	t.Fatalf("%s not in /proc/meminfo", key)
	return 0
}

func TestPropertiesMatchProc(t *testing.T) {
	_, _, c := startDaemon(t)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := meminfoBytes(t, "MemTotal"); st.MemoryTotal != want {
		t.Errorf("MemoryTotal = %d, /proc/meminfo says %d", st.MemoryTotal, want)
	}
	if want := meminfoBytes(t, "SwapTotal"); st.SwapTotal != want {
		t.Errorf("SwapTotal = %d, /proc/meminfo says %d", st.SwapTotal, want)
	}
	if st.MemoryAvailable == 0 || st.MemoryAvailable > st.MemoryTotal {
		t.Errorf("MemoryAvailable = %d of %d", st.MemoryAvailable, st.MemoryTotal)
	}
	if st.Version == "" {
		t.Error("Version is empty")
	}
	if st.Health != "ok" && st.Health != "warning" && st.Health != "critical" {
		t.Errorf("Health = %q", st.Health)
	}
	if _, err := os.Stat("/proc/pressure/memory"); err == nil {
		for _, r := range []string{"cpu", "memory", "io"} {
			if _, ok := st.Pressure[r]; !ok {
				t.Errorf("Pressure lacks %q: %v", r, st.Pressure)
			}
		}
	}
	running := map[string]string{}
	for _, s := range st.Sensors {
		if s.State == "running" {
			running[s.Name] = s.Variant
		}
	}
	for name, variant := range map[string]string{"system": "procfs", "processes": "bpf_iter"} {
		if running[name] != variant {
			t.Errorf("sensor %s not running on %s: %+v", name, variant, st.Sensors)
		}
	}
}

func TestPropertiesChangedArrivesOnlyForChangedValues(t *testing.T) {
	b, _, _ := startDaemon(t, "--refresh=100ms")
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchObjectPath(api.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 64)
	conn.Signal(ch)

	// Burn CPU so CPUUsage must change.
	burn := exec.Command("sh", "-c", "while :; do :; done")
	if err := burn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { burn.Process.Kill(); burn.Wait() }()

	deadline := time.After(10 * time.Second)
	for {
		select {
		case sig := <-ch:
			if len(sig.Body) != 3 || sig.Body[0] != api.Interface {
				t.Fatalf("malformed PropertiesChanged: %v", sig.Body)
			}
			changed := sig.Body[1].(map[string]dbus.Variant)
			if _, ok := changed["Version"]; ok {
				t.Fatal("Version is const but was announced as changed")
			}
			if len(changed) == 0 {
				t.Fatal("PropertiesChanged with nothing changed")
			}
			if v, ok := changed["CPUUsage"]; ok && v.Value().(float64) > 20 {
				return
			}
		case <-deadline:
			t.Fatal("no PropertiesChanged carrying CPUUsage > 20% within 10 s while a core was busy")
		}
	}
}

func TestUnprivilegedUserReadsButCannotOwnOrCallOtherInterfaces(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}

	res := asUser(t, b, alice, "getall")
	if res.Error != "" {
		t.Fatalf("alice GetAll: %s: %s", res.Error, res.Message)
	}
	var props map[string]any
	json.Unmarshal(res.Value, &props)
	if uint64(props["MemoryTotal"].(float64)) != meminfoBytes(t, "MemTotal") {
		t.Errorf("alice sees MemoryTotal %v", props["MemoryTotal"])
	}

	// A root process with a secret on its command line: alice sees the
	// process but not the command line.
	secret := exec.Command("sleep", "3600", "--token=s3cret")
	secret.Args = []string{"sleep", "3600"}
	if err := secret.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { secret.Process.Kill(); secret.Wait() }()
	res = asUser(t, b, alice, "getprocesses")
	if res.Error != "" {
		t.Fatalf("alice GetProcesses: %s: %s", res.Error, res.Message)
	}
	var procs []map[string]any
	json.Unmarshal(res.Value, &procs)
	found := false
	for _, p := range procs {
		if int(p["pid"].(float64)) == secret.Process.Pid {
			found = true
			if _, has := p["cmdline"]; has {
				t.Errorf("alice sees root's command line: %v", p["cmdline"])
			}
		}
	}
	if !found {
		t.Errorf("root's sleep (pid %d) missing from alice's GetProcesses (%d rows)", secret.Process.Pid, len(procs))
	}

	if res := asUser(t, b, alice, "own"); res.Error != api.ErrAccessDenied {
		t.Errorf("alice RequestName(%s): error %q %q, want AccessDenied", api.BusName, res.Error, res.Message)
	}
	if res := asUser(t, b, alice, "foreign-interface"); res.Error != api.ErrAccessDenied {
		t.Errorf("alice calling an interface outside the policy: error %q %q, want AccessDenied from the bus", res.Error, res.Message)
	}
}

func TestSecondDaemonExitsNonZeroAndFirstKeepsName(t *testing.T) {
	b, first, c := startDaemon(t)
	second := exec.Command(bin("npllmd"))
	second.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	out, err := second.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("second npllmd: err %v (want exit 1)\n%s", err, out)
	}
	if !strings.Contains(string(out), "already owned") {
		t.Errorf("second npllmd does not say why it exits:\n%s", out)
	}
	var pid uint32
	if err := c.Conn().BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, api.BusName).Store(&pid); err != nil {
		t.Fatal(err)
	}
	if int(pid) != first.Cmd.Process.Pid {
		t.Errorf("name owned by pid %d, want the first daemon %d", pid, first.Cmd.Process.Pid)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Errorf("first daemon stopped answering: %v", err)
	}
}

func TestMalformedCallsGetNamedErrorsAndDaemonKeepsServing(t *testing.T) {
	_, d, c := startDaemon(t)
	obj := c.Conn().Object(api.BusName, api.ObjectPath)
	opts := func(kv ...any) map[string]dbus.Variant {
		m := map[string]dbus.Variant{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = dbus.MakeVariant(kv[i+1])
		}
		return m
	}
	cases := []struct {
		name   string
		method string
		args   []any
		want   string
	}{
		{"string pid", "GetProcess", []any{"1"}, api.ErrInvalidArgs},
		{"signed pid", "GetProcess", []any{int32(-1)}, api.ErrInvalidArgs},
		{"no arguments", "GetProcess", nil, api.ErrInvalidArgs},
		{"two arguments", "GetProcess", []any{uint32(1), uint32(2)}, api.ErrInvalidArgs},
		{"unknown pid", "GetProcess", []any{uint32(0x7ffffff0)}, api.ErrNoSuchProcess},
		{"pid 0", "GetProcess", []any{uint32(0)}, api.ErrNoSuchProcess},
		{"options not a dict", "GetProcesses", []any{[]string{"cpu"}}, api.ErrInvalidArgs},
		{"bad sort key", "GetProcesses", []any{opts("sort_by", "shoe size")}, api.ErrInvalidArgument},
		{"sort key of wrong type", "GetProcesses", []any{opts("sort_by", uint32(3))}, api.ErrInvalidArgument},
		{"negative limit", "GetProcesses", []any{opts("limit", int32(-5))}, api.ErrInvalidArgument},
		{"unknown option ignored", "GetProcesses", []any{opts("colour", "blue", "limit", uint32(3))}, ""},
		{"event filter of wrong type", "GetEvents", []any{uint64(0), uint32(1), opts("kind", uint32(3))}, api.ErrInvalidArgument},
		{"event pid filter negative", "GetEvents", []any{uint64(0), uint32(1), opts("pid", int32(-1))}, api.ErrInvalidArgument},
		{"unknown method", "Frobnicate", nil, api.ErrUnknownMethod},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := obj.Call(api.Interface+"."+tc.method, 0, tc.args...).Err
			if got := api.ErrorName(err); got != tc.want {
				t.Errorf("%s%v: error %q (%v), want %q", tc.method, tc.args, got, err, tc.want)
			}
			if tc.want != "" && api.ErrorMessage(err) == "" {
				t.Errorf("%s: error without a message", tc.name)
			}
		})
	}
	// Properties are read-only and unknown ones are named errors.
	err := obj.Call("org.freedesktop.DBus.Properties.Set", 0, api.Interface, "Health", dbus.MakeVariant("ok")).Err
	if api.ErrorName(err) != api.ErrPropertyReadOnly {
		t.Errorf("Set Health: %v, want PropertyReadOnly", err)
	}
	err = obj.Call("org.freedesktop.DBus.Properties.Get", 0, api.Interface, "Nope").Err
	if api.ErrorName(err) != api.ErrUnknownProperty {
		t.Errorf("Get Nope: %v, want UnknownProperty", err)
	}
	// Still alive and serving.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("daemon stopped answering after bad input: %v", err)
	}
	if _, done := d.Wait(0); done {
		t.Fatal("daemon exited")
	}
	if procs, err := c.ListProcesses(context.Background(), client.ProcessQuery{Limit: 3}); err != nil || len(procs) != 3 {
		t.Fatalf("GetProcesses after bad input: %d rows, %v", len(procs), err)
	}
}

func TestGetProcessDescribesARealProcess(t *testing.T) {
	_, _, c := startDaemon(t)
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "3600")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: alice.UID, Gid: alice.GID}}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	pid := uint32(sleeper.Process.Pid)
	// The wire form: every key GetProcess promises, with its D-Bus type.
	var info map[string]dbus.Variant
	if err := c.Conn().Object(api.BusName, api.ObjectPath).Call(api.Interface+".GetProcess", 0, pid).Store(&info); err != nil {
		t.Fatal(err)
	}
	if p, err := c.GetProcess(context.Background(), pid); err != nil || p.Cmdline == nil || *p.Cmdline != "sleep 3600" || p.StartTime == 0 {
		t.Errorf("typed GetProcess: %+v %v", p, err)
	}
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	wantStart, _ := strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	checks := map[string]any{
		"pid": pid, "uid": alice.UID, "user": "npllm-alice", "comm": "sleep",
		"cmdline": "sleep 3600", "start_time": wantStart, "ppid": uint32(os.Getpid()),
	}
	for k, want := range checks {
		if got := info[k].Value(); got != want {
			t.Errorf("%s = %v (%T), want %v (%T)", k, got, got, want, want)
		}
	}
	for _, k := range []string{"state", "nice", "rss_bytes", "cpu_percent", "io_read_bytes", "io_write_bytes", "threads"} {
		if _, ok := info[k]; !ok {
			t.Errorf("GetProcess lacks %q", k)
		}
	}
}

func TestIntrospectionIsValidAndMatchesWhatIsExported(t *testing.T) {
	_, _, c := startDaemon(t)
	var data string
	if err := c.Conn().Object(api.BusName, api.ObjectPath).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&data); err != nil {
		t.Fatal(err)
	}
	lint := exec.Command("xmllint", "--noout", "-")
	lint.Stdin = strings.NewReader(data)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	}
	var node introspect.Node
	if err := xml.Unmarshal([]byte(data), &node); err != nil {
		t.Fatal(err)
	}
	var ours *introspect.Interface
	for i := range node.Interfaces {
		if node.Interfaces[i].Name == api.Interface {
			ours = &node.Interfaces[i]
		}
	}
	if ours == nil {
		t.Fatalf("introspection lacks %s", api.Interface)
	}
	exported := server.ExportedMethods()
	for _, m := range ours.Methods {
		if !exported[m.Name] {
			t.Errorf("introspected method %s is not exported", m.Name)
		}
		delete(exported, m.Name)
	}
	for name := range exported {
		t.Errorf("exported method %s is missing from the introspection", name)
	}
	// Read the reply body as decoded: godbus's Store would rebuild the
	// variants from Go values and lose their wire signatures.
	call := c.Conn().Object(api.BusName, api.ObjectPath).Call("org.freedesktop.DBus.Properties.GetAll", 0, api.Interface)
	if call.Err != nil {
		t.Fatal(call.Err)
	}
	all := call.Body[0].(map[string]dbus.Variant)
	for _, p := range ours.Properties {
		v, ok := all[p.Name]
		if !ok {
			t.Errorf("introspected property %s missing from GetAll", p.Name)
			continue
		}
		if got := v.Signature().String(); got != p.Type {
			t.Errorf("property %s has type %s on the bus, %s in the XML", p.Name, got, p.Type)
		}
		annotated := false
		for _, a := range p.Annotations {
			annotated = annotated || a.Name == "org.freedesktop.DBus.Property.EmitsChangedSignal"
		}
		if !annotated {
			t.Errorf("property %s lacks the EmitsChangedSignal annotation", p.Name)
		}
		delete(all, p.Name)
	}
	for name := range all {
		t.Errorf("property %s is served but not in the XML", name)
	}
}

func TestSIGTERMReleasesTheNameAndExitsZero(t *testing.T) {
	b, d, _ := startDaemon(t)
	if err := d.Stop(); err != nil {
		t.Fatalf("npllmd after SIGTERM: %v (want exit 0)\n%s", err, d.Log())
	}
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var has bool
	conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, api.BusName).Store(&has)
	if has {
		t.Error("name still owned after npllmd exited")
	}
}

func TestNpllmctlStatusAndTopWorkAsAnUnprivilegedUser(t *testing.T) {
	b, _, _ := startDaemon(t)
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	// Global flags go before or after the command.
	for _, args := range [][]string{{"--json", "status"}, {"status", "--json"}, {"status", "--timeout", "30s", "--json"}} {
		out, err := alice.Command(b, bin("npllmctl"), args...).Output()
		if err != nil {
			t.Fatalf("npllmctl %v: %v", args, err)
		}
		var st map[string]any
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("npllmctl %v is not JSON: %v\n%s", args, err, out)
		}
		if total, _ := st["memory_total_bytes"].(float64); uint64(total) != meminfoBytes(t, "MemTotal") {
			t.Errorf("npllmctl %v: memory_total_bytes = %v", args, st["memory_total_bytes"])
		}
	}
	var out []byte
	out, err = alice.Command(b, bin("npllmctl"), "status").Output()
	if err != nil || !strings.Contains(string(out), "health:") || !strings.Contains(string(out), "memory") {
		t.Errorf("npllmctl status: %v\n%s", err, out)
	}
	out, err = alice.Command(b, bin("npllmctl"), "--json", "top", "--sort", "memory", "--limit", "5").Output()
	if err != nil {
		t.Fatalf("npllmctl top: %v", err)
	}
	var procs []map[string]any
	if err := json.Unmarshal(out, &procs); err != nil || len(procs) != 5 {
		t.Fatalf("top --json: %d rows, %v\n%s", len(procs), err, out)
	}
	for i := 1; i < len(procs); i++ {
		if procs[i]["rss_bytes"].(float64) > procs[i-1]["rss_bytes"].(float64) {
			t.Errorf("top --sort memory is not sorted: %v then %v", procs[i-1]["rss_bytes"], procs[i]["rss_bytes"])
		}
	}
}

func TestNpllmctlSaysWhenTheDaemonIsNotRunning(t *testing.T) {
	b := testbus.ForTest(t)
	cmd := exec.Command(bin("npllmctl"), "status")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("npllmctl status with no daemon: %v (want exit 3)\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "npllmd is not running on the system bus") {
		t.Errorf("want one line naming the problem, got:\n%s", out)
	}
}

func TestUnitsSensorSaysWhyItIsUnavailableWithoutSystemd(t *testing.T) {
	if fi, err := os.Lstat("/run/systemd/system"); err == nil && fi.IsDir() {
		t.Skip("systemd is PID 1 here; the container test covers the sensor")
	}
	_, _, c := startDaemon(t)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sensors {
		if s.Name == "units" {
			if s.State != "unavailable" || !strings.Contains(fmt.Sprint(s.Details["reason"].Value()), "systemd is not running as PID 1") {
				t.Errorf("units sensor: %+v", s)
			}
			return
		}
	}
	t.Error("no units sensor")
}
