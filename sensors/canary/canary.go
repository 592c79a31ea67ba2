// Package canary is npllmd's metric source for tuning trials (the
// actions/tuning Metrics and Baseliner interfaces): PSI from the sensors'
// snapshot, run-queue and block-I/O p99 from the kernel histograms, a
// unit's CPU rate and memory from its cgroup, a program's from /proc, and
// a program's learned baseline from the alert engine's.
//
// Rates and latencies are measured between two reads: the first sample of
// a metric reads twice, firstGap apart; later samples compare with the
// previous read of the same metric and target, so concurrent trials
// watching one metric share its windows.
package canary

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/alerts"
)

// firstGap is the window of a metric's first sample.
const firstGap = 250 * time.Millisecond

// maxMarks bounds the remembered reads (one per metric and target).
const maxMarks = 256

// Sensors is what the source reads from npllmd's sensor manager: the
// pressure sensor alone fills the PSI part of a snapshot (sampling every
// sensor, as the daemon's refresh does, cost ten times more per round),
// and the histogram sensors are read on demand.
type Sensors interface {
	Get(name string) (sensors.Running, error)
}

// Source implements tuning.Metrics and tuning.Baseliner.
type Source struct {
	Sensors    Sensors
	Baselines  *alerts.Baselines // nil: no learned baselines
	ProcRoot   string            // "/proc"
	CgroupRoot string            // "/sys/fs/cgroup"
	// UnitCgroup returns a unit's cgroup path ("/system.slice/x.service");
	// nil asks systemd.
	UnitCgroup func(ctx context.Context, unit string) (string, error)

	mu     sync.Mutex
	marks  map[string]mark
	snap   sensors.Snapshot // the last one, for snapTTL: the PSI metrics of one round share it
	snapAt time.Time
	pids   map[string]pidSet // program → its processes at the last scan
}

// snapTTL: a round samples each watched metric in turn; one snapshot
// serves all its PSI figures (avg10 moves every 2 s in the kernel anyway).
const snapTTL = 200 * time.Millisecond

// mark is one earlier read of a cumulative counter.
type mark struct {
	at     time.Time
	hist   []uint64          // histogram buckets
	total  uint64            // cgroup CPU ns
	perPID map[uint64]uint64 // program: (pid<<32|start low bits) → CPU ticks
}

var _ tuning.Baseliner = (*Source)(nil)

// Sample returns w's metric now (PSI in percent, latencies in µs, CPU in
// cores, memory in bytes).
func (s *Source) Sample(ctx context.Context, w tuning.Watch) (float64, error) {
	switch w.Metric {
	case tuning.MetricPSICPUSome, tuning.MetricPSIMemorySome, tuning.MetricPSIIOSome:
		return s.psi(w.Metric, false)
	case tuning.MetricPSIMemoryFull, tuning.MetricPSIIOFull:
		return s.psi(w.Metric, true)
	case tuning.MetricRunqP99:
		return s.p99(ctx, api.HistogramRunqLatency)
	case tuning.MetricBlockIOP99:
		return s.p99(ctx, api.HistogramBlockIOLatency)
	case tuning.MetricUnitCPU:
		return s.unitCPU(ctx, w.Target)
	case tuning.MetricUnitMemory:
		return s.unitMemory(ctx, w.Target)
	case tuning.MetricProgramCPU:
		return s.programCPU(ctx, w.Target)
	case tuning.MetricProgramMemory:
		return s.programMemory(w.Target)
	}
	return 0, fmt.Errorf("unknown metric %q", w.Metric)
}

var psiResource = map[string]string{
	tuning.MetricPSICPUSome: "cpu", tuning.MetricPSIMemorySome: "memory", tuning.MetricPSIIOSome: "io",
	tuning.MetricPSIMemoryFull: "memory", tuning.MetricPSIIOFull: "io",
}

func (s *Source) psi(metric string, full bool) (float64, error) {
	if s.Sensors == nil {
		return 0, errors.New("no sensors")
	}
	run, err := s.Sensors.Get("pressure")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", metric, err)
	}
	sampler, ok := run.(sensors.Sampler)
	if !ok {
		return 0, fmt.Errorf("%s: the pressure sensor keeps no snapshot", metric)
	}
	s.mu.Lock()
	if time.Since(s.snapAt) > snapTTL {
		s.snap = sensors.Snapshot{}
		if err := sampler.Sample(&s.snap); err != nil {
			s.mu.Unlock()
			return 0, fmt.Errorf("%s: %w", metric, err)
		}
		s.snapAt = time.Now()
	}
	snap := s.snap
	s.mu.Unlock()
	m := snap.Pressure
	if full {
		m = snap.PressureFull
	}
	v, ok := m[psiResource[metric]]
	if !ok {
		return 0, fmt.Errorf("%s: no pressure figures (is the pressure sensor running? PSI needs CONFIG_PSI and psi=1)", metric)
	}
	return v[0], nil
}

// p99 is the histogram's p99 over the window since the previous read, in
// µs; a window without samples is 0.
func (s *Source) p99(ctx context.Context, name string) (float64, error) {
	if s.Sensors == nil {
		return 0, errors.New("no sensors")
	}
	run, err := s.Sensors.Get(name)
	if err != nil {
		return 0, fmt.Errorf("%w (npllmctl sensors enable %s)", err, name)
	}
	reader, ok := run.(sensors.HistogramReader)
	if !ok {
		return 0, fmt.Errorf("sensor %s keeps no histogram", name)
	}
	read := func() (mark, error) {
		h, err := reader.ReadHistogram("all")
		return mark{at: time.Now(), hist: h.Counts}, err
	}
	prev, now, err := s.window(ctx, "hist|"+name, read)
	if err != nil {
		return 0, err
	}
	d := sensors.Histogram{Counts: make([]uint64, len(now.hist))}
	for i, c := range now.hist {
		if i < len(prev.hist) && c >= prev.hist[i] {
			c -= prev.hist[i]
		}
		d.Counts[i] = c
	}
	return float64(d.Quantile(0.99)) / 1000, nil
}

// window returns the previous read of key (or one taken firstGap ago) and
// a fresh one, and remembers the fresh one.
func (s *Source) window(ctx context.Context, key string, read func() (mark, error)) (prev, now mark, err error) {
	s.mu.Lock()
	prev, ok := s.marks[key]
	s.mu.Unlock()
	if !ok {
		if prev, err = read(); err != nil {
			return mark{}, mark{}, err
		}
		select {
		case <-time.After(firstGap):
		case <-ctx.Done():
			return mark{}, mark{}, ctx.Err()
		}
	}
	if now, err = read(); err != nil {
		return mark{}, mark{}, err
	}
	s.mu.Lock()
	if s.marks == nil || len(s.marks) >= maxMarks {
		s.marks = map[string]mark{}
	}
	s.marks[key] = now
	s.mu.Unlock()
	return prev, now, nil
}
