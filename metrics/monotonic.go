package metrics

// monotonic keeps exposed counters from going backwards when npllmd
// restarts. Two kinds of counters:
//   - since npllmd started (alerts raised, sensor drops): when the daemon's
//     start time changes they began again at zero, so the last raw value is
//     added to the offset (nothing counted since the restart is lost);
//   - since boot (events, rebuilt from the journal): they continue, but may
//     come back lower if the journal was pruned; then the offset grows just
//     enough to continue from the last exposed value.
//
// A new boot id starts everything over.
type monotonic struct {
	bootID    string
	startedNS uint64
	restarted bool
	last      map[string]uint64 // raw value by series key
	offset    map[string]uint64
}

func newMonotonic() *monotonic {
	return &monotonic{last: map[string]uint64{}, offset: map[string]uint64{}}
}

// begin starts a scrape of the daemon instance (bootID, startedNS).
func (m *monotonic) begin(bootID string, startedNS uint64) {
	if bootID != m.bootID {
		m.bootID = bootID
		clear(m.last)
		clear(m.offset)
		m.startedNS = 0
	}
	m.restarted = m.startedNS != 0 && startedNS != m.startedNS
	m.startedNS = startedNS
}

// sinceStart is the exposed value of a counter that restarts with npllmd.
func (m *monotonic) sinceStart(key string, raw uint64) float64 {
	if last, ok := m.last[key]; ok && (m.restarted || raw < last) {
		m.offset[key] += last
	}
	m.last[key] = raw
	return float64(raw + m.offset[key])
}

// sinceBoot is the exposed value of a counter kept since boot.
func (m *monotonic) sinceBoot(key string, raw uint64) float64 {
	if last, ok := m.last[key]; ok && raw < last {
		m.offset[key] += last - raw
	}
	m.last[key] = raw
	return float64(raw + m.offset[key])
}
