package sensors

import (
	"fmt"

	"github.com/npllm/npllm/bpf"
)

// The "runq_latency" sensor keeps a histogram of how long runnable tasks
// wait for a CPU (sched_wakeup, sched_wakeup_new, sched_switch), read with
// GetHistogram("runq_latency"). It runs on every context switch, at the
// cost of two hash-map operations: in BenchmarkExecStorm it cost 4–18
// points of exec throughput (mean ~11 % loss with it, ~4 % without), so,
// like the syscall sensor, it is off unless switched on
// (npllmctl sensors enable runq_latency, or --enable-sensor).
func init() {
	Register(Registration{
		Name:        "runq_latency",
		Description: "run-queue latency histogram (time runnable tasks wait for a CPU; off by default: costs on every context switch)",
		DefaultOn:   false,
		Variants: bpfVariants(func(env *Env, btf bool) (Running, error) {
			spec, err := bpf.LoadRunqLat()
			if err != nil {
				return nil, fmt.Errorf("load spec: %w", err)
			}
			return startHistSensor("runq_latency", spec, btf, []string{"sched_wakeup", "sched_wakeup_new", "sched_switch"}, []string{"all"})
		}),
	})
}
