package desktop_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
)

// The forger (a helper process run as another user): it claims to own
// org.npllm.Assistant with a NameOwnerChanged sent straight to the agent,
// then sends Alert and AlertCleared signals, then NPLLM_FLOOD broadcast
// Alerts.
func init() {
	if os.Getenv("NPLLM_TEST_HELPER") != "forge" {
		return
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agent := os.Getenv("NPLLM_AGENT")
	send := func(dest string, path dbus.ObjectPath, iface, member string, body ...any) {
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath: dbus.MakeVariant(path), dbus.FieldInterface: dbus.MakeVariant(iface),
			dbus.FieldMember: dbus.MakeVariant(member), dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...))}, Body: body}
		if dest != "" {
			msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
		}
		if err := conn.Send(msg, nil).Err; err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	details := map[string]dbus.Variant{"summary": dbus.MakeVariant("forged: your disk is on fire"), "pid": dbus.MakeVariant(uint32(1)),
		"comm": dbus.MakeVariant("systemd")}
	send(agent, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", api.BusName, os.Getenv("NPLLM_OWNER"), conn.Names()[0])
	for _, dest := range []string{agent, ""} {
		send(dest, api.ObjectPath, api.Interface, "Alert", "forged/1", api.SeverityCritical, api.KindMemoryLow, details)
		send(dest, api.ObjectPath, api.Interface, "AlertCleared", "memory.low")
	}
	n, _ := strconv.Atoi(os.Getenv("NPLLM_FLOOD"))
	for i := range n {
		send("", api.ObjectPath, api.Interface, "Alert", fmt.Sprintf("forged/%d", i), api.SeverityCritical, api.KindMemoryLow, details)
	}
	conn.Close()
	os.Exit(0)
}

// agentConnName finds the agent's connection on the bus conn is on
// (system or session).
func (w *world) agentConnName(t *testing.T, conn *dbus.Conn) string {
	t.Helper()
	var names []string
	if err := conn.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		var pid uint32
		if strings.HasPrefix(n, ":") && conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, n).Store(&pid) == nil &&
			int(pid) == w.agent.Process.Pid {
			return n
		}
	}
	t.Fatal("the agent has no connection on this bus")
	return ""
}

func cpuTicks(t *testing.T, pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	k, _ := strconv.ParseUint(f[12], 10, 64)
	return u + k
}

// Issue 12's crash, as another real user, then a forged owner change with
// forged alerts, then 10,000 forged broadcasts: the agent keeps running,
// shows nothing, warns once, and stays cheap.
func TestForgedSignalsFromAnotherUserNeitherCrashNorNotifyTheAgent(t *testing.T) {
	w := setup(t, "")
	bob, err := testbus.EnsureUser("npllm-bob")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := w.bus.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	agentName := w.agentConnName(t, conn)
	var owner string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, api.BusName).Store(&owner); err != nil {
		t.Fatal(err)
	}
	warnings := func() int { return strings.Count(w.log(), "level=WARN") }
	warnedBefore := warnings()

	// The command from the issue, verbatim, ten times.
	for range 10 {
		gdbus := bob.Command(w.bus, "gdbus", "emit", "--system", "--object-path", "/", "--signal",
			"org.freedesktop.DBus.NameOwnerChanged", "--dest", agentName, "'org.npllm.Assistant'", "'x'", "uint32 1")
		if out, err := gdbus.CombinedOutput(); err != nil {
			t.Fatalf("gdbus emit as %s: %v %s", bob.Name, err, out)
		}
	}
	w.waitLog(t, "ignored a NameOwnerChanged not sent by the bus")
	if err := w.agent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the agent died: %v\n%s", err, w.log())
	}

	rssBefore, cpuBefore := testbus.ProcRSSKiB(w.agent.Process.Pid), cpuTicks(t, w.agent.Process.Pid)
	const flood = 10000
	forge := bob.Command(w.bus, bin("self"))
	forge.Env = append(forge.Env, "NPLLM_TEST_HELPER=forge", "NPLLM_AGENT="+agentName, "NPLLM_OWNER="+owner, "NPLLM_FLOOD="+strconv.Itoa(flood))
	start := time.Now()
	if out, err := forge.CombinedOutput(); err != nil {
		t.Fatalf("forger: %v %s", err, out)
	}
	// The agent has read them all once a real signal sent after them arrives:
	// npllmd's own PropertiesChanged comes every second.
	time.Sleep(2 * time.Second)
	rss, cpu := testbus.ProcRSSKiB(w.agent.Process.Pid), cpuTicks(t, w.agent.Process.Pid)
	t.Logf("%d forged signals sent in %v; agent RSS %d → %d KiB, CPU %d ticks", flood+5, time.Since(start).Round(time.Millisecond), rssBefore, rss, cpu-cpuBefore)
	if err := w.agent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the agent died: %v", err)
	}
	if n := w.displayed(t); n != 0 {
		t.Errorf("forged signals produced %d notifications", n)
	}
	if n := warnings() - warnedBefore; n > 2 {
		t.Errorf("%d warnings for %d forged signals; want them counted, one warning a minute", n, flood+15)
	}
	if rss > rssBefore+32*1024 {
		t.Errorf("agent RSS grew from %d to %d KiB under forged signals", rssBefore, rss)
	}
	// Generous: 10,000 signals are ~0.3 s of CPU here.
	if ticks := cpu - cpuBefore; ticks > 500 {
		t.Errorf("agent used %d ticks of CPU for %d forged signals", ticks, flood)
	}
	// And it still follows the real npllmd.
	if !strings.Contains(w.log(), "following npllmd") {
		t.Error("agent log lost its start line")
	}
}
