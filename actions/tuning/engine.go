package tuning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// TrialID names a trial: 16 hex digits.
type TrialID string

// Trial states. Only the first three are kept in the state file.
const (
	StateApplying  = "applying"
	StateCanary    = "canary"
	StateAwaiting  = "awaiting-confirmation"
	StateConfirmed = "confirmed"
	StateReverted  = "reverted"
	StateEnded     = "ended" // a knob was changed by someone else
)

// Event kinds handed to the Recorder (the daemon journals them).
const (
	EventStarted   = "tuning.started"
	EventRegressed = "tuning.regressed"
	EventReverted  = "tuning.reverted"
	EventConfirmed = "tuning.confirmed"
	EventEnded     = "tuning.ended"
)

// Limits on a request.
const (
	DefaultCanary  = 60 * time.Second
	DefaultLease   = 10 * time.Minute
	DefaultEvery   = 500 * time.Millisecond
	maxChanges     = 16
	maxWorkloadLen = 256
)

// Change asks for one knob (on one target) to take one value.
type Change struct {
	Knob   string `json:"knob"`
	Target string `json:"target,omitempty"`
	Value  string `json:"value"`
}

// ChangeInfo is a change with its undo value, as recorded.
type ChangeInfo struct {
	Knob   string `json:"knob"`
	Target string `json:"target,omitempty"`
	Key    string `json:"key"`
	Old    string `json:"old"`
	New    string `json:"new"`
}

// Options of a trial; zero values take the defaults.
type Options struct {
	Canary time.Duration `json:"canary"` // [100ms, 1h], default 60 s
	Lease  time.Duration `json:"lease"`  // (Canary, 24h], default 10 min, counted from the apply
	Every  time.Duration `json:"every"`  // sampling and foreign-change check, [10ms, 10s], default 500 ms
	Watch  []Watch       `json:"watch,omitempty"`
	// Workload is the program or unit the trial is for; its history is
	// kept under this name.
	Workload string `json:"workload,omitempty"`
}

// TrialInfo is a trial as reported and as stored.
type TrialInfo struct {
	ID         TrialID      `json:"id"`
	State      string       `json:"state"`
	Changes    []ChangeInfo `json:"changes"`
	Options    Options      `json:"options"`
	Started    time.Time    `json:"started"`
	CanaryEnds time.Time    `json:"canary_ends"`
	LeaseEnds  time.Time    `json:"lease_ends"`
	Ended      time.Time    `json:"ended,omitzero"`
	Reason     string       `json:"reason,omitempty"`
	Before     []Figure     `json:"before,omitempty"`
	After      []Figure     `json:"after,omitempty"`
}

func (t *TrialInfo) final() bool {
	return t.State == StateConfirmed || t.State == StateReverted || t.State == StateEnded
}

// Event is what the engine reports to the daemon.
type Event struct {
	Kind       string
	Trial      TrialInfo
	Reason     string
	Regression *Regression // EventRegressed only
}

// Config of an Engine.
type Config struct {
	StateDir string
	Env      *Env             // nil: DefaultEnv()
	Metrics  Metrics          // nil: trials may not watch metrics
	Record   func(Event)      // nil: events are only logged
	Log      *slog.Logger     // nil: slog.Default()
	Now      func() time.Time // nil: time.Now
}

// Engine runs trials. Create it, call RecoverAtStart before anything else,
// then Start/Confirm/Revert; Close reverts what is still unconfirmed.
type Engine struct {
	cfg  Config
	env  *Env
	dir  string
	log  *slog.Logger
	lock *os.File

	mu        sync.Mutex
	recovered bool
	closed    bool
	trials    map[TrialID]*trial
	keys      map[string]TrialID // knob key → the unfinished trial holding it
	history   *historyDoc
	wg        sync.WaitGroup
}

type trial struct {
	info  TrialInfo
	knobs []Knob
	stop  chan struct{}
	// applied is closed when Start has written every knob (or given up);
	// Revert and Close wait for it so a revert never races the apply.
	applied  chan struct{}
	finished bool // claimed by whoever finishes it
}

// New opens the state directory (created 0700 if missing) and locks it.
func New(cfg Config) (*Engine, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("tuning: no state directory")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, env: cfg.Env, dir: cfg.StateDir, log: cfg.Log, lock: lock,
		trials: map[TrialID]*trial{}, keys: map[string]TrialID{}}
	if e.env == nil {
		e.env = DefaultEnv()
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.cfg.Now == nil {
		e.cfg.Now = time.Now
	}
	return e, nil
}

// Tunables lists every knob, with the trial holding it.
func (e *Engine) Tunables(ctx context.Context) []TunableInfo {
	list := Tunables(ctx, e.env)
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range list {
		key := list[i].Name
		if list[i].Target != "" {
			key += "@" + list[i].Target
		}
		list[i].Trial = e.keys[key]
	}
	return list
}

func (e *Engine) record(ev Event) {
	e.log.Info("tuning", "kind", ev.Kind, "trial", string(ev.Trial.ID), "reason", ev.Reason)
	if e.cfg.Record != nil {
		e.cfg.Record(ev)
	}
}

func newID() TrialID {
	var b [8]byte
	rand.Read(b[:])
	return TrialID(hex.EncodeToString(b[:]))
}

func validateOptions(o *Options, haveMetrics bool) error {
	if o.Canary == 0 {
		o.Canary = DefaultCanary
	}
	if o.Lease == 0 {
		o.Lease = max(DefaultLease, 2*o.Canary)
	}
	if o.Every == 0 {
		o.Every = min(DefaultEvery, o.Canary)
	}
	switch {
	case o.Canary < 100*time.Millisecond || o.Canary > time.Hour:
		return invalid("canary %v is outside [100ms, 1h]", o.Canary)
	case o.Lease <= o.Canary || o.Lease > 24*time.Hour:
		return invalid("lease %v must be longer than the canary (%v) and at most 24h", o.Lease, o.Canary)
	case o.Every < 10*time.Millisecond || o.Every > 10*time.Second || o.Every > o.Canary:
		return invalid("sampling period %v is outside [10ms, 10s] or longer than the canary", o.Every)
	case len(o.Watch) > maxWatches:
		return invalid("at most %d watched metrics", maxWatches)
	case len(o.Workload) > maxWorkloadLen:
		return invalid("workload name longer than %d bytes", maxWorkloadLen)
	}
	for _, r := range o.Workload {
		if r < 0x20 || r == 0x7f {
			return invalid("workload name has control characters")
		}
	}
	for i := range o.Watch {
		if err := validateWatch(&o.Watch[i]); err != nil {
			return err
		}
	}
	if len(o.Watch) > 0 && !haveMetrics {
		return fmt.Errorf("%w: no metric source: this engine cannot watch metrics", ErrUnavailable)
	}
	return nil
}

// Start validates every change against the live system, writes the undo
// set durably, reports EventStarted, applies the changes and starts the
// canary. Any error before the apply leaves everything as it was; an apply
// that fails half-way is undone before Start returns.
func (e *Engine) Start(ctx context.Context, changes []Change, opts Options) (TrialID, error) {
	if len(changes) == 0 || len(changes) > maxChanges {
		return "", invalid("a trial changes 1 to %d knobs, not %d", maxChanges, len(changes))
	}
	if err := validateOptions(&opts, e.cfg.Metrics != nil); err != nil {
		return "", err
	}
	e.mu.Lock()
	recovered, closed := e.recovered, e.closed
	e.mu.Unlock()
	if !recovered || closed {
		return "", ErrNotRecovered
	}
	knobs := make([]Knob, len(changes))
	infos := make([]ChangeInfo, len(changes))
	seen := map[string]bool{}
	for i, c := range changes {
		k, err := Resolve(ctx, e.env, c.Knob, c.Target)
		if err != nil {
			return "", err
		}
		v, err := k.Validate(ctx, c.Value)
		if err != nil {
			return "", err
		}
		old, err := k.Read(ctx)
		if err != nil {
			return "", err
		}
		if old == v {
			return "", invalid("%s is already %s", k.Key(), v)
		}
		if seen[k.Key()] {
			return "", invalid("%s appears twice", k.Key())
		}
		seen[k.Key()] = true
		knobs[i] = k
		infos[i] = ChangeInfo{Knob: c.Knob, Target: c.Target, Key: k.Key(), Old: old, New: v}
	}
	var before []Figure
	if len(opts.Watch) > 0 {
		var err error
		if before, err = sampleAll(ctx, e.cfg.Metrics, opts.Watch); err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}

	t := &trial{knobs: knobs, stop: make(chan struct{}), applied: make(chan struct{}), info: TrialInfo{ID: newID(), State: StateApplying,
		Changes: infos, Options: opts, Started: e.cfg.Now(), Before: before}}
	e.mu.Lock()
	for _, c := range infos {
		if id, busy := e.keys[c.Key]; busy {
			e.mu.Unlock()
			return "", fmt.Errorf("%w: %s is in trial %s", ErrConflict, c.Key, id)
		}
	}
	e.trials[t.info.ID] = t
	for _, c := range infos {
		e.keys[c.Key] = t.info.ID
	}
	if err := e.saveStateLocked(); err != nil {
		delete(e.trials, t.info.ID)
		for _, c := range infos {
			delete(e.keys, c.Key)
		}
		e.mu.Unlock()
		return "", fmt.Errorf("record the undo set: %w", err)
	}
	e.mu.Unlock()
	e.record(Event{Kind: EventStarted, Trial: t.info})

	for i, k := range knobs {
		if err := k.Write(ctx, infos[i].New); err != nil {
			close(t.applied)
			e.finish(t, StateReverted, fmt.Sprintf("applying %s failed: %v", k.Key(), err), nil)
			return "", fmt.Errorf("apply %s: %w", k.Key(), err)
		}
	}
	e.mu.Lock()
	now := e.cfg.Now()
	t.info.State, t.info.CanaryEnds, t.info.LeaseEnds = StateCanary, now.Add(opts.Canary), now.Add(opts.Lease)
	err := e.saveStateLocked()
	e.wg.Add(1)
	id := t.info.ID
	e.mu.Unlock()
	if err != nil {
		e.log.Warn("tuning state", "err", err) // the applying record still names the undo set
	}
	close(t.applied)
	go e.run(t)
	return id, nil
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

// Confirm keeps a trial's changes. Only a trial whose canary has passed can
// be confirmed: the point is to confirm the evidence.
func (e *Engine) Confirm(id TrialID) (TrialInfo, error) {
	e.mu.Lock()
	t, ok := e.trials[id]
	if !ok || t.finished {
		e.mu.Unlock()
		return TrialInfo{}, fmt.Errorf("%w: %q", ErrNoSuchTrial, id)
	}
	if t.info.State != StateAwaiting {
		e.mu.Unlock()
		return TrialInfo{}, fmt.Errorf("%w: trial %s is %s (its canary ends %s)", ErrTrialState, id, t.info.State,
			t.info.CanaryEnds.Format(time.TimeOnly))
	}
	e.mu.Unlock()
	info, _ := e.finish(t, StateConfirmed, "confirmed", nil)
	return info, nil
}

// Revert undoes a trial now.
func (e *Engine) Revert(id TrialID) (TrialInfo, error) {
	e.mu.Lock()
	t, ok := e.trials[id]
	if !ok || t.finished {
		e.mu.Unlock()
		return TrialInfo{}, fmt.Errorf("%w: %q", ErrNoSuchTrial, id)
	}
	e.mu.Unlock()
	<-t.applied
	return e.finish(t, StateReverted, "reverted on request", nil)
}

// finish ends a trial once (whoever claims it first): restores its knobs
// unless confirmed, skipping any that someone else changed, then forgets
// it in the state file, remembers it in the history and reports it.
func (e *Engine) finish(t *trial, state, reason string, reg *regressionAfter) (TrialInfo, error) {
	e.mu.Lock()
	if t.finished {
		e.mu.Unlock()
		return TrialInfo{}, fmt.Errorf("%w: %q", ErrNoSuchTrial, t.info.ID)
	}
	t.finished = true
	close(t.stop)
	e.mu.Unlock()

	var errs []error
	if state != StateConfirmed {
		ctx := context.Background()
		for i := len(t.knobs) - 1; i >= 0; i-- {
			k, c := t.knobs[i], t.info.Changes[i]
			cur, err := k.Read(ctx)
			if err != nil || cur != c.New {
				continue // never applied, or someone else's value now: not ours to touch
			}
			if err := k.Restore(ctx, c.Old); err != nil {
				errs = append(errs, fmt.Errorf("restore %s=%s: %w", c.Key, c.Old, err))
			}
		}
	}
	if len(errs) > 0 {
		reason += "; " + errors.Join(errs...).Error()
	}

	e.mu.Lock()
	t.info.State, t.info.Reason, t.info.Ended = state, reason, e.cfg.Now()
	if reg != nil {
		t.info.After = reg.after
	}
	for _, c := range t.info.Changes {
		if e.keys[c.Key] == t.info.ID {
			delete(e.keys, c.Key)
		}
	}
	if err := e.saveStateLocked(); err != nil {
		e.log.Warn("tuning state", "err", err)
	}
	if err := e.appendHistoryLocked(t.info); err != nil {
		e.log.Warn("tuning history", "err", err)
	}
	e.pruneLocked()
	info := t.info
	e.mu.Unlock()

	if reg != nil {
		e.record(Event{Kind: EventRegressed, Trial: info, Reason: reason, Regression: reg.r})
	}
	kind := map[string]string{StateConfirmed: EventConfirmed, StateReverted: EventReverted, StateEnded: EventEnded}[state]
	e.record(Event{Kind: kind, Trial: info, Reason: reason})
	return info, errors.Join(errs...)
}

// Trials lists every trial this engine has run, unfinished first.
func (e *Engine) Trials() []TrialInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var open, done []TrialInfo
	for _, t := range e.trials {
		if t.info.final() {
			done = append(done, t.info)
		} else {
			open = append(open, t.info)
		}
	}
	return append(sortByStart(open), sortByStart(done)...)
}

// History returns the finished trials remembered for a workload ("" for
// machine-wide trials), oldest first.
func (e *Engine) History(workload string) []HistoryEntry {
	if workload == "" {
		workload = machineWorkload
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.history == nil {
		var doc historyDoc
		if err := readJSON(filepath.Join(e.dir, historyFile), &doc, func() bool { return doc.Version == stateVersion }); err != nil {
			e.log.Warn("tuning history", "err", err)
			return nil
		}
		return append([]HistoryEntry(nil), doc.Workloads[workload]...)
	}
	return append([]HistoryEntry(nil), e.history.Workloads[workload]...)
}

// Close reverts every unconfirmed trial (nobody would be left to honour
// its lease) and releases the state directory.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var open []*trial
	for _, t := range e.trials {
		if !t.finished {
			open = append(open, t)
		}
	}
	e.mu.Unlock()
	for _, t := range open {
		<-t.applied
		e.finish(t, StateReverted, "npllmd is stopping", nil)
	}
	e.wg.Wait()
	return e.lock.Close()
}

func sortByStart(l []TrialInfo) []TrialInfo {
	sort.Slice(l, func(i, j int) bool { return l[i].Started.Before(l[j].Started) })
	return l
}

// keepFinished bounds the finished trials kept in memory (History has the rest).
const keepFinished = 64

func (e *Engine) pruneLocked() {
	var done []TrialInfo
	for _, t := range e.trials {
		if t.info.final() {
			done = append(done, t.info)
		}
	}
	if len(done) <= keepFinished {
		return
	}
	sortByStart(done)
	for _, d := range done[:len(done)-keepFinished] {
		delete(e.trials, d.ID)
	}
}
