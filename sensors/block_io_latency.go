package sensors

import (
	"fmt"

	"github.com/npllm/npllm/bpf"
)

// The "block_io_latency" sensor keeps histograms of block request latency,
// issue to completion, for reads, writes and other operations
// (block_rq_issue, block_rq_complete), read with
// GetHistogram("block_io_latency", {"series": "read"}).
func init() {
	Register(Registration{
		Name:        "block_io_latency",
		Description: "block I/O latency histograms (issue to completion; read, write, other)",
		DefaultOn:   true,
		Variants: bpfVariants(func(env *Env, btf bool) (Running, error) {
			spec, err := bpf.LoadBioLat()
			if err != nil {
				return nil, fmt.Errorf("load spec: %w", err)
			}
			return startHistSensor("block_io_latency", spec, btf, []string{"block_rq_issue", "block_rq_complete"}, []string{"read", "write", "other"})
		}),
	})
}
