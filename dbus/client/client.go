// Package client is the typed client of org.npllm.Assistant1 for npllmctl,
// npllm-agent and other clients. Method names are spelled only here; replies
// are decoded into dbus/api's records with every type checked.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// ErrNotRunning means nobody owns org.npllm.Assistant and it could not be
// activated.
var ErrNotRunning = errors.New("npllmd is not running on the system bus")

// CallOptions are how a write is sent.
type CallOptions struct {
	// Interactive lets polkit ask the user (through their desktop's or
	// terminal's agent) instead of refusing.
	Interactive bool
	// Automated marks a write a model or a script chose (MCP bridge, ask
	// loop): npllmd authorizes it with the agent-* polkit actions, which
	// never keep an approval for the next call.
	Automated bool
}

// options is the method's options argument for these call options.
func (o CallOptions) options() map[string]dbus.Variant {
	if o.Automated {
		return api.Options(map[string]any{"automated": true})
	}
	return api.Options(nil)
}

// API is what npllm-agent and the MCP bridge use of npllmd, so their logic
// can be tested against an in-process fake; *Client implements it.
type API interface {
	Status(ctx context.Context) (*api.Status, error)
	ListProcesses(ctx context.Context, q ProcessQuery) ([]api.Process, error)
	GetProcess(ctx context.Context, pid uint32) (api.Process, error)
	GetEvents(ctx context.Context, afterSeq uint64, max uint32, f EventFilter) (uint64, []api.Event, error)
	NewestSeq(ctx context.Context) (uint64, error)
	GetAlert(ctx context.Context, id string) (api.Alert, error)
	GetBaseline(ctx context.Context, program string) (api.Baseline, error)
	GetUnit(ctx context.Context, unit string) (api.Unit, error)
	SignalProcess(ctx context.Context, pid uint32, startTime uint64, signal string, opts CallOptions) error
	SetProcessPriority(ctx context.Context, pid uint32, startTime uint64, nice int32, opts CallOptions) error
	SetProcessIOPriority(ctx context.Context, pid uint32, startTime uint64, class string, level int32, opts CallOptions) error
	ManageUnit(ctx context.Context, unit, verb string, opts CallOptions) (job string, err error)
	Watch(ctx context.Context) (<-chan Notice, error)
}

var _ API = (*Client)(nil)

// Client is a connection to npllmd.
type Client struct {
	conn *dbus.Conn
	obj  dbus.BusObject

	watchDropped atomic.Uint64
	watchIgnored atomic.Uint64
	log          *slog.Logger // Watch's; nil: slog.Default()
}

// SetLog sets where Watch reports signals it ignored and notices it
// dropped; call it before Watch.
func (c *Client) SetLog(log *slog.Logger) { c.log = log }

// Connect opens a connection to the system bus (DBUS_SYSTEM_BUS_ADDRESS when
// set) and checks that npllmd answers.
func Connect(ctx context.Context) (*Client, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot connect to the system bus: %v", ErrNotRunning, err)
	}
	c := NewClient(conn)
	if err := c.Ping(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient wraps an existing connection.
func NewClient(conn *dbus.Conn) *Client {
	return &Client{conn: conn, obj: conn.Object(api.BusName, api.ObjectPath)}
}

// Conn is the underlying connection.
func (c *Client) Conn() *dbus.Conn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Ping checks that npllmd answers (activating it if the bus can).
func (c *Client) Ping(ctx context.Context) error {
	err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Peer.Ping", 0).Err
	if err == nil {
		return nil
	}
	switch api.ErrorName(err) {
	case api.ErrServiceUnknown, api.ErrNameHasNoOwner, api.ErrSpawnServiceNotFound:
		return fmt.Errorf("%w: %s", ErrNotRunning, api.ErrorMessage(err))
	}
	return fmt.Errorf("%w: %v", ErrNotRunning, err)
}

// Status reads every property in one GetAll.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var all map[string]dbus.Variant
	if err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, api.Interface).Store(&all); err != nil {
		return nil, err
	}
	return api.DecodeStatus(all)
}

func (c *Client) read(ctx context.Context, method string, out any, args ...any) error {
	return c.obj.CallWithContext(ctx, api.Interface+"."+method, 0, args...).Store(out)
}

// ProcessQuery selects processes for ListProcesses; zero values are the
// daemon's defaults (sort by cpu, 50 rows, every user).
type ProcessQuery struct {
	SortBy string // "cpu", "memory", "io"
	Limit  uint32
	UID    *uint32
}

// ListProcesses calls GetProcesses.
func (c *Client) ListProcesses(ctx context.Context, q ProcessQuery) ([]api.Process, error) {
	opts := map[string]any{}
	if q.SortBy != "" {
		opts["sort_by"] = q.SortBy
	}
	if q.Limit != 0 {
		opts["limit"] = q.Limit
	}
	if q.UID != nil {
		opts["uid"] = *q.UID
	}
	var raw []map[string]dbus.Variant
	if err := c.read(ctx, "GetProcesses", &raw, api.Options(opts)); err != nil {
		return nil, err
	}
	out := make([]api.Process, 0, len(raw))
	for _, m := range raw {
		p, err := api.DecodeProcess(m)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// GetProcess calls GetProcess.
func (c *Client) GetProcess(ctx context.Context, pid uint32) (api.Process, error) {
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetProcess", &raw, pid); err != nil {
		return api.Process{}, err
	}
	return api.DecodeProcess(raw)
}

// EventFilter selects events; zero values select everything.
type EventFilter struct {
	Kinds   []string
	PID     *uint32
	UID     *uint32
	SinceNS uint64
}

func (f EventFilter) options() map[string]dbus.Variant {
	opts := map[string]any{}
	if len(f.Kinds) > 0 {
		opts["kind"] = f.Kinds
	}
	if f.PID != nil {
		opts["pid"] = *f.PID
	}
	if f.UID != nil {
		opts["uid"] = *f.UID
	}
	if f.SinceNS != 0 {
		opts["since_ns"] = f.SinceNS
	}
	return api.Options(opts)
}

// GetEventsWire calls GetEvents and returns the events as sent (a{sv}),
// for tests of the wire format.
func (c *Client) GetEventsWire(ctx context.Context, afterSeq uint64, max uint32, f EventFilter) (uint64, []map[string]dbus.Variant, error) {
	call := c.obj.CallWithContext(ctx, api.Interface+".GetEvents", 0, afterSeq, max, f.options())
	var last uint64
	var evs []map[string]dbus.Variant
	if err := call.Store(&last, &evs); err != nil {
		return 0, nil, err
	}
	return last, evs, nil
}

// GetEvents returns up to max events after afterSeq (0: the daemon's
// default page) and the seq to continue from.
func (c *Client) GetEvents(ctx context.Context, afterSeq uint64, max uint32, f EventFilter) (uint64, []api.Event, error) {
	last, raw, err := c.GetEventsWire(ctx, afterSeq, max, f)
	if err != nil {
		return 0, nil, err
	}
	evs := make([]api.Event, 0, len(raw))
	for _, m := range raw {
		ev, err := api.DecodeEvent(m)
		if err != nil {
			return 0, nil, err
		}
		evs = append(evs, ev)
	}
	return last, evs, nil
}

// NewestSeq is the journal's newest seq (asking past the end returns it).
func (c *Client) NewestSeq(ctx context.Context) (uint64, error) {
	last, _, err := c.GetEventsWire(ctx, math.MaxUint64-1, 1, EventFilter{})
	return last, err
}

// GetHistogram calls GetHistogram; series "" is all of them.
func (c *Client) GetHistogram(ctx context.Context, name, series string) (api.Histogram, error) {
	opts := map[string]any{}
	if series != "" {
		opts["series"] = series
	}
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetHistogram", &raw, name, api.Options(opts)); err != nil {
		return api.Histogram{}, err
	}
	return api.DecodeHistogram(raw)
}

// SyscallQuery selects rows for GetSyscallStats; zero values are defaults.
type SyscallQuery struct {
	PID     uint32
	Syscall string
	SortBy  string // "count", "errors", "time"
	Limit   uint32
}

// GetSyscallStats calls GetSyscallStats.
func (c *Client) GetSyscallStats(ctx context.Context, q SyscallQuery) ([]api.SyscallStat, error) {
	opts := map[string]any{}
	if q.PID != 0 {
		opts["pid"] = q.PID
	}
	if q.Syscall != "" {
		opts["syscall"] = q.Syscall
	}
	if q.SortBy != "" {
		opts["sort_by"] = q.SortBy
	}
	if q.Limit != 0 {
		opts["limit"] = q.Limit
	}
	var raw []map[string]dbus.Variant
	if err := c.read(ctx, "GetSyscallStats", &raw, api.Options(opts)); err != nil {
		return nil, err
	}
	out := make([]api.SyscallStat, 0, len(raw))
	for _, m := range raw {
		s, err := api.DecodeSyscallStat(m)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// GetAlert calls GetAlert.
func (c *Client) GetAlert(ctx context.Context, id string) (api.Alert, error) {
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetAlert", &raw, id); err != nil {
		return api.Alert{}, err
	}
	return api.DecodeAlert(raw)
}

// GetCounters calls GetCounters (what npllm-exporter needs besides GetAll).
func (c *Client) GetCounters(ctx context.Context) (api.Counters, error) {
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetCounters", &raw); err != nil {
		return api.Counters{}, err
	}
	return api.DecodeCounters(raw)
}

// GetSensorDetails calls GetSensorDetails: each sensor's description and
// counters, by sensor name.
func (c *Client) GetSensorDetails(ctx context.Context) (map[string]api.SensorDetails, error) {
	var raw map[string][]any
	if err := c.read(ctx, "GetSensorDetails", &raw); err != nil {
		return nil, err
	}
	return api.DecodeSensorDetails(raw)
}

// GetBaseline calls GetBaseline.
func (c *Client) GetBaseline(ctx context.Context, program string) (api.Baseline, error) {
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetBaseline", &raw, program); err != nil {
		return api.Baseline{}, err
	}
	return api.DecodeBaseline(raw)
}

// GetConfiguration returns the alert thresholds by name (numbers, and
// durations as strings).
func (c *Client) GetConfiguration(ctx context.Context) (map[string]any, error) {
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetConfiguration", &raw); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		out[k] = v.Value()
	}
	return out, nil
}

// GetUnit calls GetUnit.
func (c *Client) GetUnit(ctx context.Context, unit string) (api.Unit, error) {
	var raw map[string]dbus.Variant
	if err := c.read(ctx, "GetUnit", &raw, unit); err != nil {
		return api.Unit{}, err
	}
	return api.DecodeUnit(raw)
}

// SignalProcess sends signal ("TERM", "KILL", …) to the process pid
// started at startTime (a reused pid is refused, not hit).
func (c *Client) SignalProcess(ctx context.Context, pid uint32, startTime uint64, signal string, opts CallOptions) error {
	return c.write(ctx, opts, "SignalProcess", pid, startTime, signal, opts.options()).Err
}

// SetProcessPriority sets the nice value of every thread of the process.
func (c *Client) SetProcessPriority(ctx context.Context, pid uint32, startTime uint64, nice int32, opts CallOptions) error {
	return c.write(ctx, opts, "SetProcessPriority", pid, startTime, nice, opts.options()).Err
}

// SetProcessIOPriority sets the I/O class and level of every thread.
func (c *Client) SetProcessIOPriority(ctx context.Context, pid uint32, startTime uint64, class string, level int32, opts CallOptions) error {
	return c.write(ctx, opts, "SetProcessIOPriority", pid, startTime, class, level, opts.options()).Err
}

// ManageUnit starts, stops, restarts or reloads a unit; it returns the
// systemd job's path.
func (c *Client) ManageUnit(ctx context.Context, unit, verb string, opts CallOptions) (string, error) {
	call := c.write(ctx, opts, "ManageUnit", unit, verb, opts.options())
	if call.Err != nil {
		return "", call.Err
	}
	var job string
	if len(call.Body) == 1 {
		job = fmt.Sprint(call.Body[0])
	}
	return job, nil
}

// Configure changes alert thresholds until npllmd restarts.
func (c *Client) Configure(ctx context.Context, settings map[string]any, opts CallOptions) error {
	return c.write(ctx, opts, "Configure", api.Options(settings), opts.options()).Err
}

// ForgetBaseline makes npllmd learn a program's normal again.
func (c *Client) ForgetBaseline(ctx context.Context, program string, opts CallOptions) error {
	return c.write(ctx, opts, "ForgetBaseline", program, opts.options()).Err
}

// SetSensorEnabled switches a sensor on or off until npllmd restarts.
func (c *Client) SetSensorEnabled(ctx context.Context, name string, on bool, opts CallOptions) error {
	return c.write(ctx, opts, "SetSensorEnabled", name, on, opts.options()).Err
}

func (c *Client) write(ctx context.Context, opts CallOptions, method string, args ...any) *dbus.Call {
	if opts.Interactive {
		return c.CallInteractive(ctx, method, args...)
	}
	return c.obj.CallWithContext(ctx, api.Interface+"."+method, 0, args...)
}

// CallInteractive calls a method with the ALLOW_INTERACTIVE_AUTHORIZATION
// header flag, so polkit may ask the user. godbus's Object.Call drops that
// flag, so the message is built here.
func (c *Client) CallInteractive(ctx context.Context, method string, args ...any) *dbus.Call {
	msg := &dbus.Message{
		Type:  dbus.TypeMethodCall,
		Flags: dbus.FlagAllowInteractiveAuthorization,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(api.ObjectPath),
			dbus.FieldInterface:   dbus.MakeVariant(api.Interface),
			dbus.FieldMember:      dbus.MakeVariant(method),
			dbus.FieldDestination: dbus.MakeVariant(api.BusName),
		},
		Body: args,
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return <-c.conn.SendWithContext(ctx, msg, make(chan *dbus.Call, 1)).Done
}
