package server

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/prometheus/procfs"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors/journal"
)

// GetCounters serves npllm-exporter: every monotonic figure in one call, so
// a scrape costs O(1) bus calls. Events by kind are counted from the
// journal (so they survive npllmd restarts within a boot): the first call
// reads the journal since boot, later calls only what was committed since.

const (
	countersPage = 4096
	// countersMaxPerCall bounds the journal read of one call; a journal
	// longer than this since boot is caught up over several calls.
	countersMaxPerCall = 16 * countersPage
)

type counterState struct {
	mu        sync.Mutex
	started   time.Time
	bootID    string
	bootNS    uint64
	afterSeq  uint64
	pruned    bool
	scanned   bool
	events    map[string]uint64
	alertsMu  sync.Mutex
	alertsRaw map[string]uint64
}

func newCounterState() *counterState {
	c := &counterState{started: time.Now(), events: map[string]uint64{}, alertsRaw: map[string]uint64{}}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		c.bootID = strings.TrimSpace(string(b))
	}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if st, err := fs.Stat(); err == nil {
			c.bootNS = st.BootTime * uint64(time.Second)
		}
	}
	return c
}

// alertRaised counts an alert; kinds outside api.AlertKinds are "other" so
// no string from elsewhere becomes a metric label.
func (c *counterState) alertRaised(kind string) {
	c.alertsMu.Lock()
	c.alertsRaw[knownOr(kind, api.AlertKinds)]++
	c.alertsMu.Unlock()
}

func knownOr(kind string, known []string) string {
	if slices.Contains(known, kind) {
		return kind
	}
	return "other"
}

// catchUp counts the events committed since the last call.
func (c *counterState) catchUp(j *journal.Journal) error {
	f := journal.Filter{SinceNS: c.bootNS}
	if !c.scanned {
		// The oldest kept event is after boot and not the first ever: the
		// journal may have pruned events of this boot.
		if _, first, err := j.Query(0, 1, journal.Filter{}); err != nil {
			return err
		} else if len(first) == 1 && first[0].Seq > 1 && first[0].TimeNS >= c.bootNS {
			c.pruned = true
		}
		c.scanned = true
	}
	for read := 0; read < countersMaxPerCall; {
		next, evs, err := j.Query(c.afterSeq, countersPage, f)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			c.events[knownOr(ev.Kind, api.EventKinds)]++
		}
		read += countersPage
		done := next <= c.afterSeq || len(evs) < countersPage
		c.afterSeq = max(c.afterSeq, next)
		if done {
			break
		}
	}
	return nil
}

func (a *assistant) GetCounters(msg dbus.Message) (out map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetCounters")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	st := a.s.counters
	rec := api.Counters{BootID: st.bootID, StartedNS: uint64(st.started.UnixNano()),
		Events: map[string]uint64{}, AlertsRaised: map[string]uint64{}, PressureStalledUS: map[string]uint64{}}
	for _, k := range api.EventKinds {
		rec.Events[k] = 0
	}
	for _, k := range api.AlertKinds {
		rec.AlertsRaised[k] = 0
	}
	if j := a.s.cfg.Journal; j != nil {
		st.mu.Lock()
		err := st.catchUp(j)
		for k, v := range st.events {
			rec.Events[k] = v
		}
		rec.EventsPruned = st.pruned
		st.mu.Unlock()
		if err != nil {
			return nil, ToDBus(fmt.Errorf("read the journal: %w", err))
		}
	}
	st.alertsMu.Lock()
	for k, v := range st.alertsRaw {
		rec.AlertsRaised[k] = v
	}
	st.alertsMu.Unlock()
	if fs, err := procfs.NewFS(a.s.cfg.ProcRoot); err == nil {
		for _, r := range []string{"cpu", "memory", "io"} {
			p, err := fs.PSIStatsForResource(r)
			if err != nil {
				continue // no PSI in this kernel: nothing to count
			}
			if p.Some != nil {
				rec.PressureStalledUS[r+".some"] = p.Some.Total
			}
			if p.Full != nil {
				rec.PressureStalledUS[r+".full"] = p.Full.Total
			}
		}
	}
	if a.s.cfg.Baselines != nil {
		rec.Baselines = uint64(len(a.s.cfg.Baselines.Keys()))
	}
	return rec.Encode(), nil
}
