package sensors

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/procfs"
)

// The "pressure" sensor reads PSI (pressure stall information) averages.
func init() {
	Register(Registration{
		Name:        "pressure",
		Description: "CPU, memory and I/O pressure (PSI) from /proc/pressure",
		DefaultOn:   true,
		Variants:    []Variant{{Name: "procfs", Start: startPressure}},
	})
}

var pressureResources = []string{"cpu", "memory", "io"}

type pressureSensor struct {
	fs procfs.FS
}

func startPressure(_ context.Context, env *Env) (Running, error) {
	fs, err := procfs.NewFS(env.ProcRoot)
	if err != nil {
		return nil, &Unavailable{Reason: "procfs: " + err.Error(), Fix: "mount /proc"}
	}
	if _, err := fs.PSIStatsForResource("memory"); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Unavailable{Reason: "the kernel does not expose /proc/pressure", Fix: "boot with psi=1 on the kernel command line (CONFIG_PSI)"}
		}
		return nil, &Unavailable{Reason: err.Error()}
	}
	return &pressureSensor{fs: fs}, nil
}

func (p *pressureSensor) Sample(snap *Snapshot) error {
	some := make(map[string][3]float64, len(pressureResources))
	full := make(map[string][3]float64, len(pressureResources))
	for _, r := range pressureResources {
		st, err := p.fs.PSIStatsForResource(r)
		if err != nil {
			return fmt.Errorf("pressure %s: %w", r, err)
		}
		if st.Some != nil {
			some[r] = [3]float64{st.Some.Avg10, st.Some.Avg60, st.Some.Avg300}
		}
		if st.Full != nil {
			full[r] = [3]float64{st.Full.Avg10, st.Full.Avg60, st.Full.Avg300}
		}
	}
	snap.Pressure, snap.PressureFull = some, full
	return nil
}

func (p *pressureSensor) Counters() map[string]uint64 { return nil }
func (p *pressureSensor) Close() error                { return nil }
