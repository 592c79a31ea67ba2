package dbus

import (
	"errors"
	"reflect"
	"slices"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/sensors"
)

// api holds the methods of org.npllm.Assistant1. Every method takes the
// message first (for sender and flags), calls begin, and defers end.
type api struct{ s *Server }

// ExportedMethods lists the D-Bus methods api implements (the exported Go
// methods whose last result is *godbus.Error, as godbus exports them).
func ExportedMethods() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(&api{})
	errType := reflect.TypeOf(&godbus.Error{})
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		if n := m.Type.NumOut(); n > 0 && m.Type.Out(n-1) == errType {
			out[m.Name] = true
		}
	}
	return out
}

const defaultProcessLimit = 50

func (a *api) GetProcesses(msg godbus.Message, options map[string]godbus.Variant) (procs []map[string]godbus.Variant, derr *godbus.Error) {
	c, derr := a.s.begin(msg, "GetProcesses")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)

	opts := sensors.ListOptions{SortBy: "cpu", Limit: defaultProcessLimit}
	o := optionReader{method: "GetProcesses", opts: options}
	if v, ok := o.string("sort_by"); ok {
		if !slices.Contains(sensors.ValidSortKeys, v) {
			return nil, NewError(ErrInvalidArgument, "sort_by must be one of %s, not %q", strings.Join(sensors.ValidSortKeys, ", "), v)
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
	procs = make([]map[string]godbus.Variant, 0, len(list))
	for i := range list {
		procs = append(procs, processToDBus(&list[i], callerUID))
	}
	return procs, nil
}

func (a *api) GetProcess(msg godbus.Message, pid uint32) (info map[string]godbus.Variant, derr *godbus.Error) {
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
		return nil, NewError(ErrNoSuchProcess, "no process with pid %d", pid)
	}
	if err != nil {
		return nil, ToDBus(err)
	}
	callerUID, err := c.callerUID()
	if err != nil {
		return nil, ToDBus(err)
	}
	info = processToDBus(&p, callerUID)
	if a.s.cfg.Baselines != nil {
		// The learned normal next to the current values.
		if bl, ok := a.s.cfg.Baselines.Get(p.UID, p.Comm); ok {
			info["baseline"] = godbus.MakeVariant(baselineToDBus(bl))
		}
	}
	return info, nil
}

func (a *api) processTable() (*sensors.ProcessTable, *godbus.Error) {
	if a.s.cfg.Sensors != nil {
		if t, ok := a.s.cfg.Sensors.Running("processes").(*sensors.ProcessTable); ok {
			return t, nil
		}
	}
	return nil, NewError(ErrNotSupported, "the processes sensor is not running; see npllmctl sensors")
}

// processToDBus converts a process for a caller. Only root and the owner see
// the command line: it can carry secrets (tokens passed as arguments).
func processToDBus(p *sensors.Process, callerUID uint32) map[string]godbus.Variant {
	m := map[string]godbus.Variant{
		"pid":            godbus.MakeVariant(p.PID),
		"ppid":           godbus.MakeVariant(p.PPID),
		"uid":            godbus.MakeVariant(p.UID),
		"user":           godbus.MakeVariant(p.User),
		"comm":           godbus.MakeVariant(p.Comm),
		"state":          godbus.MakeVariant(p.State),
		"start_time":     godbus.MakeVariant(p.StartTime),
		"nice":           godbus.MakeVariant(p.Nice),
		"threads":        godbus.MakeVariant(p.Threads),
		"rss_bytes":      godbus.MakeVariant(p.RSSBytes),
		"cpu_percent":    godbus.MakeVariant(p.CPUPercent),
		"io_read_bytes":  godbus.MakeVariant(p.IOReadBytes),
		"io_write_bytes": godbus.MakeVariant(p.IOWriteBytes),
		"kernel_thread":  godbus.MakeVariant(p.KernelThread),
	}
	if callerUID == 0 || callerUID == p.UID {
		m["cmdline"] = godbus.MakeVariant(p.Cmdline)
	}
	if p.Cgroup != "" {
		m["cgroup"] = godbus.MakeVariant(p.Cgroup)
	}
	if p.Unit != "" {
		m["unit"] = godbus.MakeVariant(p.Unit)
	}
	return m
}

// optionReader reads known keys of an a{sv} options dictionary. Unknown keys
// are ignored (the API may grow); a known key of the wrong type is an error,
// not a silent default.
type optionReader struct {
	method string
	opts   map[string]godbus.Variant
	err    *godbus.Error
}

func (o *optionReader) fail(key, want string, v godbus.Variant) {
	if o.err == nil {
		o.err = NewError(ErrInvalidArgument, "%s: option %q must be of type %s, not %s", o.method, key, want, v.Signature())
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
