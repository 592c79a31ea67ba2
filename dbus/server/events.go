package server

import (
	"slices"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/journal"
)

const (
	defaultEvents = 100
	maxEvents     = 1000
	// maxScan bounds the records one GetEvents reads, whatever its filter
	// matches: an answer may then hold fewer than max events while its
	// last_seq is below the newest (the caller continues from there).
	maxScan   = 10000
	scanChunk = 2048
)

// scan reads at most maxScan records after afterSeq and returns up to n of
// them that match f, and the seq to continue after: the last returned
// event when n cut the answer short, the last record read when maxScan
// did, otherwise the journal's newest.
func (a *assistant) scan(afterSeq uint64, n int, f journal.Filter) (uint64, []sensors.Event, error) {
	kinds := map[string]bool{}
	for _, k := range f.Kinds {
		kinds[k] = true
	}
	match := func(ev *sensors.Event) bool {
		return (len(kinds) == 0 || kinds[ev.Kind]) && (f.PID == nil || ev.PID == *f.PID) &&
			(f.UID == nil || ev.HasUID && ev.UID == *f.UID)
	}
	var out []sensors.Event
	cursor := afterSeq
	for scanned := 0; scanned < maxScan; {
		chunk := min(scanChunk, maxScan-scanned)
		last, evs, err := a.s.cfg.Journal.Query(cursor, chunk, journal.Filter{SinceNS: f.SinceNS})
		if err != nil {
			return 0, nil, err
		}
		for i := range evs {
			if !match(&evs[i]) {
				continue
			}
			if len(out) == n {
				return out[n-1].Seq, out, nil
			}
			out = append(out, evs[i])
		}
		if len(evs) < chunk {
			return last, out, nil
		}
		scanned += len(evs)
		cursor = evs[len(evs)-1].Seq
	}
	return cursor, out, nil
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
	last, evs, err := a.scan(afterSeq, n, f)
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
