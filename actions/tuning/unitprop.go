package tuning

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions"
)

// Per-unit resource control through systemd (runtime only, as
// `systemctl set-property --runtime`): the knob users ask for most, "keep
// this build from freezing my desktop". The target is a service, scope or
// slice.

func init() {
	Register(Family{Name: "unit", List: listUnitProps, Resolve: resolveUnitProp})
}

type unitPropSpec struct {
	prop     string
	weight   bool // 1..10000 or "default"; otherwise bytes/count or "infinity"
	bytes    bool
	min, max int64
	risk     string
	why      string
}

var unitProps = []unitPropSpec{
	{"CPUWeight", true, false, 1, 10000, RiskLow,
		"share of CPU under contention (default 100); lower it for a build so the desktop stays responsive"},
	{"IOWeight", true, false, 1, 10000, RiskLow,
		"share of disk time under contention (default 100); lower it for backups and indexers"},
	{"MemoryHigh", false, true, 1 << 20, 1 << 50, RiskMedium,
		"throttle and reclaim above this much memory instead of letting one unit push the desktop into swap"},
	{"MemoryMax", false, true, 1 << 20, 1 << 50, RiskHigh,
		"hard limit: the unit is OOM-killed above it"},
	{"TasksMax", false, false, 1, 4194304, RiskMedium,
		"caps processes and threads, stopping a fork bomb or a runaway parallel build"},
}

// UnitProperties reads and sets systemd resource-control properties; values
// are uint64 with math.MaxUint64 meaning unset/infinity, as on systemd's bus.
type UnitProperties interface {
	// Check says why systemd cannot be asked (nil when it can).
	Check(ctx context.Context) error
	// Get fails with ErrInvalidArgument when the unit is not loaded.
	Get(ctx context.Context, unit, prop string) (uint64, error)
	Set(ctx context.Context, unit, prop string, v uint64) error
}

func listUnitProps(ctx context.Context, env *Env) []TunableInfo {
	var because string
	if env.Units == nil {
		because = "no systemd connection configured"
	} else if err := env.Units.Check(ctx); err != nil {
		because = reason(err)
	}
	out := make([]TunableInfo, 0, len(unitProps))
	for _, s := range unitProps {
		info := TunableInfo{Name: "unit." + s.prop, Family: "unit", NeedsUnit: true, Type: TypeInt,
			Min: s.min, Max: s.max, Risk: s.risk, Why: s.why, Available: because == "", Reason: because}
		switch {
		case s.weight:
			info.Default = "default"
		default:
			info.Default = "infinity"
		}
		if s.bytes {
			info.Type = TypeBytes
		}
		out = append(out, info)
	}
	return out
}

func resolveUnitProp(_ context.Context, env *Env, name, target string) (Knob, error) {
	prop, ok := strings.CutPrefix(name, "unit.")
	if !ok {
		return nil, ErrUnknownKnob
	}
	for _, s := range unitProps {
		if s.prop != prop {
			continue
		}
		if err := actions.ValidateUnitName(target); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		if unitType(target) == "" {
			return nil, invalid("%s applies to a service, scope or slice, not %q", name, target)
		}
		if env.Units == nil {
			return nil, unavailable("no systemd connection configured")
		}
		return &unitKnob{units: env.Units, spec: s, unit: target, etc: env.Etc}, nil
	}
	return nil, fmt.Errorf("%w: %q (unit knobs: CPUWeight, IOWeight, MemoryHigh, MemoryMax, TasksMax)", ErrUnknownKnob, name)
}

// unitType is the systemd interface suffix of a unit that has a cgroup.
func unitType(unit string) string {
	switch {
	case strings.HasSuffix(unit, ".service"):
		return "Service"
	case strings.HasSuffix(unit, ".scope"):
		return "Scope"
	case strings.HasSuffix(unit, ".slice"):
		return "Slice"
	}
	return ""
}

type unitKnob struct {
	units UnitProperties
	spec  unitPropSpec
	unit  string
	etc   string
}

func (k *unitKnob) Key() string { return "unit." + k.spec.prop + "@" + k.unit }

// parse turns "512M", "infinity", "default", "200" into the bus value.
func (k *unitKnob) parse(value string) (uint64, error) {
	name := k.Key()
	switch {
	case k.spec.weight && value == "default":
		return math.MaxUint64, nil
	case !k.spec.weight && value == "infinity":
		return math.MaxUint64, nil
	}
	num, mult := value, int64(1)
	if k.spec.bytes && num != "" {
		if i := strings.IndexByte("KMGT", num[len(num)-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			num = num[:len(num)-1]
		}
	}
	n, err := parseBounded(name, num, 0, k.spec.max)
	if err != nil {
		return 0, err
	}
	if n > k.spec.max/mult || n*mult < k.spec.min {
		return 0, invalid("%s: %s is outside [%d, %d]", name, value, k.spec.min, k.spec.max)
	}
	return uint64(n * mult), nil
}

func (k *unitKnob) format(v uint64) string {
	switch {
	case v == math.MaxUint64 && k.spec.weight:
		return "default"
	case v == math.MaxUint64:
		return "infinity"
	}
	return strconv.FormatUint(v, 10)
}

func (k *unitKnob) Read(ctx context.Context) (string, error) {
	v, err := k.units.Get(ctx, k.unit, k.spec.prop)
	if err != nil {
		return "", err
	}
	return k.format(v), nil
}

// Validate checks the value before asking systemd anything, then that the
// unit is loaded.
func (k *unitKnob) Validate(ctx context.Context, value string) (string, error) {
	v, err := k.parse(value)
	if err != nil {
		return "", err
	}
	if err := k.units.Check(ctx); err != nil {
		return "", err
	}
	if _, err := k.units.Get(ctx, k.unit, k.spec.prop); err != nil {
		return "", err
	}
	return k.format(v), nil
}

func (k *unitKnob) Write(ctx context.Context, value string) error {
	v, err := k.parse(value)
	if err != nil {
		return err
	}
	return k.units.Set(ctx, k.unit, k.spec.prop, v)
}

func (k *unitKnob) Restore(ctx context.Context, old string) error { return k.Write(ctx, old) }

// SystemdUnits talks to systemd over its D-Bus API (go-systemd).
type SystemdUnits struct {
	mu   sync.Mutex
	conn *sdbus.Conn
}

// Check reports whether systemd can be asked.
func (s *SystemdUnits) Check(ctx context.Context) error {
	_, err := s.connect(ctx)
	return err
}

func (s *SystemdUnits) connect(ctx context.Context) (*sdbus.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn.Connected() {
		return s.conn, nil
	}
	if !actions.Booted() {
		return nil, unavailable("systemd is not running as PID 1 on this machine")
	}
	conn, err := sdbus.NewWithContext(ctx)
	if err != nil {
		return nil, unavailable("cannot reach systemd: %v", err)
	}
	s.conn = conn
	return conn, nil
}

// Get reads a unit's property; a unit systemd has not loaded is invalid.
func (s *SystemdUnits) Get(ctx context.Context, unit, prop string) (uint64, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return 0, err
	}
	ls, err := conn.GetUnitPropertyContext(ctx, unit, "LoadState")
	if err != nil {
		return 0, fmt.Errorf("systemd: %s: %w", unit, err)
	}
	if st, _ := ls.Value.Value().(string); st != "loaded" {
		return 0, invalid("no unit %q (load state %q)", unit, st)
	}
	// One trial per knob holds only if every unit has one name here.
	if id, err := conn.GetUnitPropertyContext(ctx, unit, "Id"); err == nil {
		if name, _ := id.Value.Value().(string); name != "" && name != unit {
			return 0, invalid("%q is an alias of %q; name the unit itself", unit, name)
		}
	}
	p, err := conn.GetUnitTypePropertyContext(ctx, unit, unitType(unit), prop)
	if err != nil {
		return 0, fmt.Errorf("systemd: %s %s: %w", unit, prop, err)
	}
	v, ok := p.Value.Value().(uint64)
	if !ok {
		return 0, fmt.Errorf("systemd: %s %s has type %s", unit, prop, p.Value.Signature())
	}
	return v, nil
}

// Set changes a property at run time only (gone at the next boot).
func (s *SystemdUnits) Set(ctx context.Context, unit, prop string, v uint64) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	err = conn.SetUnitPropertiesContext(ctx, unit, true, sdbus.Property{Name: prop, Value: godbus.MakeVariant(v)})
	if err != nil {
		return fmt.Errorf("systemd: set %s %s: %w", unit, prop, err)
	}
	return nil
}
