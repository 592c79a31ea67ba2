package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
)

// Tuning trials on the bus: GetTunables, GetTrials and GetTrialHistory are
// read-only; StartTrial, ConfirmTrial and RevertTrial are authorized by
// org.npllm.Assistant.tune (auth_admin, never kept), StartTrial only once
// the engine has validated every change against the live system.

// Bounds on StartTrial's arguments, checked before the engine sees them.
const (
	maxTrialChanges = 16
	maxTrialKeyLen  = 256
	maxTrialValLen  = 256
	maxTrialIDLen   = 64
)

func (a *assistant) tuningEngine() (*tuning.Engine, *dbus.Error) {
	if a.s.cfg.Tuning == nil {
		return nil, api.NewError(api.ErrNotSupported, "this daemon runs no tuning engine")
	}
	return a.s.cfg.Tuning, nil
}

func (a *assistant) GetTunables(msg dbus.Message) (out []map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetTunables")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	eng, derr := a.tuningEngine()
	if derr != nil {
		return nil, derr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out = []map[string]dbus.Variant{}
	for _, t := range eng.Tunables(ctx) {
		rec := TunableRecord(t)
		out = append(out, rec.Encode())
	}
	return out, nil
}

func (a *assistant) GetTrials(msg dbus.Message) (out []map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetTrials")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	eng, derr := a.tuningEngine()
	if derr != nil {
		return nil, derr
	}
	out = []map[string]dbus.Variant{}
	for _, t := range eng.Trials() {
		rec := TrialRecord(t)
		out = append(out, rec.Encode())
	}
	return out, nil
}

func (a *assistant) GetTrialHistory(msg dbus.Message, workload string) (out []map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetTrialHistory")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	eng, derr := a.tuningEngine()
	if derr != nil {
		return nil, derr
	}
	if len(workload) > maxTrialKeyLen {
		return nil, api.NewError(api.ErrInvalidArgument, "workload name longer than %d bytes", maxTrialKeyLen)
	}
	out = []map[string]dbus.Variant{}
	for _, h := range eng.History(workload) {
		rec := OutcomeRecord(h)
		out = append(out, rec.Encode())
	}
	return out, nil
}

func (a *assistant) StartTrial(msg dbus.Message, changes, options map[string]dbus.Variant) (id string, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "StartTrial")
	if derr != nil {
		return "", derr
	}
	defer c.end(&derr)
	eng, derr := a.tuningEngine()
	if derr != nil {
		return "", derr
	}
	list, derr := parseChanges(changes)
	if derr != nil {
		return "", derr
	}
	o := optionReader{method: "StartTrial", opts: options}
	opts := trialOptions(&o)
	interactive := c.interactive(&o)
	automated, _ := o.bool(api.TrialOptAutomated)
	if o.err != nil {
		return "", o.err
	}
	var authErr *dbus.Error
	tid, err := eng.StartAuthorized(context.Background(), list, opts, func(infos []tuning.ChangeInfo) error {
		words := changeWords(infos)
		c.note("changes", strings.Join(words, "; "))
		details := map[string]string{
			"changes":   strings.Join(words, "; "),
			"automated": strconv.FormatBool(automated),
			"operation": "try " + strings.Join(words, ", "),
		}
		if automated {
			details["operation"] += " (asked by a model)"
		}
		if authErr = c.authorize(c.rule.Action, details, interactive); authErr != nil {
			return authErr
		}
		return nil
	})
	if authErr != nil {
		return "", authErr
	}
	if err != nil {
		return "", ToDBus(err)
	}
	c.note("trial", string(tid))
	return string(tid), nil
}

func (a *assistant) ConfirmTrial(msg dbus.Message, id string, options map[string]dbus.Variant) (derr *dbus.Error) {
	return a.onTrial(msg, "ConfirmTrial", "keep", id, options, func(eng *tuning.Engine, id tuning.TrialID) error {
		_, err := eng.Confirm(id)
		return err
	})
}

func (a *assistant) RevertTrial(msg dbus.Message, id string, options map[string]dbus.Variant) (derr *dbus.Error) {
	return a.onTrial(msg, "RevertTrial", "revert", id, options, func(eng *tuning.Engine, id tuning.TrialID) error {
		_, err := eng.Revert(id)
		return err
	})
}

// onTrial checks the id names a live trial, authorizes, and acts.
func (a *assistant) onTrial(msg dbus.Message, method, verb, id string, options map[string]dbus.Variant, act func(*tuning.Engine, tuning.TrialID) error) (derr *dbus.Error) {
	c, derr := a.s.begin(msg, method)
	if derr != nil {
		return derr
	}
	defer c.end(&derr)
	eng, derr := a.tuningEngine()
	if derr != nil {
		return derr
	}
	if len(id) == 0 || len(id) > maxTrialIDLen {
		return api.NewError(api.ErrInvalidArgument, "trial id must be 1 to %d bytes", maxTrialIDLen)
	}
	c.note("trial", id)
	o := optionReader{method: method, opts: options}
	interactive := c.interactive(&o)
	automated, _ := o.bool(api.TrialOptAutomated)
	if o.err != nil {
		return o.err
	}
	var words []string
	for _, t := range eng.Trials() {
		if string(t.ID) != id {
			continue
		}
		// A finished trial is refused before polkit asks anyone anything.
		if t.State == tuning.StateReverted || t.State == tuning.StateEnded || (t.State == tuning.StateConfirmed && !t.Persisted) {
			return api.NewError(api.ErrConflict, "trial %s is already %s", id, t.State)
		}
		words = changeWords(t.Changes)
	}
	if words == nil {
		return api.NewError(api.ErrNotFound, "no trial %q (npllmctl tune list shows them)", id)
	}
	details := map[string]string{"trial": id, "changes": strings.Join(words, "; "), "automated": strconv.FormatBool(automated),
		"operation": verb + " the trial " + strings.Join(words, ", ")}
	if derr := c.authorize(c.rule.Action, details, interactive); derr != nil {
		return derr
	}
	return ToDBus(act(eng, tuning.TrialID(id)))
}

// parseChanges reads StartTrial's changes: "KNOB" or "KNOB@TARGET" → value.
func parseChanges(m map[string]dbus.Variant) ([]tuning.Change, *dbus.Error) {
	if len(m) == 0 || len(m) > maxTrialChanges {
		return nil, api.NewError(api.ErrInvalidArgument, "a trial changes 1 to %d knobs, not %d", maxTrialChanges, len(m))
	}
	out := make([]tuning.Change, 0, len(m))
	for key, v := range m {
		if len(key) == 0 || len(key) > maxTrialKeyLen {
			return nil, api.NewError(api.ErrInvalidArgument, "a knob name must be 1 to %d bytes", maxTrialKeyLen)
		}
		var value string
		switch x := v.Value().(type) {
		case string:
			value = x
		case int32, uint32, int64, uint64, int16, uint16, byte:
			value = fmt.Sprint(x)
		default:
			return nil, api.NewError(api.ErrInvalidArgument, "the value of %q must be a string or an integer, not %s", key, v.Signature())
		}
		if len(value) > maxTrialValLen {
			return nil, api.NewError(api.ErrInvalidArgument, "the value of %q is longer than %d bytes", key, maxTrialValLen)
		}
		knob, target, _ := strings.Cut(key, "@")
		out = append(out, tuning.Change{Knob: knob, Target: target, Value: value})
	}
	return out, nil
}

// trialOptions reads StartTrial's options; a wrong type is left in o.err.
func trialOptions(o *optionReader) tuning.Options {
	var opts tuning.Options
	ms := func(key string) time.Duration {
		v, _ := o.uint32(key)
		return time.Duration(v) * time.Millisecond
	}
	opts.Canary, opts.Lease, opts.Every = ms(api.TrialOptCanaryMS), ms(api.TrialOptLeaseMS), ms(api.TrialOptEveryMS)
	opts.Workload, _ = o.string(api.TrialOptWorkload)
	opts.Persist, _ = o.bool(api.TrialOptPersist)
	threshold := 0.0
	if v, ok := o.opts[api.TrialOptThreshold]; ok {
		f, isF := v.Value().(float64)
		if !isF || f <= 0 || f > 10 {
			if o.err == nil {
				o.err = api.NewError(api.ErrInvalidArgument, "StartTrial: option %q must be a double in (0, 10]", api.TrialOptThreshold)
			}
		}
		threshold = f
	}
	watch, _ := o.strings(api.TrialOptWatch)
	if len(watch) > 64 { // the engine allows 8; this only bounds the work
		watch = watch[:64]
	}
	for _, w := range watch {
		metric, target, _ := strings.Cut(w, ":")
		opts.Watch = append(opts.Watch, tuning.Watch{Metric: metric, Target: target, Threshold: threshold})
	}
	return opts
}

// changeWords names each change for polkit, the audit and the journal.
func changeWords(infos []tuning.ChangeInfo) []string {
	out := make([]string, len(infos))
	for i, c := range infos {
		out[i] = fmt.Sprintf("%s: %s → %s", c.Key, c.Old, c.New)
	}
	return out
}
