package sensors

import "testing"

func TestHubCountsRefusedEventsAndSlowSubscribersLoseTheOldest(t *testing.T) {
	h := NewHub(2)
	var kept []Event
	h.SetSink(func(ev Event) bool {
		if len(kept) == 2 {
			return false
		}
		kept = append(kept, ev)
		return true
	}, nil)
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
