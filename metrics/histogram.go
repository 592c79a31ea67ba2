package metrics

import (
	"math"

	"github.com/npllm/npllm/dbus/api"
)

// npllmd's histograms count integer nanoseconds in log2 buckets
// [low, high). Prometheus's le is inclusive ("≤ le"), so bucket i is
// exposed with le = high-1 ns: every sample counted under it is ≤ le, and
// every integer sample ≤ le is counted under it (le = high would claim
// samples equal to high, which the next bucket holds).

// Buckets kept as their own le: 2^9..2^33 ns as low bounds, i.e. from
// le ≈ 1 µs to le ≈ 17 s. Smaller buckets fold into the first (cumulative
// counts lose nothing), larger ones into +Inf; a fixed set keeps the series
// stable whatever npllmd trimmed.
const (
	firstBucket = 9
	lastBucket  = 33
)

// bucketLE is bucket i's le in seconds.
func bucketLE(high uint64) float64 { return float64(high-1) / 1e9 }

// cumulative turns a GetHistogram reply into Prometheus buckets (le in
// seconds → cumulative count) and the total count. It trusts
// bucket_high only when it has the log2 shape, so a reply that does not
// match is refused rather than exposed with wrong bounds.
func cumulative(h api.Histogram) (buckets map[float64]uint64, count uint64, ok bool) {
	if len(h.BucketHigh) != len(h.Counts) || len(h.BucketLow) != len(h.Counts) {
		return nil, 0, false
	}
	for i := range h.Counts {
		wantLow, wantHigh := uint64(1)<<i, uint64(1)<<(i+1)
		if i == 0 {
			wantLow = 0
		}
		if i >= 63 || h.BucketLow[i] != wantLow || h.BucketHigh[i] != wantHigh {
			return nil, 0, false
		}
	}
	buckets = make(map[float64]uint64, lastBucket-firstBucket+1)
	var sum uint64
	for i := 0; i <= lastBucket; i++ {
		if i < len(h.Counts) {
			sum += h.Counts[i]
		}
		if i >= firstBucket {
			buckets[bucketLE(uint64(1)<<(i+1))] = sum
		}
	}
	for i := lastBucket + 1; i < len(h.Counts); i++ {
		sum += h.Counts[i]
	}
	return buckets, sum, true
}

// unknownSum is the _sum of our histograms: the kernel keeps counts per
// bucket only, so the sum is not known; NaN says so instead of inventing
// one (rate(_sum)/rate(_count) is NaN, quantiles work).
var unknownSum = math.NaN()
