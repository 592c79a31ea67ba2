package sensors

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/cilium/ebpf"
)

// Histograms kept in the kernel as log2 buckets of nanoseconds (bucket i
// counts values in [2^i, 2^(i+1)), bucket 0 also 0 and 1), summed over
// CPUs when read. Nothing is streamed: they cost a map update per sample
// in the kernel and nothing in the daemon until someone asks.

const histBuckets = 64

// Histogram is one read of a histogram sensor.
type Histogram struct {
	Name   string
	Unit   string
	Series string   // which series was read ("all" sums them)
	Counts []uint64 // log2 buckets, trimmed after the last non-empty one
	Missed uint64   // samples lost because their start was not seen
}

// HistogramReader is implemented by running histogram sensors.
type HistogramReader interface {
	// Series lists what ReadHistogram accepts besides "all".
	Series() []string
	ReadHistogram(series string) (Histogram, error)
}

// ErrUnknownSeries is returned for a series the histogram does not have.
var ErrUnknownSeries = errors.New("unknown histogram series")

// BucketBounds returns the [low, high) bounds of bucket i.
func BucketBounds(i int) (low, high uint64) {
	if i == 0 {
		return 0, 2
	}
	return 1 << i, 1 << (i + 1)
}

// Total is the number of samples.
func (h Histogram) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as the upper bound of the
// bucket it falls in: an honest "at most", as log2 buckets cannot say more.
func (h Histogram) Quantile(q float64) uint64 {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			_, high := BucketBounds(i)
			return high
		}
	}
	_, high := BucketBounds(len(h.Counts) - 1)
	return high
}

// histSensor is a running histogram sensor: one object whose "hist" map
// holds len(series) runs of 64 buckets.
type histSensor struct {
	name   string
	obj    *bpfObject
	series []string
}

func startHistSensor(name string, spec *ebpf.CollectionSpec, btf bool, tracepoints, series []string) (Running, error) {
	obj, err := loadBPF(spec, btf, tracepoints, []string{"samples", "missed"})
	if err != nil {
		return nil, err
	}
	return &histSensor{name: name, obj: obj, series: series}, nil
}

func (s *histSensor) Series() []string { return s.series }

func (s *histSensor) ReadHistogram(series string) (Histogram, error) {
	h := Histogram{Name: s.name, Unit: "ns", Series: series, Counts: make([]uint64, histBuckets)}
	pick := -1
	if series != "all" {
		for i, name := range s.series {
			if name == series {
				pick = i
			}
		}
		if pick < 0 {
			return Histogram{}, fmt.Errorf("%w %q for %s (have all, %v)", ErrUnknownSeries, series, s.name, s.series)
		}
	}
	rows, err := readPerCPUSums(s.obj.coll.Maps["hist"], len(s.series)*histBuckets)
	if err != nil {
		return Histogram{}, fmt.Errorf("read %s: %w", s.name, err)
	}
	for key, v := range rows {
		if i := key / histBuckets; pick < 0 || i == pick {
			h.Counts[key%histBuckets] += v
		}
	}
	last := 0
	for i, c := range h.Counts {
		if c != 0 {
			last = i + 1
		}
	}
	h.Counts = h.Counts[:last]
	c := map[string]uint64{}
	s.obj.addCounters(c)
	h.Missed = c["missed"]
	return h, nil
}

func (s *histSensor) Counters() map[string]uint64 {
	out := map[string]uint64{}
	s.obj.addCounters(out)
	return out
}

func (s *histSensor) Close() error {
	s.obj.Close()
	return nil
}

// log2Bucket mirrors bpf/common.h's log2_bucket, for tests.
func log2Bucket(v uint64) int {
	if v <= 1 {
		return 0
	}
	return bits.Len64(v) - 1
}

// readPerCPUSums reads entries 0..n-1 of a per-CPU array map, each summed
// over CPUs: one BPF_MAP_LOOKUP_BATCH (a scrape read 64 buckets × series
// with a syscall each: most of GetHistogram's cost), or key by key where
// the kernel has no batch lookup (before 5.6).
func readPerCPUSums(m *ebpf.Map, n int) ([]uint64, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	sums := make([]uint64, n)
	keys := make([]uint32, n)
	values := make([]uint64, n*cpus)
	var cursor ebpf.MapBatchCursor
	got, err := m.BatchLookup(&cursor, keys, values, nil)
	if err == nil || errors.Is(err, ebpf.ErrKeyNotExist) {
		for i := range got {
			if k := int(keys[i]); k < n {
				for _, v := range values[i*cpus : (i+1)*cpus] {
					sums[k] += v
				}
			}
		}
		if got == n || errors.Is(err, ebpf.ErrKeyNotExist) {
			return sums, nil
		}
	}
	var per []uint64
	clear(sums)
	for k := range n {
		if err := m.Lookup(uint32(k), &per); err != nil {
			return nil, err
		}
		for _, v := range per {
			sums[k] += v
		}
	}
	return sums, nil
}
