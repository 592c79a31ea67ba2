package dbus

import (
	"fmt"
	"slices"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/sensors"
)

// Read-only methods over sensors that keep their data in kernel maps and
// are read on demand: histograms and syscall statistics.

// Histograms lists the names GetHistogram accepts.
var Histograms = []string{"runq_latency", "block_io_latency"}

func (a *api) GetHistogram(msg godbus.Message, name string, options map[string]godbus.Variant) (out map[string]godbus.Variant, derr *godbus.Error) {
	c, derr := a.s.begin(msg, "GetHistogram")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if !slices.Contains(Histograms, name) {
		return nil, NewError(ErrInvalidArgument, "no histogram named %q (have %s)", name, strings.Join(Histograms, ", "))
	}
	o := optionReader{method: "GetHistogram", opts: options}
	series, ok := o.string("series")
	if !ok {
		series = "all"
	}
	if o.err != nil {
		return nil, o.err
	}
	run, derr := a.sensor(name)
	if derr != nil {
		return nil, derr
	}
	reader, ok := run.(sensors.HistogramReader)
	if !ok {
		return nil, NewError(ErrFailed, "sensor %s keeps no histogram", name)
	}
	h, err := reader.ReadHistogram(series)
	if err != nil {
		return nil, ToDBus(err)
	}
	low, high := make([]uint64, len(h.Counts)), make([]uint64, len(h.Counts))
	for i := range h.Counts {
		low[i], high[i] = sensors.BucketBounds(i)
	}
	return map[string]godbus.Variant{
		"name": godbus.MakeVariant(h.Name), "unit": godbus.MakeVariant(h.Unit),
		"series": godbus.MakeVariant(h.Series), "available_series": godbus.MakeVariant(append([]string{"all"}, reader.Series()...)),
		"bucket_low": godbus.MakeVariant(low), "bucket_high": godbus.MakeVariant(high), "counts": godbus.MakeVariant(h.Counts),
		"total": godbus.MakeVariant(h.Total()), "missed": godbus.MakeVariant(h.Missed),
		"p50": godbus.MakeVariant(h.Quantile(0.5)), "p90": godbus.MakeVariant(h.Quantile(0.9)), "p99": godbus.MakeVariant(h.Quantile(0.99)),
	}, nil
}

const (
	defaultSyscallRows = 20
	maxSyscallRows     = 1000
)

func (a *api) GetSyscallStats(msg godbus.Message, options map[string]godbus.Variant) (rows []map[string]godbus.Variant, derr *godbus.Error) {
	c, derr := a.s.begin(msg, "GetSyscallStats")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	q := sensors.SyscallQuery{SortBy: "count", Limit: defaultSyscallRows}
	o := optionReader{method: "GetSyscallStats", opts: options}
	if v, ok := o.uint32("pid"); ok {
		q.PID = v
	}
	if v, ok := o.string("syscall"); ok {
		q.Syscall = v
	}
	if v, ok := o.string("sort_by"); ok {
		if !slices.Contains(sensors.SyscallSortKeys, v) {
			return nil, NewError(ErrInvalidArgument, "sort_by must be one of %s, not %q", strings.Join(sensors.SyscallSortKeys, ", "), v)
		}
		q.SortBy = v
	}
	if v, ok := o.uint32("limit"); ok && v > 0 {
		q.Limit = int(min(v, maxSyscallRows))
	}
	if o.err != nil {
		return nil, o.err
	}
	run, derr := a.sensor("syscalls")
	if derr != nil {
		return nil, derr
	}
	stats, err := run.(sensors.SyscallStatsReader).SyscallStats(q)
	if err != nil {
		return nil, ToDBus(err)
	}
	rows = make([]map[string]godbus.Variant, 0, len(stats))
	for _, st := range stats {
		errnos := st.Errnos
		if errnos == nil {
			errnos = map[string]uint64{}
		}
		var avg uint64
		if st.Count > 0 {
			avg = st.TotalNS / st.Count
		}
		rows = append(rows, map[string]godbus.Variant{
			"pid": godbus.MakeVariant(st.PID), "uid": godbus.MakeVariant(st.UID), "comm": godbus.MakeVariant(st.Comm),
			"syscall": godbus.MakeVariant(st.Syscall), "nr": godbus.MakeVariant(st.Nr),
			"count": godbus.MakeVariant(st.Count), "errors": godbus.MakeVariant(st.Errors),
			"total_ns": godbus.MakeVariant(st.TotalNS), "avg_ns": godbus.MakeVariant(avg),
			"errnos": godbus.MakeVariant(errnos),
		})
	}
	return rows, nil
}

// sensor returns a running sensor or the error that says why it is not.
func (a *api) sensor(name string) (sensors.Running, *godbus.Error) {
	if a.s.cfg.Sensors == nil {
		return nil, NewError(ErrNotSupported, "this daemon runs no sensors")
	}
	run, err := a.s.cfg.Sensors.Get(name)
	if err != nil {
		return nil, ToDBus(fmt.Errorf("%w; switch it on with npllmctl sensors enable %s (root)", err, name))
	}
	return run, nil
}
