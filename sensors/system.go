package sensors

import (
	"context"
	"fmt"

	"github.com/prometheus/procfs"
)

// The "system" sensor reads load, CPU time and memory from procfs.
func init() {
	Register(Registration{
		Name:        "system",
		Description: "load average, CPU usage, memory and swap from /proc",
		DefaultOn:   true,
		Variants:    []Variant{{Name: "procfs", Start: startSystem}},
	})
}

type systemSensor struct {
	fs        procfs.FS
	prevBusy  float64
	prevTotal float64
}

func startSystem(_ context.Context, env *Env) (Running, error) {
	fs, err := procfs.NewFS(env.ProcRoot)
	if err != nil {
		return nil, &Unavailable{Reason: "procfs: " + err.Error(), Fix: "mount /proc"}
	}
	s := &systemSensor{fs: fs}
	if err := s.Sample(&Snapshot{}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *systemSensor) Sample(snap *Snapshot) error {
	load, err := s.fs.LoadAvg()
	if err != nil {
		return fmt.Errorf("loadavg: %w", err)
	}
	snap.Load = [3]float64{load.Load1, load.Load5, load.Load15}

	mem, err := s.fs.Meminfo()
	if err != nil {
		return fmt.Errorf("meminfo: %w", err)
	}
	kb := func(v *uint64) uint64 {
		if v == nil {
			return 0
		}
		return *v * 1024
	}
	snap.MemoryTotal, snap.MemoryAvailable = kb(mem.MemTotal), kb(mem.MemAvailable)
	snap.SwapTotal, snap.SwapFree = kb(mem.SwapTotal), kb(mem.SwapFree)

	stat, err := s.fs.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	c := stat.CPUTotal
	idle := c.Idle + c.Iowait
	total := idle + c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	if dt := total - s.prevTotal; s.prevTotal > 0 && dt > 0 {
		snap.CPUUsage = 100 * ((total - idle) - s.prevBusy) / dt
	}
	s.prevBusy, s.prevTotal = total-idle, total
	return nil
}

func (s *systemSensor) Counters() map[string]uint64 { return nil }
func (s *systemSensor) Close() error                { return nil }
