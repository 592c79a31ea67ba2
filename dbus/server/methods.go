package server

import (
	"errors"
	"reflect"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// api holds the methods of org.npllm.Assistant1. Every method takes the
// message first (for sender and flags), calls begin, and defers end.
type assistant struct{ s *Server }

// ExportedMethods lists the D-Bus methods api implements (the exported Go
// methods whose last result is *dbus.Error, as godbus exports them).
func ExportedMethods() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(&assistant{})
	errType := reflect.TypeOf(&dbus.Error{})
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		if n := m.Type.NumOut(); n > 0 && m.Type.Out(n-1) == errType {
			out[m.Name] = true
		}
	}
	return out
}

const defaultProcessLimit = 50

func (a *assistant) GetProcesses(msg dbus.Message, options map[string]dbus.Variant) (procs []map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetProcesses")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)

	opts := sensors.ListOptions{SortBy: "cpu", Limit: defaultProcessLimit}
	o := optionReader{method: "GetProcesses", opts: options}
	if v, ok := o.string("sort_by"); ok {
		if !slices.Contains(sensors.ValidSortKeys, v) {
			return nil, api.NewError(api.ErrInvalidArgument, "sort_by must be one of %s, not %q", strings.Join(sensors.ValidSortKeys, ", "), v)
		}
		opts.SortBy = v
	}
	if v, ok := o.uint32("limit"); ok {
		opts.Limit = int(v)
	}
	if v, ok := o.uint32("uid"); ok {
		opts.UID = &v
	}
	if o.err != nil {
		return nil, o.err
	}
	table, derr := a.processTable()
	if derr != nil {
		return nil, derr
	}
	list, err := table.List(opts)
	if err != nil {
		return nil, ToDBus(err)
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	procs = make([]map[string]dbus.Variant, 0, len(list))
	for i := range list {
		procs = append(procs, processToDBus(&list[i], callerUID, nil))
	}
	return procs, nil
}

func (a *assistant) GetProcess(msg dbus.Message, pid uint32) (info map[string]dbus.Variant, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetProcess")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)

	table, derr := a.processTable()
	if derr != nil {
		return nil, derr
	}
	p, err := table.Get(pid)
	if errors.Is(err, sensors.ErrNoSuchProcess) {
		return nil, api.NewError(api.ErrNoSuchProcess, "no process with pid %d", pid)
	}
	if err != nil {
		return nil, ToDBus(err)
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	var baseline *api.Baseline
	if a.s.cfg.Baselines != nil && (callerUID == 0 || callerUID == p.UID) {
		// The learned normal next to the current values, for the same
		// callers GetBaseline answers: the owner and root.
		if bl, ok := a.s.cfg.Baselines.Get(p.UID, p.Comm); ok {
			b := baselineOf(bl)
			baseline = &b
		}
	}
	return processToDBus(&p, callerUID, baseline), nil
}

func (a *assistant) processTable() (*sensors.ProcessTable, *dbus.Error) {
	if a.s.cfg.Sensors != nil {
		if t, ok := a.s.cfg.Sensors.Running("processes").(*sensors.ProcessTable); ok {
			return t, nil
		}
	}
	return nil, api.NewError(api.ErrNotSupported, "the processes sensor is not running; see npllmctl sensors")
}

// processToDBus converts a process for a caller. Only root and the owner see
// the command line (it can carry secrets: tokens passed as arguments), the
// I/O figures and the cgroup.
func processToDBus(p *sensors.Process, callerUID uint32, baseline *api.Baseline) map[string]dbus.Variant {
	rec := api.Process{
		PID: p.PID, PPID: p.PPID, UID: p.UID, User: p.User, Comm: p.Comm, State: p.State,
		StartTime: p.StartTime, Nice: p.Nice, Threads: p.Threads, RSSBytes: p.RSSBytes,
		CPUPercent: p.CPUPercent, IOReadBytes: p.IOReadBytes, IOWriteBytes: p.IOWriteBytes,
		KernelThread: p.KernelThread, Cgroup: p.Cgroup, Unit: p.Unit, Baseline: baseline,
	}
	if callerUID == 0 || callerUID == p.UID {
		rec.Cmdline = &p.Cmdline
	} else {
		// As the kernel, which shows /proc/PID/io only to ptrace-capable
		// readers; the cgroup follows the alerts' rule (root and owner).
		rec.IOWithheld, rec.Cgroup = true, ""
		m := rec.Encode()
		delete(m, "io_read_bytes")
		delete(m, "io_write_bytes")
		return m
	}
	return rec.Encode()
}

// optionReader reads known keys of an a{sv} options dictionary. Unknown keys
// are ignored (the API may grow); a known key of the wrong type is an error,
// not a silent default.
type optionReader struct {
	method string
	opts   map[string]dbus.Variant
	err    *dbus.Error
}

func (o *optionReader) fail(key, want string, v dbus.Variant) {
	if o.err == nil {
		o.err = api.NewError(api.ErrInvalidArgument, "%s: option %q must be of type %s, not %s", o.method, key, want, v.Signature())
	}
}

func (o *optionReader) string(key string) (string, bool) {
	v, ok := o.opts[key]
	if !ok {
		return "", false
	}
	s, ok := v.Value().(string)
	if !ok {
		o.fail(key, "s", v)
	}
	return s, ok
}

func (o *optionReader) uint32(key string) (uint32, bool) {
	v, ok := o.opts[key]
	if !ok {
		return 0, false
	}
	switch n := v.Value().(type) {
	case uint32:
		return n, true
	case int32:
		if n >= 0 {
			return uint32(n), true
		}
	case uint64:
		if n <= 1<<32-1 {
			return uint32(n), true
		}
	case int64:
		if n >= 0 && n <= 1<<32-1 {
			return uint32(n), true
		}
	}
	o.fail(key, "u", v)
	return 0, false
}

func (o *optionReader) bool(key string) (bool, bool) {
	v, ok := o.opts[key]
	if !ok {
		return false, false
	}
	b, ok := v.Value().(bool)
	if !ok {
		o.fail(key, "b", v)
	}
	return b, ok
}

// strings reads a key given as one string (s) or a list (as).
func (o *optionReader) strings(key string) ([]string, bool) {
	v, ok := o.opts[key]
	if !ok {
		return nil, false
	}
	switch x := v.Value().(type) {
	case string:
		return []string{x}, true
	case []string:
		return x, true
	}
	o.fail(key, "s or as", v)
	return nil, false
}

func (o *optionReader) uint64(key string) (uint64, bool) {
	v, ok := o.opts[key]
	if !ok {
		return 0, false
	}
	n, ok := v.Value().(uint64)
	if !ok {
		o.fail(key, "t", v)
	}
	return n, ok
}
