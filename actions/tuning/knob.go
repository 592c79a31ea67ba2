// Package tuning changes kernel and systemd knobs only as trials: every
// change is validated against the live system, its undo set is written
// durably before anything is touched, a canary window watches metrics the
// daemon provides, a regression reverts at once, and a change nobody
// confirms is reverted when its lease ends ("commit confirmed").
//
// Knobs come in families, one file each (sysctl.go, block.go, thp.go,
// unitprop.go, cpufreq.go, ppd.go, scx.go), registered like sensors. A
// family that cannot work on this machine still lists its knobs, as
// unavailable with the reason.
package tuning

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Sentinel errors; the D-Bus layer maps each to one named error.
var (
	ErrInvalidArgument = errors.New("invalid argument")
	ErrUnknownKnob     = errors.New("unknown knob")
	ErrUnavailable     = errors.New("knob unavailable on this machine")
	ErrConflict        = errors.New("knob already in a trial")
	ErrNoSuchTrial     = errors.New("no such trial")
	ErrTrialState      = errors.New("trial is not in a state that allows this")
	ErrNotRecovered    = errors.New("RecoverAtStart has not run")
	ErrBusy            = errors.New("state directory in use by another engine")
	ErrDamagedState    = errors.New("damaged state file moved aside")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnavailable, fmt.Sprintf(format, args...))
}

// Value types of knobs.
const (
	TypeInt   = "int"
	TypeEnum  = "enum"
	TypeBytes = "bytes" // a byte count, "infinity" allowed
)

// Risks, as shown to users and models.
const (
	RiskLow    = "low"
	RiskMedium = "medium"
	RiskHigh   = "high"
)

// TunableInfo is one row of the knob table.
type TunableInfo struct {
	Name      string   // "vm.swappiness", "block.scheduler", "unit.CPUWeight"
	Family    string   // "sysctl", "block", …
	Target    string   // device, unit or policy; "" for machine-wide knobs
	NeedsUnit bool     // the target is a unit the caller names (not listed per unit)
	Type      string   // TypeInt, TypeEnum, TypeBytes
	Allowed   []string // enum values offered by the live system
	Min, Max  int64    // bounds of TypeInt and TypeBytes
	Current   string   // "" when per-unit or unavailable
	Default   string   // kernel/systemd default; "" when it depends on the build
	Risk      string
	Why       string // one line: why you would change it
	Available bool
	Reason    string  // why unavailable
	Trial     TrialID // the trial holding it, if any
}

// Knob is one resolved knob on one target.
type Knob interface {
	// Key names the knob and its target uniquely ("vm.swappiness",
	// "block.scheduler@vda"); one trial per key.
	Key() string
	// Read returns the current value in the canonical form Validate returns.
	Read(ctx context.Context) (string, error)
	// Validate checks value against the live system and returns it in
	// canonical form; it changes nothing.
	Validate(ctx context.Context, value string) (string, error)
	Write(ctx context.Context, value string) error
	// Restore undoes Write, given the value read before it. Most knobs write
	// old back; a hold (power-profiles-daemon) is released instead.
	Restore(ctx context.Context, old string) error
}

// Family is a group of knobs registered from its own file.
type Family struct {
	Name string
	// List returns the family's rows on this machine.
	List func(ctx context.Context, env *Env) []TunableInfo
	// Resolve returns the knob name on target, ErrUnknownKnob when name is
	// not this family's, or ErrUnavailable/ErrInvalidArgument.
	Resolve func(ctx context.Context, env *Env, name, target string) (Knob, error)
}

var (
	familiesMu sync.Mutex
	families   = map[string]Family{}
)

// Register adds a family; it is called from the init of the family's file.
func Register(f Family) {
	familiesMu.Lock()
	defer familiesMu.Unlock()
	if _, dup := families[f.Name]; dup {
		panic("tuning: duplicate family " + f.Name)
	}
	families[f.Name] = f
}

func registered() []Family {
	familiesMu.Lock()
	defer familiesMu.Unlock()
	out := make([]Family, 0, len(families))
	for _, f := range families {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Env is where knobs live; tests point the roots at fixtures.
type Env struct {
	ProcSys string // "/proc/sys"
	Sys     string // "/sys"
	Etc     string // "/etc": where confirmed changes are persisted on request
	// Units reads and sets systemd unit properties (nil: systemd D-Bus).
	Units UnitProperties
	// Bus returns the system bus for power-profiles-daemon and scx_loader
	// (nil: those knobs are unavailable).
	Bus BusFunc
}

// DefaultEnv is the live machine.
func DefaultEnv() *Env {
	return &Env{ProcSys: "/proc/sys", Sys: "/sys", Etc: "/etc", Units: &SystemdUnits{}, Bus: SystemBus}
}

// Tunables lists every knob of every family on this machine.
func Tunables(ctx context.Context, env *Env) []TunableInfo {
	var out []TunableInfo
	for _, f := range registered() {
		out = append(out, f.List(ctx, env)...)
	}
	return out
}

// Resolve finds the knob name on target in any family.
func Resolve(ctx context.Context, env *Env, name, target string) (Knob, error) {
	if len(name) > 64 || len(target) > 256 {
		return nil, invalid("knob name or target too long")
	}
	for _, f := range registered() {
		k, err := f.Resolve(ctx, env, name, target)
		if errors.Is(err, ErrUnknownKnob) {
			continue
		}
		return k, err
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKnob, name)
}

// reason is an error as shown in a row's Reason (without the sentinel).
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
}

// parseBounded parses a decimal integer within [lo, hi].
func parseBounded(name, value string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || len(value) > 20 {
		return 0, invalid("%s: %q is not a number", name, value)
	}
	if n < lo || n > hi {
		return 0, invalid("%s: %d is outside [%d, %d]", name, n, lo, hi)
	}
	return n, nil
}

// oneOf accepts value only if the live system offered it.
func oneOf(name, value string, all []string) (string, error) {
	for _, a := range all {
		if a == value {
			return value, nil
		}
	}
	return "", invalid("%s: %q is not one of %s", name, value, strings.Join(all, ", "))
}

// bracketed parses a kernel choice list, "always [madvise] never", into the
// selected entry and all entries ("" when none is bracketed).
func bracketed(text string) (string, []string) {
	var cur string
	var all []string
	for _, f := range strings.Fields(text) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			f = f[1 : len(f)-1]
			cur = f
		}
		all = append(all, f)
	}
	return cur, all
}
