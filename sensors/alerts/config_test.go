package alerts

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NaN passes every "v <= 0 || v > 100" check and Inf passes "≥ 1": both
// would switch a rule off (or on for ever) without any error.
func TestNaNAndInfThresholdsAreRefusedFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "npllmd.toml")
	for _, line := range []string{
		"disk_warning_percent = nan", "disk_critical_percent = +inf", "memory_low_percent = -nan",
		"memory_pressure_some_percent = nan", "cpu_runaway_percent = inf", "anomaly_rss_factor = inf",
		"anomaly_rss_factor = nan",
	} {
		os.WriteFile(path, []byte("[alerts]\n"+line+"\n"), 0o644)
		key, _, _ := strings.Cut(line, " ")
		_, err := LoadConfig(path)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want ErrInvalidConfig naming %s", line, err, key)
		}
	}
}

func TestNaNAndInfThresholdsAreRefusedAtRunTimeAndChangeNothing(t *testing.T) {
	c := DefaultConfig()
	for _, key := range []string{"disk_warning_percent", "memory_pressure_full_percent", "anomaly_rss_factor", "cpu_runaway_percent"} {
		for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			n, err := c.With(map[string]any{key: v})
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), key) {
				t.Errorf("%s=%v: %v, want ErrInvalidConfig naming the key", key, v, err)
			}
			if n != (Config{}) {
				t.Errorf("%s=%v returned a config: %+v", key, v, n)
			}
		}
	}
	for _, key := range []string{"anomaly_min_samples", "anomaly_rss_min_bytes"} {
		if _, err := c.With(map[string]any{key: math.NaN()}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s=NaN: %v", key, err)
		}
	}
	if c != DefaultConfig() {
		t.Errorf("refused changes changed the config: %+v", c)
	}
}

func TestDisksTableChoosesNetworkAndFUSEAndRefusesUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "npllmd.toml")
	os.WriteFile(path, []byte("[disks]\ninclude_fuse = true\n"), 0o644)
	f, err := LoadFile(path)
	if err != nil || !f.Disks.IncludeFUSE || f.Disks.IncludeNetwork || f.Alerts != DefaultConfig() {
		t.Fatalf("%v %+v", err, f)
	}
	os.WriteFile(path, []byte("[disks]\ninclude_fuses = true\n"), 0o644)
	if _, err := LoadFile(path); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "include_fuses") {
		t.Errorf("unknown [disks] key: %v", err)
	}
}
