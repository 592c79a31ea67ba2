package sensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/bpf"
	"github.com/npllm/npllm/dbus/api"
)

// The "process" sensor reports exec, fork and exit of whole processes. Its
// ladder: tp_btf → raw_tp → procfs (diff of /proc, for machines where eBPF
// is forbidden).
func init() {
	Register(Registration{
		Name:        "process",
		Description: "process exec, fork and exit events",
		DefaultOn:   true,
		Variants:    bpfVariants(startProcessBPF, Variant{Name: "procfs", Start: startProcessProcfs}),
	})
}

var processTracepoints = []string{"sched_process_exec", "sched_process_fork", "sched_process_exit"}

func startProcessBPF(env *Env, btf bool) (Running, error) {
	spec, err := bpf.LoadProcess()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	d := &procDecoder{}
	return startRingSensor(env, spec, btf, processTracepoints, []string{"emitted", "dropped_kernel"}, false, d.decode)
}

// Offsets of struct npllm_proc_event (bpf/process.h).
const (
	offType, offCore, offPID, offPPID, offUID          = 0, 1, 4, 8, 12
	offExitCode, offExitSignal                         = 16, 20
	offStart, offCgroup, offKtime, offCPU, offMaxRSS   = 24, 32, 40, 48, 56
	offArgsLen, offComm, offFilename, offArgs, recSize = 64, 68, 84, 212, 472
	// Fork and exit records end after comm (PROC_SHORT_LEN, 8-aligned).
	shortRecSize = 88
)

// Clock ticks per second of /proc/pid/stat start times (USER_HZ).
const nsPerTick = 1e9 / userHZ

// procDecoder decodes on the ring's one reader goroutine. It interns comm
// and filename: an exec storm repeats a handful of names, and two string
// allocations per event were a visible share of the reader's garbage.
type procDecoder struct {
	names map[string]string
}

func (d *procDecoder) intern(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil || len(d.names) >= 4096 {
		d.names = make(map[string]string, 256)
	}
	s := string(b)
	d.names[s] = s
	return s
}

func (d *procDecoder) decode(b []byte) (Event, error) { return decodeProcEvent(b, d.intern) }

func decodeProcEvent(b []byte, name func([]byte) string) (Event, error) {
	if len(b) < shortRecSize || (b[offType] == 1 && len(b) < recSize) {
		return Event{}, fmt.Errorf("short record: %d bytes", len(b))
	}
	le := binary.LittleEndian
	pid, uid := le.Uint32(b[offPID:]), le.Uint32(b[offUID:])
	comm := name(b[offComm : offComm+16])
	start := le.Uint64(b[offStart:])
	ev := Event{TimeNS: bootToUnixNS(le.Uint64(b[offKtime:])), PID: pid, UID: uid, HasUID: true,
		Comm: comm, StartTime: start / nsPerTick}
	switch b[offType] {
	case 1:
		n := min(int(le.Uint32(b[offArgsLen:])), 256)
		ev.Kind = api.KindProcessExec
		ev.PPID = le.Uint32(b[offPPID:])
		ev.Filename = name(b[offFilename : offFilename+128])
		ev.Argv = splitArgs(b[offArgs : offArgs+n])
		ev.CgroupID = le.Uint64(b[offCgroup:])
	case 2:
		ev.Kind = api.KindProcessFork
		ev.PPID = le.Uint32(b[offPPID:])
	case 3:
		ev.Kind = api.KindProcessExit
		ev.Exit = &api.ExitStatus{
			ExitCode: int32(le.Uint32(b[offExitCode:])), Signal: le.Uint32(b[offExitSignal:]),
			CoreDumped: b[offCore] != 0, CPUNS: le.Uint64(b[offCPU:]), MaxRSSBytes: le.Uint64(b[offMaxRSS:]),
			RuntimeNS: le.Uint64(b[offKtime:]) - start,
		}
	default:
		return Event{}, fmt.Errorf("unknown record type %d", b[offType])
	}
	return ev, nil
}

func splitArgs(b []byte) []string {
	s := strings.TrimRight(string(b), "\x00")
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\x00")
}

// bootOffset turns the kernel's CLOCK_BOOTTIME stamps into unix time.
var bootOffset = sync.OnceValue(func() int64 {
	var boot, real unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	return real.Nano() - boot.Nano()
})

func bootToUnixNS(boot uint64) uint64 { return uint64(int64(boot) + bootOffset()) }
