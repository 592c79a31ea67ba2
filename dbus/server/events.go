package server

import (
	"slices"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/journal"
)

const (
	defaultEvents = 100
	maxEvents     = 1000
)

// scan is the journal's query: it reads only the records its postings name
// for the filter (kinds, pid, uid) and seeks by seq and time, so a call
// reads at most max records whatever it asks for.
func (a *assistant) scan(afterSeq uint64, n int, f journal.Filter) (uint64, []sensors.Event, error) {
	return a.s.cfg.Journal.Query(afterSeq, n, f)
}

func (a *assistant) GetEvents(msg dbus.Message, afterSeq uint64, max uint32, filter map[string]dbus.Variant) (lastSeq uint64, events []map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetEvents")
	if derr != nil {
		return 0, nil, derr
	}
	defer c.end(&derr)
	if a.s.cfg.Journal == nil {
		return 0, nil, api.NewError(api.ErrNotSupported, "npllmd runs without an event journal")
	}
	n := int(max)
	switch {
	case n == 0:
		n = defaultEvents
	case n > maxEvents:
		n = maxEvents
	}
	var f journal.Filter
	o := optionReader{method: "GetEvents", opts: filter}
	f.Kinds, _ = o.strings("kind")
	slices.Sort(f.Kinds)
	if f.Kinds = slices.Compact(f.Kinds); len(f.Kinds) > maxKinds {
		return 0, nil, api.NewError(api.ErrInvalidArgument, "GetEvents: filter \"kind\" names %d kinds, at most %d are accepted", len(f.Kinds), maxKinds)
	}
	if v, ok := o.uint32("pid"); ok {
		f.PID = &v
	}
	if v, ok := o.uint32("uid"); ok {
		f.UID = &v
	}
	f.SinceNS, _ = o.uint64("since_ns")
	if o.err != nil {
		return 0, nil, o.err
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return 0, nil, ToDBus(err)
	}
	if callerUID != 0 {
		if !a.s.events.take(float64(n), eventBudgetWait) {
			time.Sleep(busyDelay)
			return 0, nil, api.NewError(api.ErrBusy, "GetEvents: other callers' answers use the events budget (%d a second); try again shortly, or ask for fewer (max_events)", eventRate)
		}
	}
	last, evs, err := a.scan(afterSeq, n, f)
	if callerUID != 0 {
		a.s.events.give(float64(n - len(evs)))
	}
	if err != nil {
		return 0, nil, ToDBus(err)
	}
	events = make([]map[string]dbus.Variant, 0, len(evs))
	for i := range evs {
		events = append(events, EventToDBus(&evs[i], callerUID))
	}
	return last, events, nil
}

// EventToDBus converts an event for a caller, withholding private fields
// of other users' events.
func EventToDBus(ev *sensors.Event, callerUID uint32) map[string]dbus.Variant {
	m := ev.Encode()
	if callerUID != 0 && (!ev.HasUID || ev.UID != callerUID) {
		for _, k := range api.PrivateFields {
			delete(m, k)
		}
	}
	return m
}
