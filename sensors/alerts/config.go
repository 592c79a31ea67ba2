package alerts

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/npllm/npllm/sensors"
)

// Config holds the alert thresholds. Defaults follow what users already
// trust: PSI use as in systemd-oomd and Meta's oomd (memory pressure),
// earlyoom's 10 % rule (memory.low), df-style "almost full" (disk.full).
// Each field's toml key is its name in /etc/npllm/npllmd.toml's [alerts]
// table and in the Configure method.
type Config struct {
	// memory.pressure: warning when PSI memory "some" avg10 stays at or
	// above this percentage for PressureSustain; critical when "full"
	// avg10 does for PressureFullPercent. Cleared below half of both.
	PressureSomePercent float64  `toml:"memory_pressure_some_percent"`
	PressureFullPercent float64  `toml:"memory_pressure_full_percent"`
	PressureSustain     Duration `toml:"memory_pressure_sustain"`
	// memory.low: available memory and free swap both below this
	// percentage (critical below half of it); cleared 5 points above.
	MemoryLowPercent float64 `toml:"memory_low_percent"`
	// disk.full: blocks or inodes used at or above these percentages;
	// cleared 3 points below the warning level.
	DiskWarningPercent  float64 `toml:"disk_warning_percent"`
	DiskCriticalPercent float64 `toml:"disk_critical_percent"`
	// cpu.runaway: one process above this percentage of a core for this long.
	RunawayCPUPercent float64  `toml:"cpu_runaway_percent"`
	RunawayAfter      Duration `toml:"cpu_runaway_after"`
	// process.anomaly: RSS above AnomalyFactor × its own p95 and above
	// AnomalyMinBytes, once the program has AnomalyMinSamples runs.
	AnomalyFactor     float64 `toml:"anomaly_rss_factor"`
	AnomalyMinBytes   uint64  `toml:"anomaly_rss_min_bytes"`
	AnomalyMinSamples int     `toml:"anomaly_min_samples"`
	// Alerts raised by single events (oom.kill, process.crash, unit.failed)
	// clear themselves after this long.
	EventAlertTTL Duration `toml:"event_alert_ttl"`
	// How often the process table is sampled for cpu.runaway and
	// process.anomaly.
	ProcessSampleInterval Duration `toml:"process_sample_interval"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		PressureSomePercent: 10, PressureFullPercent: 5, PressureSustain: Duration(10 * time.Second),
		MemoryLowPercent:   10,
		DiskWarningPercent: 90, DiskCriticalPercent: 97,
		RunawayCPUPercent: 90, RunawayAfter: Duration(2 * time.Minute),
		AnomalyFactor: 3, AnomalyMinBytes: 500 << 20, AnomalyMinSamples: 5,
		EventAlertTTL:         Duration(10 * time.Minute),
		ProcessSampleInterval: Duration(10 * time.Second),
	}
}

// Duration is a time.Duration written as "10s" in TOML and D-Bus.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d Duration) D() time.Duration { return time.Duration(d) }

// ErrInvalidConfig marks a setting that is unknown or out of range.
var ErrInvalidConfig = errors.New("invalid setting")

// File is the layout of npllmd.toml: the [alerts] thresholds, and the
// [disks] table that says which file systems are asked how full they are.
type File struct {
	Alerts Config              `toml:"alerts"`
	Disks  sensors.DiskOptions `toml:"disks"`
}

// LoadFile reads path over the defaults. A missing file gives the
// defaults; unknown keys and bad values are errors naming the key.
func LoadFile(path string) (File, error) {
	fc := File{Alerts: DefaultConfig()}
	md, err := toml.DecodeFile(path, &fc)
	if errors.Is(err, os.ErrNotExist) {
		return File{Alerts: DefaultConfig()}, nil
	}
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return File{}, fmt.Errorf("%s: %w: unknown keys %s", path, ErrInvalidConfig, strings.Join(keys, ", "))
	}
	if err := fc.Alerts.Validate(); err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

// LoadConfig reads the [alerts] thresholds of path (see LoadFile).
func LoadConfig(path string) (Config, error) {
	f, err := LoadFile(path)
	return f.Alerts, err
}

// Validate checks every threshold's range.
func (c Config) Validate() error {
	pct := func(key string, v float64) error {
		if !(v > 0 && v <= 100) { // also false for NaN
			return fmt.Errorf("%w: %s must be in (0, 100], not %g", ErrInvalidConfig, key, v)
		}
		return nil
	}
	positive := func(key string, d Duration) error {
		if d <= 0 {
			return fmt.Errorf("%w: %s must be a positive duration such as \"10s\"", ErrInvalidConfig, key)
		}
		return nil
	}
	for _, err := range []error{
		pct("memory_pressure_some_percent", c.PressureSomePercent), pct("memory_pressure_full_percent", c.PressureFullPercent),
		pct("memory_low_percent", c.MemoryLowPercent), pct("disk_warning_percent", c.DiskWarningPercent),
		pct("disk_critical_percent", c.DiskCriticalPercent), pct("cpu_runaway_percent", c.RunawayCPUPercent),
		positive("memory_pressure_sustain", c.PressureSustain), positive("cpu_runaway_after", c.RunawayAfter),
		positive("event_alert_ttl", c.EventAlertTTL), positive("process_sample_interval", c.ProcessSampleInterval),
	} {
		if err != nil {
			return err
		}
	}
	if c.DiskCriticalPercent < c.DiskWarningPercent {
		return fmt.Errorf("%w: disk_critical_percent (%g) is below disk_warning_percent (%g)", ErrInvalidConfig, c.DiskCriticalPercent, c.DiskWarningPercent)
	}
	if !(c.AnomalyFactor >= 1) || math.IsInf(c.AnomalyFactor, 0) || c.AnomalyMinSamples < 1 {
		return fmt.Errorf("%w: anomaly_rss_factor must be a finite number ≥ 1 and anomaly_min_samples ≥ 1, not %g and %d", ErrInvalidConfig, c.AnomalyFactor, c.AnomalyMinSamples)
	}
	return nil
}

// Keys lists the setting names.
func Keys() []string {
	var out []string
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		out = append(out, t.Field(i).Tag.Get("toml"))
	}
	sort.Strings(out)
	return out
}

// With returns c with the named settings changed; values are float64,
// uint64, int (any integer) or duration strings as in the file. Nothing
// changes if any setting is bad.
func (c Config) With(settings map[string]any) (Config, error) {
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for key, val := range settings {
		i := fieldIndex(t, key)
		if i < 0 {
			return Config{}, fmt.Errorf("%w: unknown setting %q (have %s)", ErrInvalidConfig, key, strings.Join(Keys(), ", "))
		}
		f := v.Field(i)
		switch f.Interface().(type) {
		case Duration:
			s, ok := val.(string)
			var d Duration
			if !ok || d.UnmarshalText([]byte(s)) != nil {
				return Config{}, fmt.Errorf("%w: %s takes a duration string such as \"10s\", not %v", ErrInvalidConfig, key, val)
			}
			f.Set(reflect.ValueOf(d))
		case float64:
			n, ok := number(val)
			if !ok || math.IsNaN(n) || math.IsInf(n, 0) {
				return Config{}, fmt.Errorf("%w: %s takes a finite number, not %v", ErrInvalidConfig, key, val)
			}
			f.SetFloat(n)
		case uint64, int:
			n, ok := number(val)
			if !ok || !(n >= 0 && n < 1<<63) || n != float64(int64(n)) {
				return Config{}, fmt.Errorf("%w: %s takes a non-negative integer, not %v", ErrInvalidConfig, key, val)
			}
			if f.Kind() == reflect.Uint64 {
				f.SetUint(uint64(n))
			} else {
				f.SetInt(int64(n))
			}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func fieldIndex(t reflect.Type, key string) int {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == key {
			return i
		}
	}
	return -1
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

// Values returns every setting by key, durations as strings.
func (c Config) Values() map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		val := v.Field(i).Interface()
		if d, ok := val.(Duration); ok {
			val = d.D().String()
		}
		if n, ok := val.(int); ok {
			val = int64(n)
		}
		out[t.Field(i).Tag.Get("toml")] = val
	}
	return out
}
