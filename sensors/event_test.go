package sensors

import (
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/api"
)

func TestHubCountsRefusedEventsAndSlowSubscribersLoseTheOldest(t *testing.T) {
	h := NewHub(2)
	var kept []Event
	h.SetSink(func(ev Event) bool {
		if len(kept) == 2 {
			return false
		}
		kept = append(kept, ev)
		return true
	})
	for i := 0; i < 5; i++ {
		h.Publish(Event{PID: uint32(i)})
	}
	c := h.Counters()
	if c["queued"] != 2 || c["dropped_queue"] != 3 {
		t.Fatalf("counters %v", c)
	}
	sub := h.Subscribe(2)
	h.Deliver([]Event{{Seq: 1}, {Seq: 2}, {Seq: 3}})
	if sub.Dropped() != 1 || (<-sub.C).Seq != 2 || (<-sub.C).Seq != 3 {
		t.Fatalf("subscriber kept the wrong events (dropped %d)", sub.Dropped())
	}
	if h.Counters()["dropped_subscribers"] != 1 {
		t.Fatalf("subscriber drop not counted: %v", h.Counters())
	}
	sub.Unsubscribe()
	h.Deliver([]Event{{Seq: 4}})
	if len(sub.C) != 0 {
		t.Fatal("delivered after Unsubscribe")
	}
}

// Urgent events commit at once, but at most once per urgentGap: a user who
// crashes processes in a loop cannot turn every event into an fdatasync.
func TestUrgentEventsCommitAtOnceButRateLimited(t *testing.T) {
	h := NewHub(16)
	var accepted int
	h.SetSink(func(Event) bool { accepted++; return true })
	var commits int
	h.SetUrgent(func(ev *Event) bool { return ev.Kind == api.KindOOMKill }, func() { commits++ })
	h.Publish(Event{Kind: api.KindProcessExec})
	if commits != 0 {
		t.Fatalf("an exec committed early")
	}
	h.Publish(Event{Kind: api.KindOOMKill})
	if commits != 1 {
		t.Fatalf("an OOM kill did not commit at once (%d commits)", commits)
	}
	for range 100 {
		h.Publish(Event{Kind: api.KindOOMKill})
	}
	if commits != 1 || accepted != 102 {
		t.Fatalf("a burst of urgent events: %d commits, %d accepted; want 1 and 102", commits, accepted)
	}
	time.Sleep(urgentGap + 5*time.Millisecond)
	h.Publish(Event{Kind: api.KindOOMKill})
	if commits != 2 {
		t.Fatalf("after the gap: %d commits, want 2", commits)
	}
}
