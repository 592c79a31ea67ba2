package api

import (
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Event is one thing that happened, as journaled and served by GetEvents.
//
// One typed record holds the union of every kind's fields: the fields about
// "the process it is about" are shared (PID, UID, PPID, Comm, StartTime),
// and each family of kinds adds one group (Exit, OOM, Signal, TCP, Unit),
// nil when the kind has none or the sensor could not know it (a process
// exit seen by the /proc fallback has no exit status). Fields and
// SetFields are the one mapping to the wire keys of GetEvents' a{sv},
// which the journal stores too: the a{sv} of each kind is unchanged.
type Event struct {
	Seq    uint64 // assigned by the journal, strictly increasing across restarts
	TimeNS uint64 // unix ns
	Kind   string // one of EventKinds
	// PID and UID are the process the event is about, for filters and
	// privacy: signal.sent's target, 0 for unit events (HasUID false).
	PID    uint32
	UID    uint32
	HasUID bool

	PPID      uint32   // process.exec, process.fork
	Comm      string   // process.*, oom.kill, tcp.*, signal.sent (the target)
	StartTime uint64   // clock ticks since boot, as /proc/PID/stat; 0 unknown
	Filename  string   // process.exec; private
	Argv      []string // process.exec; private
	CgroupID  uint64   // process.exec (eBPF only; 0 unknown)

	Exit   *ExitStatus // process.exit, when the sensor saw it (eBPF)
	OOM    *OOMKill    // oom.kill
	Signal *SignalSent // signal.sent
	TCP    *TCPConn    // tcp.connect, tcp.accept, tcp.close
	Unit   *UnitChange // unit.failed, unit.restarted
	Tuning *TuningNote // tuning.*
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	ExitCode    int32
	Signal      uint32 // the signal that ended it, 0 if it exited
	CoreDumped  bool
	CPUNS       uint64
	MaxRSSBytes uint64
	RuntimeNS   uint64
}

// OOMKill is the victim's state when the kernel killed it.
type OOMKill struct {
	RSSBytes    uint64
	OOMScoreAdj int32
	Cgroup      string // private to the owner and root in alerts
}

// SignalSent is who sent which signal to the event's process.
type SignalSent struct {
	SenderPID  uint32
	SenderUID  uint32
	SenderComm string
	Signal     int32
	Code       int32
	Result     int32
}

// TCPConn is one TCP connection; byte counts are payload.
type TCPConn struct {
	Family      string // "ipv4" or "ipv6"
	Saddr       string // private
	Sport       uint32
	Daddr       string // private
	Dport       uint32
	RxBytes     uint64
	TxBytes     uint64
	DurationNS  uint64
	Retransmits uint32
}

// UnitChange is a systemd unit that failed or was restarted.
type UnitChange struct {
	Unit       string
	Restarts   uint32 // unit.restarted
	Result     string // unit.failed: systemd's Result ("exit-code", …)
	ExitCode   string // unit.failed: "exited", "killed" or "dumped"
	ExitStatus int32  // unit.failed
}

// TuningNote is what happened to a tuning trial. Changes and figures are
// words ("vm.swappiness: 60 → 10", "psi.memory.some: 1.2 → 9.8") as the
// journal stores no nested records.
type TuningNote struct {
	Trial    string
	State    string
	Workload string
	Reason   string
	Changes  []string
	Figures  []string // tuning.regressed: the evidence; otherwise before → after when known
}

// Fields are the event's kind-specific fields as D-Bus-ready values
// (uint32, uint64, int32, string, bool, []string), keyed as on the wire;
// seq, time_ns and kind are not among them.
func (e *Event) Fields() map[string]any {
	m := make(map[string]any, 12)
	e.EachField(func(k string, v any) { m[k] = v })
	return m
}

// EachField calls fn with each of Fields' keys and values, in a fixed
// order, without building a map (the journal's encoder).
func (e *Event) EachField(fn func(key string, value any)) {
	proc := func(start bool) {
		fn("pid", e.PID)
		fn("uid", e.UID)
		fn("comm", e.Comm)
		if start {
			fn("start_time", e.StartTime)
		}
	}
	switch e.Kind {
	case KindProcessExec:
		proc(true)
		fn("ppid", e.PPID)
		fn("filename", e.Filename)
		argv := e.Argv
		if argv == nil {
			argv = []string{}
		}
		fn("argv", argv)
		if e.CgroupID != 0 {
			fn("cgroup_id", e.CgroupID)
		}
	case KindProcessFork:
		proc(true)
		fn("ppid", e.PPID)
	case KindProcessExit:
		proc(true)
		if x := e.Exit; x != nil {
			fn("exit_code", x.ExitCode)
			fn("signal", x.Signal)
			fn("core_dumped", x.CoreDumped)
			fn("cpu_ns", x.CPUNS)
			fn("max_rss_bytes", x.MaxRSSBytes)
			fn("runtime_ns", x.RuntimeNS)
		}
	case KindOOMKill:
		proc(e.StartTime != 0) // the kmsg fallback does not know it
		if o := e.OOM; o != nil {
			fn("rss_bytes", o.RSSBytes)
			fn("oom_score_adj", o.OOMScoreAdj)
			fn("cgroup", o.Cgroup)
		}
	case KindSignalSent:
		fn("target_pid", e.PID)
		fn("target_uid", e.UID)
		fn("target_comm", e.Comm)
		fn("target_start_time", e.StartTime)
		if s := e.Signal; s != nil {
			fn("sender_pid", s.SenderPID)
			fn("sender_uid", s.SenderUID)
			fn("sender_comm", s.SenderComm)
			fn("signal", s.Signal)
			fn("code", s.Code)
			fn("result", s.Result)
		}
	case KindTCPConnect, KindTCPAccept, KindTCPClose:
		proc(false)
		if c := e.TCP; c != nil {
			fn("family", c.Family)
			fn("saddr", c.Saddr)
			fn("sport", c.Sport)
			fn("daddr", c.Daddr)
			fn("dport", c.Dport)
			fn("rx_bytes", c.RxBytes)
			fn("tx_bytes", c.TxBytes)
			fn("duration_ns", c.DurationNS)
			fn("retransmits", c.Retransmits)
		}
	case KindUnitRestarted:
		if u := e.Unit; u != nil {
			fn("unit", u.Unit)
			fn("restarts", u.Restarts)
		}
	case KindUnitFailed:
		if u := e.Unit; u != nil {
			fn("unit", u.Unit)
			fn("result", u.Result)
			fn("exit_code", u.ExitCode)
			fn("exit_status", u.ExitStatus)
		}
	case KindTuningStarted, KindTuningRegressed, KindTuningReverted, KindTuningConfirmed, KindTuningEnded:
		if n := e.Tuning; n != nil {
			fn("trial", n.Trial)
			fn("state", n.State)
			fn("workload", n.Workload)
			fn("reason", n.Reason)
			fn("changes", nonNil(n.Changes))
			fn("figures", nonNil(n.Figures))
		}
	}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// SetFields fills the kind-specific fields of e (Kind set) from m, as
// Fields makes them. A known key of the wrong type is an error naming it;
// unknown keys are ignored (a newer npllmd may add some); missing keys stay
// zero (older records, fallbacks that know less).
func (e *Event) SetFields(m map[string]any) error {
	r := fieldReader{m: m, kind: e.Kind}
	has := func(k string) bool { _, ok := m[k]; return ok }
	proc := func() {
		r.u32("pid", &e.PID)
		if has("uid") {
			r.u32("uid", &e.UID)
			e.HasUID = e.HasUID || e.PID != 0
		}
		r.str("comm", &e.Comm)
		r.u64("start_time", &e.StartTime)
	}
	switch e.Kind {
	case KindProcessExec:
		proc()
		r.u32("ppid", &e.PPID)
		r.str("filename", &e.Filename)
		r.strs("argv", &e.Argv)
		r.u64("cgroup_id", &e.CgroupID)
	case KindProcessFork:
		proc()
		r.u32("ppid", &e.PPID)
	case KindProcessExit:
		proc()
		if has("exit_code") || has("signal") {
			x := &ExitStatus{}
			r.i32("exit_code", &x.ExitCode)
			r.u32("signal", &x.Signal)
			r.boolean("core_dumped", &x.CoreDumped)
			r.u64("cpu_ns", &x.CPUNS)
			r.u64("max_rss_bytes", &x.MaxRSSBytes)
			r.u64("runtime_ns", &x.RuntimeNS)
			e.Exit = x
		}
	case KindOOMKill:
		proc()
		o := &OOMKill{}
		r.u64("rss_bytes", &o.RSSBytes)
		r.i32("oom_score_adj", &o.OOMScoreAdj)
		r.str("cgroup", &o.Cgroup)
		e.OOM = o
	case KindSignalSent:
		r.u32("target_pid", &e.PID)
		if has("target_uid") {
			r.u32("target_uid", &e.UID)
			e.HasUID = true
		}
		r.str("target_comm", &e.Comm)
		r.u64("target_start_time", &e.StartTime)
		s := &SignalSent{}
		r.u32("sender_pid", &s.SenderPID)
		r.u32("sender_uid", &s.SenderUID)
		r.str("sender_comm", &s.SenderComm)
		r.i32("signal", &s.Signal)
		r.i32("code", &s.Code)
		r.i32("result", &s.Result)
		e.Signal = s
	case KindTCPConnect, KindTCPAccept, KindTCPClose:
		proc()
		c := &TCPConn{}
		r.str("family", &c.Family)
		r.str("saddr", &c.Saddr)
		r.u32("sport", &c.Sport)
		r.str("daddr", &c.Daddr)
		r.u32("dport", &c.Dport)
		r.u64("rx_bytes", &c.RxBytes)
		r.u64("tx_bytes", &c.TxBytes)
		r.u64("duration_ns", &c.DurationNS)
		r.u32("retransmits", &c.Retransmits)
		e.TCP = c
	case KindUnitRestarted:
		u := &UnitChange{}
		r.str("unit", &u.Unit)
		r.u32("restarts", &u.Restarts)
		e.Unit = u
	case KindUnitFailed:
		u := &UnitChange{}
		r.str("unit", &u.Unit)
		r.str("result", &u.Result)
		r.str("exit_code", &u.ExitCode)
		r.i32("exit_status", &u.ExitStatus)
		e.Unit = u
	case KindTuningStarted, KindTuningRegressed, KindTuningReverted, KindTuningConfirmed, KindTuningEnded:
		n := &TuningNote{}
		r.str("trial", &n.Trial)
		r.str("state", &n.State)
		r.str("workload", &n.Workload)
		r.str("reason", &n.Reason)
		r.strs("changes", &n.Changes)
		r.strs("figures", &n.Figures)
		e.Tuning = n
	}
	return r.err
}

// Encode is the event as one element of GetEvents' aa{sv}.
func (e *Event) Encode() map[string]dbus.Variant {
	f := e.Fields()
	m := make(map[string]dbus.Variant, len(f)+3)
	for k, v := range f {
		m[k] = dbus.MakeVariant(v)
	}
	m["seq"] = dbus.MakeVariant(e.Seq)
	m["time_ns"] = dbus.MakeVariant(e.TimeNS)
	m["kind"] = dbus.MakeVariant(e.Kind)
	return m
}

// DecodeEvent reads one element of GetEvents' aa{sv}, checking every type.
func DecodeEvent(m map[string]dbus.Variant) (Event, error) {
	plain := make(map[string]any, len(m))
	for k, v := range m {
		plain[k] = v.Value()
	}
	var e Event
	r := fieldReader{m: plain, kind: "event"}
	r.u64("seq", &e.Seq)
	r.u64("time_ns", &e.TimeNS)
	r.str("kind", &e.Kind)
	if r.err != nil {
		return Event{}, r.err
	}
	if err := e.SetFields(plain); err != nil {
		return Event{}, err
	}
	return e, nil
}

// fieldReader reads typed values out of a field map; the first wrong type
// is kept as the error.
type fieldReader struct {
	m    map[string]any
	kind string
	err  error
}

func get[T any](r *fieldReader, key string, dst *T) {
	v, ok := r.m[key]
	if !ok {
		return
	}
	t, ok := v.(T)
	if !ok {
		if r.err == nil {
			r.err = fmt.Errorf("%s: field %q is %T, want %T", r.kind, key, v, *dst)
		}
		return
	}
	*dst = t
}

func (r *fieldReader) u32(k string, d *uint32)    { get(r, k, d) }
func (r *fieldReader) u64(k string, d *uint64)    { get(r, k, d) }
func (r *fieldReader) i32(k string, d *int32)     { get(r, k, d) }
func (r *fieldReader) str(k string, d *string)    { get(r, k, d) }
func (r *fieldReader) boolean(k string, d *bool)  { get(r, k, d) }
func (r *fieldReader) strs(k string, d *[]string) { get(r, k, d) }
