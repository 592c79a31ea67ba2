package api

import "fmt"

// HumanBytes formats a byte count with binary units ("1.5 GiB"), for every
// text npllm shows people: npllmctl, alerts, notifications, MCP summaries.
func HumanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
