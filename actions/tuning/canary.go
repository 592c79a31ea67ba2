package tuning

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/npllm/npllm/actions"
)

// Metrics is the daemon's side of the canary: it knows PSI, the latency
// histograms and each unit's and program's usage. Sample returns the
// metric's value now (PSI avg10 in percent, latencies in microseconds, CPU
// in cores, memory in bytes).
type Metrics interface {
	Sample(ctx context.Context, w Watch) (float64, error)
}

// Baseliner is optionally implemented by a Metrics that has learned what is
// normal for a unit or program (npllmd's per-program baselines): a trial
// then compares against that instead of one sample taken before the change,
// which may have caught the workload idle.
type Baseliner interface {
	Baseline(ctx context.Context, w Watch) (value float64, ok bool)
}

// Metric names a trial may watch.
const (
	MetricPSICPUSome     = "psi.cpu.some"
	MetricPSIMemorySome  = "psi.memory.some"
	MetricPSIMemoryFull  = "psi.memory.full"
	MetricPSIIOSome      = "psi.io.some"
	MetricPSIIOFull      = "psi.io.full"
	MetricRunqP99        = "runq.p99"
	MetricBlockIOP99     = "blockio.p99"
	MetricUnitCPU        = "unit.cpu"
	MetricUnitMemory     = "unit.memory"
	MetricProgramCPU     = "program.cpu"
	MetricProgramMemory  = "program.memory"
	defaultThreshold     = 0.25
	maxWatches           = 8
	maxProgramNameLength = 15 // comm
)

// metricSpec: which way is worse, and the smallest change that counts (so a
// PSI of 0.0 → 0.3 is not a regression of "infinity percent").
type metricSpec struct {
	lowerIsWorse bool
	floor        float64
	target       string // "", "unit" or "program"
}

var metricSpecs = map[string]metricSpec{
	MetricPSICPUSome:    {floor: 5},
	MetricPSIMemorySome: {floor: 5},
	MetricPSIMemoryFull: {floor: 2},
	MetricPSIIOSome:     {floor: 5},
	MetricPSIIOFull:     {floor: 2},
	MetricRunqP99:       {floor: 1000},
	MetricBlockIOP99:    {floor: 2000},
	// A protected workload losing CPU is the regression.
	MetricUnitCPU:       {lowerIsWorse: true, floor: 0.05, target: "unit"},
	MetricUnitMemory:    {floor: 16 << 20, target: "unit"},
	MetricProgramCPU:    {lowerIsWorse: true, floor: 0.05, target: "program"},
	MetricProgramMemory: {floor: 16 << 20, target: "program"},
}

// Watch is one metric that must not regress during the canary.
type Watch struct {
	Metric string `json:"metric"`
	// Target is the unit or program for unit.* and program.* metrics.
	Target string `json:"target,omitempty"`
	// Threshold is the relative worsening tolerated (0.25: 25 %), above
	// the metric's floor. 0 means 0.25.
	Threshold float64 `json:"threshold,omitempty"`
}

// Figure is one measured value of a watched metric.
type Figure struct {
	Metric string  `json:"metric"`
	Target string  `json:"target,omitempty"`
	Value  float64 `json:"value"`
}

// Regression is the canary's evidence.
type Regression struct {
	Metric    string
	Target    string
	Before    float64
	After     float64
	Threshold float64
	At        time.Time // when the sample was taken
}

func (r *Regression) String() string {
	t := ""
	if r.Target != "" {
		t = " of " + r.Target
	}
	return fmt.Sprintf("%s%s went from %.3g to %.3g (tolerance %.0f%%)", r.Metric, t, r.Before, r.After, r.Threshold*100)
}

func validateWatch(w *Watch) error {
	spec, ok := metricSpecs[w.Metric]
	if !ok {
		return invalid("unknown metric %q", w.Metric)
	}
	switch spec.target {
	case "unit":
		if err := actions.ValidateUnitName(w.Target); err != nil {
			return fmt.Errorf("%w: watch %s: %v", ErrInvalidArgument, w.Metric, err)
		}
	case "program":
		if w.Target == "" || len(w.Target) > maxProgramNameLength {
			return invalid("watch %s needs a program name of 1-%d bytes", w.Metric, maxProgramNameLength)
		}
	default:
		if w.Target != "" {
			return invalid("watch %s takes no target", w.Metric)
		}
	}
	if w.Threshold == 0 {
		w.Threshold = defaultThreshold
	}
	if math.IsNaN(w.Threshold) || w.Threshold <= 0 || w.Threshold > 10 {
		return invalid("watch %s: threshold %v is outside (0, 10]", w.Metric, w.Threshold)
	}
	return nil
}

// regressed compares a sample with the figure from before the change.
func regressed(w Watch, before, now float64) bool {
	spec := metricSpecs[w.Metric]
	allowed := math.Max(w.Threshold*math.Abs(before), spec.floor)
	if spec.lowerIsWorse {
		return before-now > allowed
	}
	return now-before > allowed
}

// baselines are the "before" figures: learned ones where the source has
// them, else a sample now.
func baselines(ctx context.Context, m Metrics, watches []Watch) ([]Figure, error) {
	out, err := sampleAll(ctx, m, watches)
	if err != nil {
		return nil, err
	}
	if b, ok := m.(Baseliner); ok {
		for i, w := range watches {
			if v, ok := b.Baseline(ctx, w); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[i].Value = v
			}
		}
	}
	return out, nil
}

func sampleAll(ctx context.Context, m Metrics, watches []Watch) ([]Figure, error) {
	out := make([]Figure, 0, len(watches))
	for _, w := range watches {
		v, err := m.Sample(ctx, w)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", w.Metric, err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("metric %s: not a number", w.Metric)
		}
		out = append(out, Figure{Metric: w.Metric, Target: w.Target, Value: v})
	}
	return out, nil
}

// run watches one trial until it is finished.
func (e *Engine) run(t *trial) {
	defer e.wg.Done()
	opts := t.info.Options
	tick := time.NewTicker(opts.Every)
	defer tick.Stop()
	canary := time.NewTimer(opts.Canary)
	defer canary.Stop()
	lease := time.NewTimer(opts.Lease)
	defer lease.Stop()
	ctx := context.Background()
	inCanary := true
	for {
		select {
		case <-t.stop:
			return
		case <-lease.C:
			e.finish(t, StateReverted, "not confirmed before the lease ended", nil)
			return
		case <-canary.C:
			inCanary = false
			after, done := e.measure(ctx, t)
			if done {
				return
			}
			e.mu.Lock()
			if !t.finished {
				t.info.State, t.info.After = StateAwaiting, after
				if err := e.saveStateLocked(); err != nil {
					e.log.Warn("tuning state", "err", err)
				}
			}
			e.mu.Unlock()
		case <-tick.C:
			if e.foreign(ctx, t) {
				return
			}
			if inCanary {
				if _, done := e.measure(ctx, t); done {
					return
				}
			}
		}
	}
}

// foreign ends the trial when someone else changed one of its knobs.
func (e *Engine) foreign(ctx context.Context, t *trial) bool {
	for i, k := range t.knobs {
		cur, err := k.Read(ctx)
		if err != nil || cur == t.info.Changes[i].New {
			continue
		}
		e.finish(t, StateEnded, fmt.Sprintf("%s was changed to %q by someone else; left as it is", k.Key(), cur), nil)
		return true
	}
	return false
}

// measure samples the watched metrics and reverts the trial on the first
// regression (or when they cannot be measured); done says it finished.
func (e *Engine) measure(ctx context.Context, t *trial) (now []Figure, done bool) {
	if len(t.info.Options.Watch) == 0 {
		return nil, false
	}
	now, err := sampleAll(ctx, e.cfg.Metrics, t.info.Options.Watch)
	if err != nil {
		e.finish(t, StateReverted, "canary could not be measured: "+err.Error(), nil)
		return nil, true
	}
	at := time.Now()
	for i, w := range t.info.Options.Watch {
		if regressed(w, t.info.Before[i].Value, now[i].Value) {
			r := &Regression{Metric: w.Metric, Target: w.Target, Before: t.info.Before[i].Value, After: now[i].Value,
				Threshold: w.Threshold, At: at}
			e.finish(t, StateReverted, "regressed: "+r.String(), &regressionAfter{r, now})
			return now, true
		}
	}
	return now, false
}

type regressionAfter struct {
	r     *Regression
	after []Figure
}
