package sensors

import (
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

// The rings' readers wait in Go's netpoller or on a timer, never in a
// blocking syscall (one such wait made the runtime's sysmon poll every
// 20 µs: half of npllmd's CPU in the soak), and the polled rings are
// drained together: each drain ends one batch, after its events.
func TestRingReadersWaitOutsideSyscallsAndEndEachBatch(t *testing.T) {
	testbus.Privileged(t)
	var mu sync.Mutex
	var events, batches, eventsAtLastBatch int
	hub := NewHub(1 << 16)
	hub.SetSink(func(Event) bool {
		mu.Lock()
		events++
		mu.Unlock()
		return true
	}, func() {
		mu.Lock()
		batches++
		eventsAtLastBatch = events
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
	for range 20 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
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
	b := batches
	mu.Unlock()
	if b > 20 {
		t.Errorf("%d batches for 20 execs: the rings are not drained together", b)
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
