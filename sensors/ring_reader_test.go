package sensors

import (
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/npllm/npllm/dbus/testbus"
)

// The rings' readers wait in Go's netpoller or on a timer, never in a
// blocking syscall (one such wait made the runtime's sysmon poll every
// 20 µs: half of npllmd's CPU in the soak), and the polled rings are
// drained together: each drain ends one batch, after its events.
func TestRingReadersWaitOutsideSyscallsAndEndEachBatch(t *testing.T) {
	testbus.Privileged(t)
	var mu sync.Mutex
	var events, batches, eventsAtLastBatch, mixedBatches int
	batchKinds := map[string]bool{}
	hub := NewHub(1 << 16)
	hub.SetSink(func(ev Event) bool {
		mu.Lock()
		events++
		batchKinds[strings.Split(ev.Kind, ".")[0]] = true
		mu.Unlock()
		return true
	}, func() {
		mu.Lock()
		batches++
		eventsAtLastBatch = events
		if batchKinds["process"] && batchKinds["tcp"] {
			mixedBatches++
		}
		clear(batchKinds)
		mu.Unlock()
	})
	env := &Env{ProcRoot: "/proc", Log: discardLog(), Hub: hub}
	var running []Running
	for _, reg := range Registered() {
		if reg.Name != "process" && reg.Name != "oom" && reg.Name != "tcp" {
			continue
		}
		run, err := reg.Variants[0].Start(t.Context(), env)
		if err != nil {
			t.Fatalf("%s: %v", reg.Name, err)
		}
		running = append(running, run)
	}
	defer func() {
		for _, r := range running {
			r.Close()
		}
	}()
	if len(running) != 3 {
		t.Fatalf("started %d of process, oom, tcp", len(running))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for range 20 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ev, b, at := events, batches, eventsAtLastBatch
		mu.Unlock()
		if ev >= 60 && b > 0 && at == ev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 execs: %d events, %d batches, the last one after %d events", ev, b, at)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	mixed := mixedBatches
	mu.Unlock()
	if mixed == 0 { // a ring ending its own batch never mixes kinds
		t.Errorf("no batch held both process and tcp events: the rings are not drained together")
	}
	time.Sleep(200 * time.Millisecond) // every reader back in its wait
	buf := make([]byte, 1<<20)
	stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	readers := 0
	for _, g := range stacks {
		if !strings.Contains(g, "sensors.(*ringReader)") && !strings.Contains(g, "sensors.(*ringPoller)") {
			continue
		}
		readers++
		if head, _, _ := strings.Cut(g, "\n"); strings.Contains(head, "[syscall") {
			t.Errorf("a ring reader waits in a syscall:\n%s", g)
		}
	}
	if readers < 4 { // the poller, two polled rings' wake-up waiters, the OOM ring's reader
		t.Errorf("found %d ring reader goroutines, want at least 4", readers)
	}
}

// Closing a polled ring while the hub's poller drains it (a sensor
// disabled during a storm, or shutdown) must not touch the unmapped ring:
// ringbuf.Reader.AvailableBytes takes no lock (go test -race shows the
// race without drainMu).
func TestClosingARingWhileItIsDrainedIsSafe(t *testing.T) {
	testbus.Privileged(t)
	hub := NewHub(16)
	hub.SetSink(func(Event) bool { return true }, nil)
	for range 20 {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
		if err != nil {
			t.Fatal(err)
		}
		r, err := startRing(m, hub, false, func([]byte) (Event, error) { return Event{}, nil })
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // as the poller does, from its own goroutine
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					r.drain()
				}
			}
		}()
		time.Sleep(time.Millisecond)
		r.Close()
		close(stop)
		<-done
		m.Close()
	}
}
