package sensors

import (
	"sync"
	"sync/atomic"

	"github.com/npllm/npllm/dbus/api"
)

// Event is the typed record of the API (dbus/api), which sensors produce,
// the journal stores and the alert engine reads.
type Event = api.Event

// Hub takes events from sensors without ever blocking them. It hands each
// event straight to the sink (the journal's pending batch, which is the
// bounded queue: a full one refuses and the hub counts the drop), with no
// channel or goroutine in between: a wake-up per event is the cost that
// matters on an exec storm (BENCHMARKS.md). The journal hands committed
// events back to Subscribers.
type Hub struct {
	capacity  int
	sink      func(Event) bool
	endBatch  func()
	published atomic.Uint64
	dropped   atomic.Uint64

	mu   sync.Mutex
	subs map[*Subscription]struct{}

	rings ringPoller // the polled rings of this hub's sensors, drained together
}

// NewHub makes a hub; capacity is reported with the counters (the sink
// enforces it).
func NewHub(capacity int) *Hub {
	return &Hub{capacity: capacity, subs: map[*Subscription]struct{}{}}
}

// SetSink sets where events go and what ends a batch of them (the rings
// were drained); call it before any sensor starts. endBatch may be nil.
func (h *Hub) SetSink(sink func(Event) bool, endBatch func()) {
	h.sink, h.endBatch = sink, endBatch
}

// EndBatch says the events published since the last call belong together.
func (h *Hub) EndBatch() {
	if h.endBatch != nil {
		h.endBatch()
	}
}

// Publish hands an event to the sink; it never blocks.
func (h *Hub) Publish(ev Event) {
	if h.sink != nil && h.sink(ev) {
		h.published.Add(1)
		return
	}
	h.dropped.Add(1)
}

// Counters of the hub, for GetSensorDetails.
func (h *Hub) Counters() map[string]uint64 {
	out := map[string]uint64{
		"queued":         h.published.Load(),
		"dropped_queue":  h.dropped.Load(),
		"queue_capacity": uint64(h.capacity),
	}
	h.mu.Lock()
	var subDrops uint64
	for s := range h.subs {
		subDrops += s.dropped.Load()
	}
	h.mu.Unlock()
	out["dropped_subscribers"] = subDrops
	return out
}

// Subscription receives committed events; when its buffer is full the
// oldest event is dropped and counted, so a slow subscriber never stalls
// the journal.
type Subscription struct {
	C       chan Event
	dropped atomic.Uint64
	hub     *Hub
	kinds   map[string]bool // nil: every kind
}

// Subscribe registers a subscriber with a buffer of size events, of the
// given kinds only (none: all). Filtering here, not in the subscriber,
// spares a channel hand-off per event it would ignore (the alert engine
// wants a few kinds out of thousands of exec events a second).
func (h *Hub) Subscribe(size int, kinds ...string) *Subscription {
	s := &Subscription{C: make(chan Event, size), hub: h}
	if len(kinds) > 0 {
		s.kinds = map[string]bool{}
		for _, k := range kinds {
			s.kinds[k] = true
		}
	}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Dropped counts events this subscriber lost.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Unsubscribe stops delivery.
func (s *Subscription) Unsubscribe() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
}

// Deliver hands committed events to every subscriber.
func (h *Hub) Deliver(evs []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, ev := range evs {
			if s.kinds != nil && !s.kinds[ev.Kind] {
				continue
			}
			for {
				select {
				case s.C <- ev:
				default:
					select {
					case <-s.C:
						s.dropped.Add(1)
					default:
					}
					continue
				}
				break
			}
		}
	}
}
