package sensors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// What every eBPF sensor shares: loading one object with only the programs
// of the chosen variant, attaching them, reading per-CPU counters, and one
// reader goroutine per ring buffer.
//
// Programs are named "<prefix><tracepoint>" in bpf/*.bpf.c, prefix "btf_"
// for tp_btf and "raw_" for raw tracepoints. A classic tracepoint variant is
// left out on purpose: it needs tracefs mounted (it is not at boot on many
// machines) and raw_tp works wherever it would.

// bpfVariants is the ladder of an eBPF sensor: tp_btf (typed, cheapest),
// then raw_tp (no BTF attach), then any fallbacks of its own.
func bpfVariants(start func(env *Env, btf bool) (Running, error), fallbacks ...Variant) []Variant {
	return append([]Variant{
		{Name: "tp_btf", Start: func(_ context.Context, env *Env) (Running, error) { return start(env, true) }},
		{Name: "raw_tp", Start: func(_ context.Context, env *Env) (Running, error) { return start(env, false) }},
	}, fallbacks...)
}

// bpfObject is one loaded eBPF collection with its programs attached.
type bpfObject struct {
	coll         *ebpf.Collection
	links        []link.Link
	counterNames []string // index → name of the per-CPU "counters" map
}

// loadBPF loads spec with only the programs of one variant and attaches
// each to its tracepoint. counterNames name the slots of the object's
// "counters" map.
func loadBPF(spec *ebpf.CollectionSpec, btf bool, tracepoints []string, counterNames []string) (*bpfObject, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()
	if v, ok := spec.Variables["self_tgid"]; ok {
		if err := v.Set(uint32(os.Getpid())); err != nil {
			return nil, fmt.Errorf("set self_tgid: %w", err)
		}
	}
	prefix := map[bool]string{true: "btf_", false: "raw_"}[btf]
	// Load only this variant's programs, so a program type the kernel
	// refuses cannot fail the other variant.
	keep := map[string]string{}
	for _, tp := range tracepoints {
		keep[prefix+tp] = tp
	}
	for name := range spec.Programs {
		if _, ok := keep[name]; !ok {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	o := &bpfObject{coll: coll, counterNames: counterNames}
	for _, tp := range tracepoints {
		prog := coll.Programs[prefix+tp]
		if prog == nil {
			o.Close()
			return nil, fmt.Errorf("object has no program %s%s", prefix, tp)
		}
		var l link.Link
		if btf {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		} else {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
		}
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("attach %s: %w", tp, err)
		}
		o.links = append(o.links, l)
	}
	return o, nil
}

// addCounters sums the per-CPU counters into out.
func (o *bpfObject) addCounters(out map[string]uint64) {
	m := o.coll.Maps["counters"]
	if m == nil {
		return
	}
	var per []uint64
	for idx, name := range o.counterNames {
		if err := m.Lookup(uint32(idx), &per); err != nil {
			continue
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
}

func (o *bpfObject) Close() {
	for _, l := range o.links {
		l.Close()
	}
	o.links = nil
	o.coll.Close()
}

// The reader of a ring whose programs submit with BPF_RB_NO_WAKEUP looks for
// events every readerPoll while events flow, backing off to readerIdlePoll
// when the ring stays empty, so an idle daemon's three polled rings wake 3
// times a second instead of 150 (BenchmarkIdleDaemon: 0.6 % of a core at a
// 200 ms back-off). The first event after a quiet spell waits at most that
// long for the journal — events keep their kernel time stamps — and a
// burst (64 KiB pending) wakes the reader at once, as does an urgent event
// (a crash's exit). Rings of rare, urgent events (OOM kills) wake their
// reader at once and it just blocks. 60 ms rather than 20: every wake-up of
// an otherwise idle daemon costs scheduler and Go runtime (sysmon) work
// that dwarfs decoding a few events; three alternating pairs of 3,000-exec
// storms cost the daemon 13–20 ticks at 60 ms against 26–51 at 20 ms.
const (
	readerPoll     = 60 * time.Millisecond
	readerIdlePoll = time.Second
)

// ringReader is the one reader of a ring: it decodes into a reused record
// and hands events to the hub, which never blocks it.
type ringReader struct {
	reader *ringbuf.Reader
	decode func([]byte) (Event, error)
	hub    *Hub
	urgent bool
	wg     sync.WaitGroup

	decoded      atomic.Uint64
	decodeErrors atomic.Uint64
}

func startRing(m *ebpf.Map, hub *Hub, urgent bool, decode func([]byte) (Event, error)) (*ringReader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("ring reader: %w", err)
	}
	r := &ringReader{reader: rd, decode: decode, hub: hub, urgent: urgent}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

func (r *ringReader) run() {
	defer r.wg.Done()
	var rec ringbuf.Record
	poll, got := readerPoll, false
	if !r.urgent {
		r.reader.SetDeadline(time.Now().Add(poll))
	}
	for {
		err := r.reader.ReadInto(&rec)
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
			r.reader.SetDeadline(time.Now().Add(poll))
			continue
		case err != nil:
			r.decodeErrors.Add(1)
			continue
		}
		ev, err := r.decode(rec.RawSample)
		if err != nil {
			r.decodeErrors.Add(1)
			continue
		}
		r.decoded.Add(1)
		got = true
		r.hub.Publish(ev)
	}
}

func (r *ringReader) Close() {
	r.reader.Close()
	r.wg.Wait()
}

// ringSensor is an event sensor: one object, one ring.
type ringSensor struct {
	obj  *bpfObject
	ring *ringReader
}

// startRingSensor loads and attaches an object and starts reading its
// "events" ring.
func startRingSensor(env *Env, spec *ebpf.CollectionSpec, btf bool, tracepoints, counterNames []string, urgent bool, decode func([]byte) (Event, error)) (Running, error) {
	if env.Hub == nil {
		return nil, errors.New("no event hub")
	}
	obj, err := loadBPF(spec, btf, tracepoints, counterNames)
	if err != nil {
		return nil, err
	}
	ring, err := startRing(obj.coll.Maps["events"], env.Hub, urgent, decode)
	if err != nil {
		obj.Close()
		return nil, err
	}
	return &ringSensor{obj: obj, ring: ring}, nil
}

func (s *ringSensor) Counters() map[string]uint64 {
	out := map[string]uint64{"decoded": s.ring.decoded.Load(), "decode_errors": s.ring.decodeErrors.Load()}
	s.obj.addCounters(out)
	return out
}

// Close detaches the programs first, so nothing is written to a ring whose
// reader is gone.
func (s *ringSensor) Close() error {
	for _, l := range s.obj.links {
		l.Close()
	}
	s.obj.links = nil
	s.ring.Close()
	s.obj.Close()
	return nil
}

// cString is a NUL-terminated C string from a fixed-size field.
func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
