package metrics

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/npllm/npllm/dbus/api"
)

// log2 reply as npllmd's GetHistogram builds it (sensors.BucketBounds).
func log2Histogram(counts []uint64) api.Histogram {
	h := api.Histogram{Counts: counts}
	for i := range counts {
		low, high := uint64(1)<<i, uint64(1)<<(i+1)
		if i == 0 {
			low = 0
		}
		h.BucketLow, h.BucketHigh = append(h.BucketLow, low), append(h.BucketHigh, high)
	}
	return h
}

// le is inclusive, npllmd's buckets are [low, high): for every exposed le,
// the cumulative count must be exactly the number of integer-ns samples
// x with x/1e9 ≤ le. Checked with samples at both edges of every bucket.
func TestBucketLEBoundsEverySample(t *testing.T) {
	var samples []uint64
	for i := 0; i < 40; i++ {
		low, high := uint64(1)<<i, uint64(1)<<(i+1)
		if i == 0 {
			low = 0
		}
		samples = append(samples, low, high-1, (low+high)/2)
	}
	counts := make([]uint64, 40)
	for _, x := range samples {
		b := 0
		if x > 1 {
			b = 63 - leadingZeros(x)
		}
		counts[b]++
	}
	buckets, total, ok := cumulative(log2Histogram(counts))
	if !ok {
		t.Fatal("a log2 reply was refused")
	}
	if total != uint64(len(samples)) {
		t.Fatalf("count %d, want %d", total, len(samples))
	}
	if len(buckets) != lastBucket-firstBucket+1 {
		t.Fatalf("%d buckets, want a fixed %d", len(buckets), lastBucket-firstBucket+1)
	}
	for le, got := range buckets {
		var want uint64
		for _, x := range samples {
			if float64(x)/1e9 <= le {
				want++
			}
		}
		if got != want {
			t.Errorf("le=%g: cumulative %d, but %d samples are ≤ le", le, got, want)
		}
	}
	// le = high would be wrong: a sample equal to high is ≤ it but
	// counted in the next bucket. Show the test would catch that.
	wrong := float64(uint64(1)<<10) / 1e9
	var under uint64
	for _, x := range samples {
		if float64(x)/1e9 <= wrong {
			under++
		}
	}
	if under == buckets[bucketLE(1<<10)] {
		t.Error("the samples do not distinguish le=high from le=high-1")
	}
}

func leadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<i) == 0; i-- {
		n++
	}
	return n
}

func TestHistogramWithOtherBoundsRefused(t *testing.T) {
	h := log2Histogram([]uint64{1, 2, 3})
	h.BucketHigh[1] = 5
	if _, _, ok := cumulative(h); ok {
		t.Fatal("buckets that are not log2 were accepted")
	}
	h = log2Histogram([]uint64{1, 2})
	h.Counts = append(h.Counts, 7)
	if _, _, ok := cumulative(h); ok {
		t.Fatal("counts longer than the bounds were accepted")
	}
}

func TestMonotonicAcrossRestarts(t *testing.T) {
	m := newMonotonic()
	m.begin("boot1", 100)
	if v := m.sinceStart("a", 5); v != 5 {
		t.Fatalf("first value %v", v)
	}
	m.sinceBoot("e", 40)
	m.begin("boot1", 200) // npllmd restarted; 1 alert since, events pruned to 30
	if v := m.sinceStart("a", 1); v != 6 {
		t.Errorf("since-start counter after a restart: %v, want 6", v)
	}
	if v := m.sinceBoot("e", 30); v != 40 {
		t.Errorf("since-boot counter that came back lower: %v, want 40", v)
	}
	if v := m.sinceBoot("e", 33); v != 43 {
		t.Errorf("then +3: %v, want 43", v)
	}
	m.begin("boot1", 200)
	if v := m.sinceStart("a", 2); v != 7 {
		t.Errorf("same instance +1: %v, want 7", v)
	}
	m.begin("boot2", 300)
	if v := m.sinceStart("a", 1); v != 1 {
		t.Errorf("new boot: %v, want 1", v)
	}
}

// fakeSource stands in for npllmd here only; the real one is in
// exporter_test.go.
type fakeSource struct {
	st  *api.Status
	cnt api.Counters
	det map[string]api.SensorDetails
	err error
}

func (f *fakeSource) Status(context.Context) (*api.Status, error) { return f.st, f.err }
func (f *fakeSource) GetCounters(context.Context) (api.Counters, error) {
	return f.cnt, f.err
}
func (f *fakeSource) GetSensorDetails(context.Context) (map[string]api.SensorDetails, error) {
	return f.det, f.err
}
func (f *fakeSource) GetHistogram(context.Context, string, string) (api.Histogram, error) {
	return log2Histogram([]uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4}), f.err
}
func (f *fakeSource) Close() error { return nil }

func fullStatus() *api.Status {
	sensors := []api.SensorStatus{}
	for _, n := range append(fullSensorNames, "tcp", "event-pipeline") {
		sensors = append(sensors, api.SensorStatus{Name: n, Variant: "tp_btf", State: "running"})
	}
	sensors = append(sensors, api.SensorStatus{Name: "Evil Name{}", Variant: "x", State: "running"})
	return &api.Status{Version: "1", Health: "ok", MemoryTotal: 1 << 30, Sensors: sensors,
		ActiveAlerts: []api.Alert{{Kind: "oom.kill", Severity: "critical"}, {Kind: "made.up", Severity: "weird"}}}
}

var fullSensorNames = []string{"system", "pressure", "disks", "processes", "process", "oom", "signal", "runq_latency", "block_io_latency", "syscalls", "units"}

// fullDetails has counters for every sensor of fullStatus, and for one the
// Sensors property does not list (which must not be exported).
func fullDetails() map[string]api.SensorDetails {
	det := map[string]api.SensorDetails{}
	for _, n := range fullSensorNames {
		det[n] = api.SensorDetails{Counters: map[string]uint64{"dropped_kernel": 1, "decode_errors": 0}}
	}
	det["tcp"] = api.SensorDetails{Counters: map[string]uint64{"retransmits": 3, "resets_sent": 1, "resets_received": 2}}
	det["event-pipeline"] = api.SensorDetails{Counters: map[string]uint64{"dropped_queue": 0, "dropped_subscribers": 0}}
	det["Evil Name{}"] = api.SensorDetails{Counters: map[string]uint64{"dropped_kernel": 7}}
	det["unlisted"] = api.SensorDetails{Counters: map[string]uint64{"dropped_kernel": 7}}
	return det
}

// With every sensor and histogram on, the exposition stays under the
// budget of 300 series, and no label value comes from free-form text.
func TestSeriesBudget(t *testing.T) {
	cnt := api.Counters{BootID: "b", Events: map[string]uint64{}, AlertsRaised: map[string]uint64{}, PressureStalledUS: map[string]uint64{}}
	for _, k := range append(api.EventKinds, "other") {
		cnt.Events[k] = 1
	}
	for _, k := range append(api.AlertKinds, "other") {
		cnt.AlertsRaised[k] = 1
	}
	for _, r := range []string{"cpu", "memory", "io"} {
		cnt.PressureStalledUS[r+".some"], cnt.PressureStalledUS[r+".full"] = 1, 1
	}
	src := &fakeSource{st: fullStatus(), cnt: cnt, det: fullDetails()}
	c := New(func(context.Context) (Source, error) { return src, nil }, 1e9, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather()
	series := 0
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		for _, m := range mf.GetMetric() {
			series++
			if h := m.GetHistogram(); h != nil {
				series += len(h.GetBucket()) + 2 // buckets + _sum + _count (+Inf is one of the buckets)
			}
			for _, l := range m.GetLabel() {
				if l.GetValue() == "Evil Name{}" || l.GetValue() == "unlisted" || l.GetValue() == "made.up" || l.GetValue() == "weird" {
					t.Errorf("free-form label value %q exported", l.GetValue())
				}
			}
		}
	}
	sort.Strings(names)
	t.Logf("%d metrics, %d series: %v", n, series, names)
	for _, want := range []string{"npllm_sensor_dropped_total", "npllm_sensor_decode_errors_total", "npllm_tcp_retransmits_total", "npllm_tcp_resets_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing: GetSensorDetails' counters not exported", want)
		}
	}
	if series >= 300 {
		t.Errorf("%d series, budget 300", series)
	}
	if series < 150 {
		t.Errorf("only %d series: something is missing", series)
	}
}

func TestDownThenUp(t *testing.T) {
	src := &fakeSource{st: fullStatus(), cnt: api.Counters{BootID: "b"}}
	fail := true
	c := New(func(context.Context) (Source, error) {
		if fail {
			return nil, errors.New("no npllmd")
		}
		return src, nil
	}, 1e9, nil)
	up := func() float64 {
		ch := make(chan prometheus.Metric, 1000)
		c.Collect(ch)
		close(ch)
		for m := range ch {
			if m.Desc() == descUp {
				var d dto.Metric
				m.Write(&d)
				return d.GetGauge().GetValue()
			}
		}
		return math.NaN()
	}
	if v := up(); v != 0 {
		t.Fatalf("npllm_up %v without npllmd", v)
	}
	fail = false
	if v := up(); v != 1 {
		t.Fatalf("npllm_up %v after npllmd appeared", v)
	}
}
