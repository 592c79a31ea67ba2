package sensors

import (
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/npllm/npllm/bpf"
	"github.com/npllm/npllm/dbus/testbus"
)

// Every eBPF sensor loads and attaches both of its eBPF variants on this
// kernel (the ladder's later rungs are tested where they are forced).
func TestEveryBPFVariantLoadsAndAttaches(t *testing.T) {
	testbus.Privileged(t)
	env := &Env{ProcRoot: "/proc", Log: discardLog(), Hub: NewHub(16)}
	env.Hub.SetSink(func(Event) bool { return true }, nil)
	n := 0
	for _, reg := range Registered() {
		for _, v := range reg.Variants {
			if v.Name != "tp_btf" && v.Name != "raw_tp" {
				continue
			}
			run, err := v.Start(t.Context(), env)
			if err != nil {
				t.Errorf("%s/%s: %v", reg.Name, v.Name, err)
				continue
			}
			n++
			if _, ok := run.Counters()["emitted"]; !ok && reg.Name != "syscalls" && reg.Name != "runq_latency" && reg.Name != "block_io_latency" {
				t.Errorf("%s/%s: no emitted counter in %v", reg.Name, v.Name, run.Counters())
			}
			if err := run.Close(); err != nil {
				t.Errorf("%s/%s: close: %v", reg.Name, v.Name, err)
			}
		}
	}
	if n < 14 {
		t.Errorf("only %d eBPF variants started; want the 7 sensors × 2", n)
	}
}

// The hand decoders' offsets agree with the C structs, as compiled
// (bpf2go's Go twins come from the objects' BTF).
func TestRecordLayoutsMatchTheCompiledStructs(t *testing.T) {
	check := func(name string, got, want uintptr) {
		t.Helper()
		if got != want {
			t.Errorf("%s: C offset %d, decoder uses %d", name, got, want)
		}
	}
	var p bpf.ProcessNpllmProcEvent
	check("proc.pid", unsafe.Offsetof(p.Pid), offPID)
	check("proc.exit_signal", unsafe.Offsetof(p.ExitSignal), offExitSignal)
	check("proc.max_rss", unsafe.Offsetof(p.MaxRssBytes), offMaxRSS)
	check("proc.comm", unsafe.Offsetof(p.Comm), offComm)
	check("proc.args", unsafe.Offsetof(p.Args), offArgs)
	check("proc size", unsafe.Sizeof(p), recSize)
	check("proc short size", (unsafe.Offsetof(p.Filename)+7)&^7, shortRecSize)
	var o bpf.OOMNpllmOomEvent
	check("oom.rss", unsafe.Offsetof(o.RssBytes), oomRSS)
	check("oom.oom_score_adj", unsafe.Offsetof(o.OomScoreAdj), oomScoreAdj)
	check("oom.comm", unsafe.Offsetof(o.Comm), oomComm)
	check("oom size", unsafe.Sizeof(o), oomSize)
	var s bpf.SignalNpllmSignalEvent
	check("signal.signal", unsafe.Offsetof(s.Signal), sigSignal)
	check("signal.ktime", unsafe.Offsetof(s.KtimeNs), sigKtime)
	check("signal.target_start", unsafe.Offsetof(s.TargetStartBoottimeNs), sigTargetStart)
	check("signal.target_comm", unsafe.Offsetof(s.TargetComm), sigTargetComm)
	check("signal size", unsafe.Sizeof(s), sigSize)
	var c bpf.TCPNpllmTcpEvent
	check("tcp.dport", unsafe.Offsetof(c.Dport), tcpDport)
	check("tcp.pid", unsafe.Offsetof(c.Pid), tcpPID)
	check("tcp.retransmits", unsafe.Offsetof(c.Retransmits), tcpRetrans)
	check("tcp.saddr", unsafe.Offsetof(c.Saddr), tcpSaddr)
	check("tcp.comm", unsafe.Offsetof(c.Comm), tcpComm)
	check("tcp size", unsafe.Sizeof(c), tcpSize)
}

// loadForTestRun loads a spec's raw_tp programs without attaching them and
// without the self filter, for BPF_PROG_TEST_RUN.
func loadForTestRun(t *testing.T, spec *ebpf.CollectionSpec) *ebpf.Collection {
	t.Helper()
	for name := range spec.Programs {
		if name[:4] != "raw_" {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(coll.Close)
	return coll
}

func runRaw(t *testing.T, prog *ebpf.Program, args ...uint64) {
	t.Helper()
	if _, err := prog.Run(&ebpf.RunOptions{Context: args}); err != nil {
		t.Fatalf("test run: %v", err)
	}
}

// The syscall program, run with fake tracepoint arguments in this thread:
// a failing and a succeeding call are counted, the failure under its errno.
func TestSyscallProgramCountsCallsAndErrnos(t *testing.T) {
	testbus.Privileged(t)
	spec, err := bpf.LoadSyscalls()
	if err != nil {
		t.Fatal(err)
	}
	coll := loadForTestRun(t, spec)
	runtime.LockOSThread() // enter and exit must come from one thread
	defer runtime.UnlockOSThread()
	const nr = 4242 // no such syscall: nothing real can collide with it
	enoent := uint64(0xffffffffffffffff - 1)
	runRaw(t, coll.Programs["raw_sys_enter"], 0, nr)
	runRaw(t, coll.Programs["raw_sys_exit"], 0, enoent) // -2
	runRaw(t, coll.Programs["raw_sys_enter"], 0, nr)
	runRaw(t, coll.Programs["raw_sys_exit"], 0, 7)
	runRaw(t, coll.Programs["raw_sys_exit"], 0, 7) // an exit without enter is not counted

	s := &syscallSensor{obj: &bpfObject{coll: coll}}
	rows, err := s.SyscallStats(SyscallQuery{PID: uint32(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("rows %+v, want one for syscall %d", rows, nr)
	}
	r := rows[0]
	if r.Nr != nr || r.Count != 2 || r.Errors != 1 || r.Errnos["ENOENT"] != 1 || r.Syscall != "syscall_4242" || r.UID != uint32(os.Getuid()) {
		t.Errorf("row %+v", r)
	}
}

// The signal program keeps only the fatal signals, and reads the
// SEND_SIG_NOINFO pseudo-pointer as a kill from user space.
func TestSignalProgramFiltersInTheKernel(t *testing.T) {
	testbus.Privileged(t)
	spec, err := bpf.LoadSignal()
	if err != nil {
		t.Fatal(err)
	}
	coll := loadForTestRun(t, spec)
	rd, err := ringbuf.NewReader(coll.Maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	prog := coll.Programs["raw_signal_generate"]
	// args: sig, info, task, group, result
	runRaw(t, prog, 1, 0, 0, 1, 0)  // HUP: filtered
	runRaw(t, prog, 10, 0, 0, 1, 0) // USR1: filtered
	runRaw(t, prog, 9, 0, 0, 1, 0)  // KILL: kept
	rd.SetDeadline(deadlineSoon())
	rec, err := rd.Read()
	if err != nil {
		t.Fatalf("no record for SIGKILL: %v", err)
	}
	ev, err := decodeSignalEvent(rec.RawSample)
	if err != nil {
		t.Fatal(err)
	}
	if s := ev.Signal; s == nil || s.Signal != 9 || s.Code != 0 || s.SenderPID != uint32(os.Getpid()) {
		t.Errorf("event %+v signal %+v", ev, ev.Signal)
	}
	if rd.AvailableBytes() != 0 {
		t.Errorf("%d more bytes in the ring: HUP or USR1 got through", rd.AvailableBytes())
	}
}

func TestHistogramQuantilesAreUpperBounds(t *testing.T) {
	h := Histogram{Counts: make([]uint64, 12)}
	h.Counts[log2Bucket(1000)] = 90 // [512, 1024)
	h.Counts[log2Bucket(3000)] = 10 // [2048, 4096)
	if h.Total() != 100 {
		t.Fatalf("total %d", h.Total())
	}
	for q, want := range map[float64]uint64{0.5: 1024, 0.9: 1024, 0.95: 4096, 1: 4096} {
		if got := h.Quantile(q); got != want {
			t.Errorf("quantile %.2f = %d, want %d", q, got, want)
		}
	}
	if lo, hi := BucketBounds(0); lo != 0 || hi != 2 {
		t.Errorf("bucket 0 = [%d, %d)", lo, hi)
	}
	if log2Bucket(1) != 0 || log2Bucket(2) != 1 || log2Bucket(3) != 1 || log2Bucket(1<<40) != 40 {
		t.Error("log2Bucket disagrees with bpf/common.h")
	}
}

func deadlineSoon() time.Time { return time.Now().Add(time.Second) }
