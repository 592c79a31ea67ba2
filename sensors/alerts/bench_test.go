package alerts

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBaselinesObserveFloodVsKnown: the cost of an exit event that
// teaches a known program vs one that brings a new name into a full set
// (an eviction: a scan of all 4,096 baselines), interleaved in one run.
// make bench runs it once (-benchtime 1x); the loop inside takes the
// samples.
func BenchmarkBaselinesObserveFloodVsKnown(b *testing.B) {
	const n = 20000
	bl := OpenBaselines(filepath.Join(b.TempDir(), "baselines.json"), nil)
	now := time.Unix(1000, 0)
	for uid := uint32(1000); uid < 1004; uid++ {
		for i := range maxPerUser {
			bl.Observe(uid, fmt.Sprintf("p%d", i), 1<<20, 1, 1, false, now)
		}
	}
	var known, flood time.Duration
	for i := 0; i < b.N*n; i++ {
		now = now.Add(time.Millisecond)
		t0 := time.Now()
		bl.Observe(0, "sshd", 5<<20, 1, 1, false, now)
		t1 := time.Now()
		bl.Observe(1000, fmt.Sprintf("x%d", i), 1<<20, 1, 1, false, now)
		t2 := time.Now()
		known += t1.Sub(t0)
		flood += t2.Sub(t1)
	}
	total := float64(b.N * n)
	b.ReportMetric(float64(known.Nanoseconds())/total, "known-ns/op")
	b.ReportMetric(float64(flood.Nanoseconds())/total, "evicting-ns/op")
	b.ReportMetric(float64(flood)/float64(known), "ratio")
}
