package tuning

import (
	"context"
	"errors"
	"fmt"
)

// RecoverAtStart reverts every unfinished trial a previous engine left in
// the state file (it crashed, was killed, or the machine rebooted); the
// daemon calls it before it owns its bus name, so nothing can start a trial
// first. A knob that no longer holds the trial's value (a reboot reset it,
// or someone changed it) is left alone. A damaged state file is moved aside
// and reported; it does not stop the engine.
func (e *Engine) RecoverAtStart(ctx context.Context) ([]TrialInfo, error) {
	e.mu.Lock()
	if e.recovered {
		e.mu.Unlock()
		return nil, nil
	}
	e.mu.Unlock()
	left, loadErr := e.loadState()
	var errs []error
	if loadErr != nil {
		errs = append(errs, loadErr)
	}
	var out []TrialInfo
	for _, info := range left {
		if info.final() {
			continue
		}
		if info.State == StateConfirmed { // persisted: kept until reverted
			e.keepPersisted(ctx, info)
			continue
		}
		var problems []error
		restored := 0
		for i := len(info.Changes) - 1; i >= 0; i-- {
			c := info.Changes[i]
			k, err := Resolve(ctx, e.env, c.Knob, c.Target)
			if err == nil && k.Key() != c.Key {
				err = fmt.Errorf("resolves to %s now", k.Key())
			}
			var cur string
			if err == nil {
				cur, err = k.Read(ctx)
			}
			if err == nil && cur == c.New {
				if err = k.Restore(ctx, c.Old); err == nil {
					restored++
				}
			}
			if err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", c.Key, err))
			}
		}
		info.State, info.Ended = StateReverted, e.cfg.Now()
		info.Reason = fmt.Sprintf("npllmd stopped during the trial; reverted at start (%d of %d knobs still held its value)",
			restored, len(info.Changes))
		if len(problems) > 0 {
			pe := errors.Join(problems...)
			info.Reason += "; " + pe.Error()
			errs = append(errs, fmt.Errorf("trial %s: %w", info.ID, pe))
		}
		e.mu.Lock()
		applied := make(chan struct{})
		close(applied)
		e.trials[info.ID] = &trial{info: info, applied: applied, finished: true}
		if err := e.appendHistoryLocked(info); err != nil {
			e.log.Warn("tuning history", "err", err)
		}
		e.mu.Unlock()
		e.record(Event{Kind: EventReverted, Trial: info, Reason: info.Reason})
		out = append(out, info)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.saveStateLocked(); err != nil {
		// Without a writable state file no trial could be recorded.
		return out, errors.Join(append(errs, fmt.Errorf("rewrite state: %w", err))...)
	}
	e.recovered = true
	return out, errors.Join(errs...)
}

// keepPersisted takes back a confirmed, persisted trial from the state file
// so that it can still be reverted; it holds its knobs.
func (e *Engine) keepPersisted(ctx context.Context, info TrialInfo) {
	t := &trial{info: info, knobs: make([]Knob, len(info.Changes)), stop: make(chan struct{}), applied: make(chan struct{})}
	close(t.applied)
	for i, c := range info.Changes {
		t.knobs[i], _ = Resolve(ctx, e.env, c.Knob, c.Target) // nil: resolved again at revert
	}
	e.mu.Lock()
	e.trials[info.ID] = t
	for _, c := range info.Changes {
		e.keys[c.Key] = info.ID
	}
	e.mu.Unlock()
}
