package sensors

import "github.com/npllm/npllm/dbus/api"

// Snapshot is the machine-wide state behind the daemon's properties, filled
// each refresh by the running Samplers. Byte counts are exactly
// /proc/meminfo's kB values × 1024.
type Snapshot struct {
	Load            [3]float64
	CPUUsage        float64 // percent of all CPUs over the last interval
	MemoryTotal     uint64
	MemoryAvailable uint64
	SwapTotal       uint64
	SwapFree        uint64
	// Pressure maps "cpu", "memory", "io" to PSI "some" avg10/60/300 and
	// PressureFull likewise to "full" (no "full" line for cpu on old kernels).
	Pressure     map[string][3]float64
	PressureFull map[string][3]float64
	Disks        []DiskUsage
}

// Health levels.
const (
	HealthOK       = api.HealthOK
	HealthWarning  = api.SeverityWarning
	HealthCritical = api.SeverityCritical
)

// Health judges the snapshot alone; active alerts may raise it further. The
// thresholds follow earlyoom (available memory and free swap both under 10%)
// and systemd-oomd (memory pressure).
func (s *Snapshot) Health() string {
	level := HealthOK
	raise := func(to string) {
		if to == HealthCritical || level == HealthOK {
			level = to
		}
	}
	if s.MemoryTotal > 0 {
		memFrac := float64(s.MemoryAvailable) / float64(s.MemoryTotal)
		swapLow := s.SwapTotal == 0 || float64(s.SwapFree)/float64(s.SwapTotal) < 0.10
		switch {
		case memFrac < 0.05 && swapLow:
			raise(HealthCritical)
		case memFrac < 0.10 && swapLow:
			raise(HealthWarning)
		}
	}
	if full, ok := s.PressureFull["memory"]; ok && full[0] >= 5 {
		raise(HealthCritical)
	}
	if some, ok := s.Pressure["memory"]; ok && some[0] >= 10 {
		raise(HealthWarning)
	}
	return level
}
