package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/bpf"
)

// The "process" sensor reports exec, fork and exit of whole processes. Its
// ladder: tp_btf (typed, cheapest) → raw_tp (no BTF attach) → procfs (diff
// of /proc, for machines where eBPF is forbidden). A classic tracepoint
// variant is left out on purpose: it needs tracefs mounted (it is not at
// boot on many machines) and raw_tp works wherever it would.
func init() {
	Register(Registration{
		Name:        "process",
		Description: "process exec, fork and exit events",
		DefaultOn:   true,
		Variants: []Variant{
			{Name: "tp_btf", Start: func(ctx context.Context, env *Env) (Running, error) { return startProcessBPF(env, true) }},
			{Name: "raw_tp", Start: func(ctx context.Context, env *Env) (Running, error) { return startProcessBPF(env, false) }},
			{Name: "procfs", Start: startProcessProcfs},
		},
	})
}

// The ring reader looks for events the kernel submitted without waking it
// (BPF_RB_NO_WAKEUP) every readerPoll while events flow, backing off to
// readerIdlePoll when the ring stays empty, so an idle daemon wakes 5 times
// a second here instead of 50. Rare urgent events (OOM kills) belong on a
// ring whose programs wake the reader at once.
const (
	readerPoll     = 20 * time.Millisecond
	readerIdlePoll = 200 * time.Millisecond
)

type processBPF struct {
	coll     *ebpf.Collection
	events   *ebpf.Map
	counters *ebpf.Map
	links    []link.Link
	reader   *ringbuf.Reader
	hub      *Hub
	wg       sync.WaitGroup

	decoded      atomic.Uint64
	decodeErrors atomic.Uint64
}

func startProcessBPF(env *Env, btf bool) (Running, error) {
	if env.Hub == nil {
		return nil, errors.New("no event hub")
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()
	spec, err := bpf.LoadProcess()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	if err := spec.Variables["self_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("set self_tgid: %w", err)
	}
	// Load only this variant's programs, so a program type the kernel
	// refuses cannot fail the other variant.
	want := map[bool][]string{true: {"btf_exec", "btf_fork", "btf_exit"}, false: {"raw_exec", "raw_fork", "raw_exit"}}[btf]
	for name := range spec.Programs {
		if !slices.Contains(want, name) {
			delete(spec.Programs, name)
		}
	}
	s := &processBPF{hub: env.Hub}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	s.coll = coll
	s.events, s.counters = coll.Maps["events"], coll.Maps["counters"]
	tracepoints := []string{"sched_process_exec", "sched_process_fork", "sched_process_exit"}
	for i, name := range want {
		prog := coll.Programs[name]
		var l link.Link
		if btf {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		} else {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: tracepoints[i], Program: prog})
		}
		if err != nil {
			s.closeLinks()
			coll.Close()
			return nil, fmt.Errorf("attach %s: %w", tracepoints[i], err)
		}
		s.links = append(s.links, l)
	}
	s.reader, err = ringbuf.NewReader(s.events)
	if err != nil {
		s.closeLinks()
		coll.Close()
		return nil, fmt.Errorf("ring reader: %w", err)
	}
	s.wg.Add(1)
	go s.read()
	return s, nil
}

// read is the one reader of the ring: it decodes into a reused record and
// hands events to the hub, which never blocks it.
func (s *processBPF) read() {
	defer s.wg.Done()
	var rec ringbuf.Record
	poll, got := readerPoll, false
	s.reader.SetDeadline(time.Now().Add(poll))
	for {
		err := s.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, ringbuf.ErrClosed):
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			if got {
				poll = readerPoll
			} else {
				poll = min(2*poll, readerIdlePoll)
			}
			got = false
			s.reader.SetDeadline(time.Now().Add(poll))
			continue
		case err != nil:
			s.decodeErrors.Add(1)
			continue
		}
		ev, err := decodeProcEvent(rec.RawSample)
		if err != nil {
			s.decodeErrors.Add(1)
			continue
		}
		s.decoded.Add(1)
		got = true
		s.hub.Publish(ev)
	}
}

// Offsets of struct npllm_proc_event (bpf/process.h).
const (
	offType, offCore, offPID, offPPID, offUID          = 0, 1, 4, 8, 12
	offExitCode, offExitSignal                         = 16, 20
	offStart, offCgroup, offKtime, offCPU, offMaxRSS   = 24, 32, 40, 48, 56
	offArgsLen, offComm, offFilename, offArgs, recSize = 64, 68, 84, 212, 468
)

// Clock ticks per second of /proc/pid/stat start times (USER_HZ).
const nsPerTick = 1e9 / userHZ

func decodeProcEvent(b []byte) (Event, error) {
	if len(b) < recSize {
		return Event{}, fmt.Errorf("short record: %d bytes", len(b))
	}
	le := binary.LittleEndian
	pid, uid := le.Uint32(b[offPID:]), le.Uint32(b[offUID:])
	comm := cString(b[offComm : offComm+16])
	start := le.Uint64(b[offStart:])
	ev := Event{TimeNS: bootToUnixNS(le.Uint64(b[offKtime:])), PID: pid, UID: uid, HasUID: true}
	switch b[offType] {
	case 1:
		n := min(int(le.Uint32(b[offArgsLen:])), 256)
		ev.Kind = "process.exec"
		ev.Fields = map[string]any{
			"pid": pid, "ppid": le.Uint32(b[offPPID:]), "uid": uid, "comm": comm,
			"filename": cString(b[offFilename : offFilename+128]), "argv": splitArgs(b[offArgs : offArgs+n]),
			"start_time": start / nsPerTick, "cgroup_id": le.Uint64(b[offCgroup:]),
		}
	case 2:
		ev.Kind = "process.fork"
		ev.Fields = map[string]any{"pid": pid, "ppid": le.Uint32(b[offPPID:]), "uid": uid, "comm": comm, "start_time": start / nsPerTick}
	case 3:
		ev.Kind = "process.exit"
		ev.Fields = map[string]any{
			"pid": pid, "uid": uid, "comm": comm,
			"exit_code": int32(le.Uint32(b[offExitCode:])), "signal": le.Uint32(b[offExitSignal:]),
			"core_dumped": b[offCore] != 0, "cpu_ns": le.Uint64(b[offCPU:]), "max_rss_bytes": le.Uint64(b[offMaxRSS:]),
			"runtime_ns": le.Uint64(b[offKtime:]) - start, "start_time": start / nsPerTick,
		}
	default:
		return Event{}, fmt.Errorf("unknown record type %d", b[offType])
	}
	return ev, nil
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
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

func (s *processBPF) Counters() map[string]uint64 {
	out := map[string]uint64{"decoded": s.decoded.Load(), "decode_errors": s.decodeErrors.Load()}
	var per []uint64
	for idx, name := range []string{"emitted", "dropped_kernel"} {
		if err := s.counters.Lookup(uint32(idx), &per); err == nil {
			var sum uint64
			for _, v := range per {
				sum += v
			}
			out[name] = sum
		}
	}
	return out
}

func (s *processBPF) closeLinks() {
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
}

func (s *processBPF) Close() error {
	s.closeLinks()
	s.reader.Close()
	s.wg.Wait()
	s.coll.Close()
	return nil
}
