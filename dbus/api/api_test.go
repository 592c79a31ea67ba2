package api

import (
	"encoding/binary"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// One event of every kind with every field set, and the a{sv} keys each
// kind had on the wire before events were typed (they must not change).
var examples = []struct {
	ev   Event
	keys string
}{
	{Event{Kind: KindProcessExec, PID: 10, UID: 1000, HasUID: true, PPID: 1, Comm: "sh", StartTime: 5, Filename: "/bin/sh", Argv: []string{"sh", "-c"}, CgroupID: 9},
		"argv cgroup_id comm filename pid ppid start_time uid"},
	{Event{Kind: KindProcessFork, PID: 10, UID: 1000, HasUID: true, PPID: 1, Comm: "sh", StartTime: 5},
		"comm pid ppid start_time uid"},
	{Event{Kind: KindProcessExit, PID: 10, UID: 1000, HasUID: true, Comm: "sh", StartTime: 5,
		Exit: &ExitStatus{ExitCode: -1, Signal: 11, CoreDumped: true, CPUNS: 3, MaxRSSBytes: 4, RuntimeNS: 6}},
		"comm core_dumped cpu_ns exit_code max_rss_bytes pid runtime_ns signal start_time uid"},
	{Event{Kind: KindOOMKill, PID: 10, UID: 1000, HasUID: true, Comm: "hog", StartTime: 5, OOM: &OOMKill{RSSBytes: 1 << 30, OOMScoreAdj: -100, Cgroup: "/x"}},
		"cgroup comm oom_score_adj pid rss_bytes start_time uid"},
	{Event{Kind: KindSignalSent, PID: 10, UID: 1000, HasUID: true, Comm: "victim", StartTime: 5,
		Signal: &SignalSent{SenderPID: 2, SenderUID: 0, SenderComm: "kill", Signal: 9, Code: 0, Result: 0}},
		"code result sender_comm sender_pid sender_uid signal target_comm target_pid target_start_time target_uid"},
	{Event{Kind: KindTCPClose, PID: 10, UID: 1000, HasUID: true, Comm: "curl",
		TCP: &TCPConn{Family: "ipv4", Saddr: "127.0.0.1", Sport: 1, Daddr: "127.0.0.2", Dport: 2, RxBytes: 3, TxBytes: 4, DurationNS: 5, Retransmits: 6}},
		"comm daddr dport duration_ns family pid retransmits rx_bytes saddr sport tx_bytes uid"},
	{Event{Kind: KindUnitRestarted, Unit: &UnitChange{Unit: "a.service", Restarts: 3}}, "restarts unit"},
	{Event{Kind: KindUnitFailed, Unit: &UnitChange{Unit: "a.service", Result: "exit-code", ExitCode: "exited", ExitStatus: 2}},
		"exit_code exit_status result unit"},
}

func TestEveryKindRoundTripsWithTheSameWireKeys(t *testing.T) {
	for _, x := range examples {
		x.ev.Seq, x.ev.TimeNS = 42, 7
		f := x.ev.Fields()
		if got := strings.Join(slices.Sorted(maps.Keys(f)), " "); got != x.keys {
			t.Errorf("%s keys %q, want %q", x.ev.Kind, got, x.keys)
		}
		// The journal's path: Fields, then SetFields on the header.
		back := Event{Seq: x.ev.Seq, TimeNS: x.ev.TimeNS, Kind: x.ev.Kind, PID: x.ev.PID, UID: x.ev.UID, HasUID: x.ev.HasUID}
		if err := back.SetFields(f); err != nil || !reflect.DeepEqual(back, x.ev) {
			t.Errorf("%s via fields: %v\n got %#v\nwant %#v", x.ev.Kind, err, back, x.ev)
		}
		// The bus's path: a{sv} through a real D-Bus message encoding.
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath: dbus.MakeVariant(ObjectPath), dbus.FieldInterface: dbus.MakeVariant(Interface), dbus.FieldMember: dbus.MakeVariant("X"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(x.ev.Encode()))}, Body: []any{x.ev.Encode()}}
		var buf strings.Builder
		if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
			t.Fatal(err)
		}
		dec, err := dbus.DecodeMessage(strings.NewReader(buf.String()))
		if err != nil {
			t.Fatal(err)
		}
		wire, _ := dec.Body[0].(map[string]dbus.Variant)
		got, err := DecodeEvent(wire)
		if err != nil {
			t.Fatalf("%s: %v", x.ev.Kind, err)
		}
		want := x.ev
		want.HasUID = want.HasUID || want.Kind == KindSignalSent
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s via the bus:\n got %#v\nwant %#v", x.ev.Kind, got, want)
		}
	}
}

func TestAWrongTypeIsANamedErrorNotAZero(t *testing.T) {
	ev := Event{Kind: KindProcessExit}
	err := ev.SetFields(map[string]any{"pid": uint32(1), "exit_code": "zero"})
	if err == nil || !strings.Contains(err.Error(), `"exit_code"`) {
		t.Errorf("SetFields with a string exit_code: %v", err)
	}
	_, err = DecodeEvent(map[string]dbus.Variant{"seq": dbus.MakeVariant(int32(1)), "kind": dbus.MakeVariant(KindOOMKill)})
	if err == nil || !strings.Contains(err.Error(), `"seq"`) {
		t.Errorf("DecodeEvent with an int32 seq: %v", err)
	}
	_, err = DecodeProcess(map[string]dbus.Variant{"pid": dbus.MakeVariant("1")})
	if err == nil || !strings.Contains(err.Error(), `"pid"`) {
		t.Errorf("DecodeProcess with a string pid: %v", err)
	}
}

func TestAlertSignalsAreTypeChecked(t *testing.T) {
	good := []any{"oom.kill/3", SeverityCritical, KindOOMKill, map[string]dbus.Variant{
		"pid": dbus.MakeVariant(uint32(7)), "comm": dbus.MakeVariant("hog"), "seq": dbus.MakeVariant(uint64(3)), "summary": dbus.MakeVariant("s")}}
	a, err := DecodeAlertSignal(good)
	if err != nil || a.PID != 7 || a.Comm != "hog" || a.Seq != 3 || a.Summary != "s" || a.Kind != KindOOMKill {
		t.Errorf("DecodeAlertSignal = %+v, %v", a, err)
	}
	for _, bad := range [][]any{nil, good[:3], {"id", uint32(1), "k", map[string]dbus.Variant{}}, {"id", "s", "k", "not a dict"}} {
		if _, err := DecodeAlertSignal(bad); err == nil {
			t.Errorf("DecodeAlertSignal(%v) accepted", bad)
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	cmd := "sleep 1"
	p := Process{PID: 1, Comm: "x", CPUPercent: 1.5, Cmdline: &cmd, Baseline: &Baseline{Program: "x", Runs: 3}}
	got, err := DecodeProcess(p.Encode())
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("process: %+v %v", got, err)
	}
	withheld := Process{PID: 2}
	if _, ok := withheld.Encode()["cmdline"]; ok {
		t.Error("a withheld command line is on the wire")
	}
	h := Histogram{Name: "runq_latency", Counts: []uint64{1, 2}, BucketLow: []uint64{0, 1}, BucketHigh: []uint64{1, 2}, AvailableSeries: []string{"all"}}
	if got, err := DecodeHistogram(h.Encode()); err != nil || !reflect.DeepEqual(got, h) {
		t.Errorf("histogram: %+v %v", got, err)
	}
	s := SyscallStat{PID: 1, Syscall: "flock", Errnos: map[string]uint64{"EBADF": 333}}
	if got, err := DecodeSyscallStat(s.Encode()); err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("syscall stat: %+v %v", got, err)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 1 << 30: "1.0 GiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSensorDetailsAreTypeChecked(t *testing.T) {
	out, err := DecodeSensorDetails(map[string][]any{"process": {"exec and exit", map[string]uint64{"emitted": 3}}})
	if err != nil || out["process"].Description != "exec and exit" || out["process"].Counters["emitted"] != 3 {
		t.Fatalf("decode: %+v, %v", out, err)
	}
	for name, bad := range map[string][]any{
		"counters as a{sv}":   {"d", map[string]dbus.Variant{"emitted": dbus.MakeVariant(uint64(3))}},
		"counters as a{su}":   {"d", map[string]uint32{"emitted": 3}},
		"description as uint": {uint64(1), map[string]uint64{}},
		"one field":           {"d"},
	} {
		if _, err := DecodeSensorDetails(map[string][]any{"process": bad}); err == nil || !strings.Contains(err.Error(), "process") {
			t.Errorf("%s: %v, want an error naming the sensor", name, err)
		}
	}
}
