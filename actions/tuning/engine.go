package tuning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

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
	applied    chan struct{}
	stopOnce   sync.Once
	confirming bool // a persisted Confirm is writing its files
	finished   bool // claimed by whoever finishes it
}

func (t *trial) halt() { t.stopOnce.Do(func() { close(t.stop) }) }

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

// Start validates every change against the live system, writes the undo
// set durably, reports EventStarted, applies the changes and starts the
// canary. Any error before the apply leaves everything as it was; an apply
// that fails half-way is undone before Start returns.
func (e *Engine) Start(ctx context.Context, changes []Change, opts Options) (TrialID, error) {
	return e.StartAuthorized(ctx, changes, opts, nil)
}

// StartAuthorized is Start with a check between validation and any effect:
// authorize sees the validated changes (with their current values) and
// its error is returned as is, with nothing written or recorded. The
// daemon asks polkit here, so a request is authorized only once it is
// known to be valid, and a denied one changes nothing.
func (e *Engine) StartAuthorized(ctx context.Context, changes []Change, opts Options, authorize func([]ChangeInfo) error) (TrialID, error) {
	if len(changes) == 0 || len(changes) > maxChanges {
		return "", invalid("a trial changes 1 to %d knobs, not %d", maxChanges, len(changes))
	}
	if err := validateOptions(&opts, e.cfg.Metrics != nil); err != nil {
		return "", err
	}
	e.mu.Lock()
	recovered, closed := e.recovered, e.closed
	e.mu.Unlock()
	if closed {
		return "", fmt.Errorf("%w: the tuning engine is closed", ErrUnavailable)
	}
	if !recovered {
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
		if opts.Persist {
			if err := persistable(k); err != nil {
				return "", err
			}
		}
		knobs[i] = k
		infos[i] = ChangeInfo{Knob: c.Knob, Target: c.Target, Key: k.Key(), Old: old, New: v}
	}
	if authorize != nil {
		if err := authorize(infos); err != nil {
			return "", err
		}
	}
	var before []Figure
	if len(opts.Watch) > 0 {
		var err error
		if before, err = baselines(ctx, e.cfg.Metrics, opts.Watch); err != nil {
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

// Confirm keeps a trial's changes. Only a trial whose canary has passed can
// be confirmed: the point is to confirm the evidence.
func (e *Engine) Confirm(id TrialID) (TrialInfo, error) {
	e.mu.Lock()
	t, ok := e.trials[id]
	if !ok || t.finished {
		e.mu.Unlock()
		return TrialInfo{}, fmt.Errorf("%w: %q", ErrNoSuchTrial, id)
	}
	if t.info.State != StateAwaiting || t.confirming {
		e.mu.Unlock()
		return TrialInfo{}, fmt.Errorf("%w: trial %s is %s (its canary ends %s)", ErrTrialState, id, t.info.State,
			t.info.CanaryEnds.Format(time.TimeOnly))
	}
	if t.info.Options.Persist {
		t.confirming = true
		e.mu.Unlock()
		return e.confirmPersisted(t)
	}
	e.mu.Unlock()
	info, _ := e.finish(t, StateConfirmed, "confirmed", nil)
	return info, nil
}

// confirmPersisted writes each knob's file, then keeps the trial (and its
// knobs) until someone reverts it.
func (e *Engine) confirmPersisted(t *trial) (TrialInfo, error) {
	ctx := context.Background()
	var files []string
	undo := func() {
		for _, f := range files {
			removePersisted(f)
		}
	}
	for i, k := range t.knobs {
		f, err := k.(Persister).Persist(ctx, t.info.ID, t.info.Changes[i].New)
		if err != nil {
			undo()
			e.mu.Lock()
			t.confirming = false
			e.mu.Unlock()
			return TrialInfo{}, fmt.Errorf("persist %s: %w", k.Key(), err)
		}
		files = append(files, f)
	}
	e.mu.Lock()
	if t.finished { // the lease ended or someone reverted meanwhile
		e.mu.Unlock()
		undo()
		return TrialInfo{}, fmt.Errorf("%w: %q", ErrNoSuchTrial, t.info.ID)
	}
	t.halt()
	for i, f := range files {
		t.info.Changes[i].File = f
	}
	t.info.State, t.info.Persisted, t.info.Reason = StateConfirmed, true, "confirmed and persisted"
	if err := e.saveStateLocked(); err != nil {
		e.log.Warn("tuning state", "err", err)
	}
	if err := e.appendHistoryLocked(t.info); err != nil {
		e.log.Warn("tuning history", "err", err)
	}
	info := t.info
	e.mu.Unlock()
	e.record(Event{Kind: EventConfirmed, Trial: info, Reason: info.Reason})
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
	t.halt()
	e.mu.Unlock()

	var errs []error
	if state != StateConfirmed {
		ctx := context.Background()
		for i := len(t.knobs) - 1; i >= 0; i-- {
			k, c := t.knobs[i], t.info.Changes[i]
			if err := removePersisted(c.File); err != nil {
				errs = append(errs, err)
			}
			if k == nil { // a persisted trial whose knob did not resolve at start
				var err error
				if k, err = Resolve(ctx, e.env, c.Knob, c.Target); err != nil {
					errs = append(errs, fmt.Errorf("restore %s: %w", c.Key, err))
					continue
				}
			}
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
		if !t.finished && t.info.State != StateConfirmed { // persisted changes stay
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
