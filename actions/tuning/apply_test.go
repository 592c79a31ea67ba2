package tuning

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

// failingKnob is a test-only family whose writes fail, standing in for a
// knob the kernel refuses half-way through a trial (the real knob before
// it is really written and must be really restored).
type failingKnob struct{}

func (failingKnob) Key() string                                          { return "test.fails" }
func (failingKnob) Read(context.Context) (string, error)                 { return "a", nil }
func (failingKnob) Validate(_ context.Context, v string) (string, error) { return v, nil }
func (failingKnob) Write(context.Context, string) error                  { return errors.New("kernel said no") }
func (failingKnob) Restore(context.Context, string) error                { return nil }

func init() {
	Register(Family{Name: "test",
		List: func(context.Context, *Env) []TunableInfo { return nil },
		Resolve: func(_ context.Context, _ *Env, name, _ string) (Knob, error) {
			if name != "test.fails" {
				return nil, ErrUnknownKnob
			}
			return failingKnob{}, nil
		}})
}

func TestApplyFailingHalfwayIsUndoneBeforeStartReturns(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	e, ev := newEngine(t, t.TempDir(), nil)
	_, err := e.Start(bg, []Change{{Knob: "vm.swappiness", Value: other}, {Knob: "test.fails", Value: "b"}},
		Options{Canary: time.Second, Lease: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "kernel said no") {
		t.Fatalf("Start: %v", err)
	}
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s after a failed apply, want %s", got, orig)
	}
	if k := ev.kinds(); strings.Join(k, ",") != EventStarted+","+EventReverted {
		t.Fatalf("events %v", k)
	}
	if left := stateTrials(t, e.dir); len(left) != 0 {
		t.Fatalf("state after a failed apply: %+v", left)
	}
	if _, err := e.Start(bg, swapChange(other), Options{}); err != nil {
		t.Fatalf("the knob is still held after a failed apply: %v", err)
	}
}

// FuzzUnitValue: whatever the caller sends, an accepted value is within
// the property's bounds and reads back as itself.
func FuzzUnitValue(f *testing.F) {
	for _, s := range []string{"512M", "1G", "infinity", "default", "0", "-1", "99999999999999999999", "1T", "1048575", "4K", "+5", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, spec := range unitProps {
			k := &unitKnob{spec: spec, unit: "x.service"}
			v, err := k.parse(in)
			if err != nil {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("%s %q: unnamed error %v", spec.prop, in, err)
				}
				continue
			}
			if v != math.MaxUint64 && (v < uint64(spec.min) || v > uint64(spec.max)) {
				t.Fatalf("%s %q accepted as %d outside [%d, %d]", spec.prop, in, v, spec.min, spec.max)
			}
			if back, err := k.parse(k.format(v)); err != nil || back != v {
				t.Fatalf("%s %q → %d → %q → %d %v", spec.prop, in, v, k.format(v), back, err)
			}
		}
		for _, s := range sysctls {
			k := &sysctlKnob{spec: s}
			if v, err := k.Validate(bg, in); err == nil {
				if n, _ := strconv.ParseInt(v, 10, 64); n < s.min || n > s.max {
					t.Fatalf("%s %q accepted as %s", s.name, in, v)
				}
			}
		}
	})
}
