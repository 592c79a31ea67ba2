package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// Read-only methods over sensors that keep their data in kernel maps and
// are read on demand: histograms and syscall statistics.

func (a *assistant) GetHistogram(msg dbus.Message, name string, options map[string]dbus.Variant) (out map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetHistogram")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	if !slices.Contains(api.Histograms, name) {
		return nil, api.NewError(api.ErrInvalidArgument, "no histogram named %q (have %s)", name, strings.Join(api.Histograms, ", "))
	}
	o := optionReader{method: "GetHistogram", opts: options}
	series, ok := o.string("series")
	if !ok {
		series = "all"
	}
	if o.err != nil {
		return nil, o.err
	}
	run, release, derr := a.sensor(name)
	if derr != nil {
		return nil, derr
	}
	defer release()
	reader, ok := run.(sensors.HistogramReader)
	if !ok {
		return nil, api.NewError(api.ErrFailed, "sensor %s keeps no histogram", name)
	}
	h, err := reader.ReadHistogram(series)
	if err != nil {
		return nil, ToDBus(err)
	}
	low, high := make([]uint64, len(h.Counts)), make([]uint64, len(h.Counts))
	for i := range h.Counts {
		low[i], high[i] = sensors.BucketBounds(i)
	}
	rec := api.Histogram{
		Name: h.Name, Unit: h.Unit, Series: h.Series, AvailableSeries: append([]string{"all"}, reader.Series()...),
		BucketLow: low, BucketHigh: high, Counts: h.Counts, Total: h.Total(), Missed: h.Missed,
		P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99),
	}
	if rec.Counts == nil {
		rec.Counts = []uint64{}
	}
	return rec.Encode(), nil
}

const (
	defaultSyscallRows = 20
	maxSyscallRows     = 1000
)

func (a *assistant) GetSyscallStats(msg dbus.Message, options map[string]dbus.Variant) (rows []map[string]dbus.Variant, derr *dbus.Error) {
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
			return nil, api.NewError(api.ErrInvalidArgument, "sort_by must be one of %s, not %q", strings.Join(sensors.SyscallSortKeys, ", "), v)
		}
		q.SortBy = v
	}
	if v, ok := o.uint32("limit"); ok && v > 0 {
		q.Limit = int(min(v, maxSyscallRows))
	}
	if o.err != nil {
		return nil, o.err
	}
	run, release, derr := a.sensor("syscalls")
	if derr != nil {
		return nil, derr
	}
	defer release()
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	limit := q.Limit
	if callerUID != 0 {
		q.Limit = maxSyscallRows // other users' rows are dropped below
	}
	stats, err := run.(sensors.SyscallStatsReader).SyscallStats(q)
	if err != nil {
		return nil, ToDBus(err)
	}
	rows = make([]map[string]dbus.Variant, 0, min(len(stats), limit))
	for _, st := range stats {
		// A process's syscalls are what strace shows, i.e. ptrace's: only
		// root and the owner see them.
		if callerUID != 0 && st.UID != callerUID {
			continue
		}
		if len(rows) == limit {
			break
		}
		errnos := st.Errnos
		if errnos == nil {
			errnos = map[string]uint64{}
		}
		var avg uint64
		if st.Count > 0 {
			avg = st.TotalNS / st.Count
		}
		rec := api.SyscallStat{PID: st.PID, UID: st.UID, Comm: st.Comm, Syscall: st.Syscall, Nr: st.Nr,
			Count: st.Count, Errors: st.Errors, TotalNS: st.TotalNS, AvgNS: avg, Errnos: errnos}
		rows = append(rows, rec.Encode())
	}
	return rows, nil
}

// sensor returns a running sensor or the error that says why it is not,
// and holds it from being switched off (SetSensorEnabled) until release:
// reading the maps of a sensor being closed failed with "bad file
// descriptor" (found by the method-table fuzzer).
func (a *assistant) sensor(name string) (sensors.Running, func(), *dbus.Error) {
	if a.s.cfg.Sensors == nil {
		return nil, nil, api.NewError(api.ErrNotSupported, "this daemon runs no sensors")
	}
	a.s.sensorUse.RLock()
	run, err := a.s.cfg.Sensors.Get(name)
	if err != nil {
		a.s.sensorUse.RUnlock()
		return nil, nil, ToDBus(fmt.Errorf("%w; switch it on with npllmctl sensors enable %s (root)", err, name))
	}
	return run, a.s.sensorUse.RUnlock, nil
}
