package sensors

import (
	"context"
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

// Rings whose programs submit with BPF_RB_NO_WAKEUP are polled: one
// goroutine per hub drains all of them together on a 120 ms grid while
// events flow, backing off to readerIdlePoll when they stay empty, then
// ends the batch (the journal writes it in the same burst of work). The first
// event after a quiet spell waits at most that long for the journal —
// events keep their kernel time stamps — and a forced wake-up (64 KiB
// pending, or a crash's exit) drains them at once. Rings of rare, urgent
// events (OOM kills) wake their own reader at once. Each wake-up of an
// otherwise idle daemon costs scheduler and Go runtime work that dwarfs
// decoding the batch, so the period sets the cost of a steady trickle:
// in an A/B of the soak (490 events/s) 120 ms cost 0.59–0.66 % of a core
// against 0.96–1.05 % at 60 ms (BENCHMARKS.md).
//
// Every wait is Go's netpoller (the ring's fd) or a timer, never a
// blocking epoll_wait: a goroutine blocked in a syscall for more than
// 10 ms makes the runtime's sysmon retake its P and poll every 20 µs,
// which was half of npllmd's CPU in the soak.
const (
	readerPoll     = 120 * time.Millisecond
	readerIdlePoll = 960 * time.Millisecond // 8 × readerPoll: on the grid
)

// ringReader is the one reader of a ring: it decodes into a reused record
// and hands events to the hub, which never blocks it.
type ringReader struct {
	reader  *ringbuf.Reader
	ready   *os.File // a dup of the ring's fd, in Go's netpoller; nil: the timer alone
	decode  func([]byte) (Event, error)
	hub     *Hub
	urgent  bool
	wg      sync.WaitGroup
	closed  atomic.Bool   // Close began: a failed wait ends the reader
	pollErr error         // why the ring is read on the timer alone (logged)
	done    chan struct{} // closed by Close

	// drainMu keeps Close from unmapping the ring under a drain of the
	// hub's poller (ringbuf.Reader.AvailableBytes takes no lock).
	drainMu sync.Mutex
	gone    bool

	decoded      atomic.Uint64
	decodeErrors atomic.Uint64
}

func startRing(m *ebpf.Map, hub *Hub, urgent bool, decode func([]byte) (Event, error)) (*ringReader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("ring reader: %w", err)
	}
	// Reads never wait in the kernel: the deadline is always past.
	rd.SetDeadline(time.Unix(1, 0))
	r := &ringReader{reader: rd, decode: decode, hub: hub, urgent: urgent, done: make(chan struct{})}
	// Without the netpoller (never seen: ring fds are pollable) the ring
	// is still read, on the poller's timer alone.
	r.ready, r.pollErr = pollableFD(m.FD())
	switch {
	case r.ready == nil:
		r.urgent = false
		hub.rings.add(r)
	case urgent:
		r.wg.Add(1)
		go r.runUrgent()
	default:
		hub.rings.add(r)
		r.wg.Add(1)
		go r.forwardWakeups()
	}
	return r, nil
}

// pollableFD registers a duplicate of a ring's fd with Go's netpoller
// (edge-triggered: it fires when the kernel wakes the ring's waiters).
func pollableFD(fd int) (*os.File, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("nonblock: %w", err)
	}
	f := os.NewFile(uintptr(dup), "ringbuf")
	if err := f.SetReadDeadline(time.Time{}); err != nil { // not in the netpoller
		f.Close()
		return nil, fmt.Errorf("poll: %w", err)
	}
	return f, nil
}

// waitWakeup returns after the kernel's next wake-up of the ring's waiters,
// or at once when ready says so. The netpoller forgets a wake-up that came
// before the wait started, which ready covers where it matters.
func (r *ringReader) waitWakeup(ready func() bool) error {
	rc, err := r.ready.SyscallConn()
	if err != nil {
		return err
	}
	first := true
	return rc.Read(func(uintptr) bool {
		if first {
			first = false
			return ready()
		}
		return true
	})
}

// runUrgent reads an urgent ring: every submit wakes it. It is the ring's
// only reader, and Close waits for it before closing the ring.
func (r *ringReader) runUrgent() {
	defer r.wg.Done()
	for {
		err := r.waitWakeup(func() bool { return r.reader.AvailableBytes() > 0 })
		if err != nil && r.closed.Load() {
			return
		}
		n, failed := r.drain()
		if n > 0 {
			r.hub.EndBatch()
		}
		if err != nil || failed {
			time.Sleep(readerPoll) // never spin, never stop reading
		}
	}
}

// forwardWakeups hands a polled ring's forced wake-ups (a burst, a crash)
// to the hub's poller, then waits for that drain before waiting again: in
// a storm every submit past the watermark wakes the ring.
func (r *ringReader) forwardWakeups() {
	defer r.wg.Done()
	for {
		err := r.waitWakeup(func() bool { return false })
		if err != nil && r.closed.Load() {
			return
		}
		if err != nil {
			time.Sleep(readerPoll)
			continue
		}
		drained := r.hub.rings.kickNow()
		select {
		case <-drained:
		case <-r.done:
			return
		}
	}
}

// drain reads what the ring holds now, without waiting; failed says a
// read went wrong (counted), so a caller looping on it backs off.
func (r *ringReader) drain() (n int, failed bool) {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	if r.gone || r.reader.AvailableBytes() == 0 {
		return 0, false
	}
	var rec ringbuf.Record
	for {
		err := r.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrClosed):
			return n, false
		case err != nil:
			r.decodeErrors.Add(1)
			return n, true
		}
		ev, err := r.decode(rec.RawSample)
		if err != nil {
			r.decodeErrors.Add(1)
			continue
		}
		r.decoded.Add(1)
		n++
		r.hub.Publish(ev)
	}
}

func (r *ringReader) Close() {
	r.closed.Store(true)
	close(r.done)
	if !r.urgent {
		r.hub.rings.remove(r)
	}
	if r.ready != nil {
		r.ready.Close()
	}
	r.wg.Wait()
	r.drainMu.Lock()
	r.gone = true
	r.drainMu.Unlock()
	r.reader.Close()
}

// ringPoller drains a hub's polled rings together; its goroutine runs
// while there is a ring to poll.
type ringPoller struct {
	mu      sync.Mutex
	rings   []*ringReader
	running bool
	kick    chan struct{}
	drained chan struct{} // closed when the drain after a kick has run
}

func (p *ringPoller) add(r *ringReader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rings = append(p.rings, r)
	if p.kick == nil {
		p.kick, p.drained = make(chan struct{}, 1), make(chan struct{})
	}
	if !p.running {
		p.running = true
		go p.run(r.hub)
	}
}

func (p *ringPoller) remove(r *ringReader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rings = slices.DeleteFunc(p.rings, func(x *ringReader) bool { return x == r })
}

// kickNow asks for a drain now; the channel is closed once one has run.
func (p *ringPoller) kickNow() <-chan struct{} {
	p.mu.Lock()
	drained := p.drained
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return drained
}

func (p *ringPoller) run(hub *Hub) {
	poll := readerPoll
	timer := time.NewTimer(time.Until(time.Now().Truncate(readerPoll).Add(poll)))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-p.kick:
			timer.Stop()
		}
		p.mu.Lock()
		rings := slices.Clone(p.rings)
		drained := p.drained
		p.drained = make(chan struct{})
		if len(rings) == 0 {
			p.running = false
			p.mu.Unlock()
			close(drained)
			return
		}
		p.mu.Unlock()
		got := 0
		for _, r := range rings {
			n, _ := r.drain() // a failed read is counted; the timer paces retries
			got += n
		}
		if got > 0 {
			hub.EndBatch()
			poll = readerPoll
		} else {
			poll = min(2*poll, readerIdlePoll)
		}
		close(drained)
		timer.Reset(time.Until(time.Now().Truncate(readerPoll).Add(poll)))
	}
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
	if ring.pollErr != nil {
		env.Log.Warn("event ring not in Go's netpoller: read every 120 ms, forced wake-ups (crashes, OOM kills) wait for it",
			"err", ring.pollErr)
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
