// Package client is the typed client of org.npllm.Assistant1 for npllmctl,
// npllm-agent and other clients. Method names are spelled only here.
package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
)

// ErrNotRunning means nobody owns org.npllm.Assistant and it could not be
// activated.
var ErrNotRunning = errors.New("npllmd is not running on the system bus")

// Client is the typed client of org.npllm.Assistant1 used by npllmctl and
// npllm-agent.
type Client struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

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

// Status is the daemon's property set.
type Status struct {
	Version         string
	Health          string
	Load            [3]float64
	CPUUsage        float64
	MemoryTotal     uint64
	MemoryAvailable uint64
	SwapTotal       uint64
	SwapFree        uint64
	Pressure        map[string][3]float64
	Sensors         []api.SensorStatus
	ActiveAlerts    []map[string]dbus.Variant
}

// Status reads every property in one GetAll.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var all map[string]dbus.Variant
	if err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, api.Interface).Store(&all); err != nil {
		return nil, err
	}
	return StatusFromProperties(all)
}

// StatusFromProperties decodes a GetAll result (or a PropertiesChanged
// payload merged into one).
func StatusFromProperties(all map[string]dbus.Variant) (*Status, error) {
	s := &Status{}
	var load struct{ A, B, C float64 }
	var pressure map[string]struct{ A, B, C float64 }
	fields := []struct {
		name string
		dst  any
	}{
		{"Version", &s.Version}, {"Health", &s.Health}, {"LoadAverage", &load},
		{"CPUUsage", &s.CPUUsage}, {"MemoryTotal", &s.MemoryTotal},
		{"MemoryAvailable", &s.MemoryAvailable}, {"SwapTotal", &s.SwapTotal},
		{"SwapFree", &s.SwapFree}, {"Pressure", &pressure}, {"Sensors", &s.Sensors},
		{"ActiveAlerts", &s.ActiveAlerts},
	}
	for _, f := range fields {
		v, ok := all[f.name]
		if !ok {
			continue
		}
		if err := dbus.Store([]any{v.Value()}, f.dst); err != nil {
			return nil, fmt.Errorf("property %s: %w", f.name, err)
		}
	}
	s.Load = [3]float64{load.A, load.B, load.C}
	s.Pressure = map[string][3]float64{}
	for k, v := range pressure {
		s.Pressure[k] = [3]float64{v.A, v.B, v.C}
	}
	return s, nil
}

// Processes calls GetProcesses.
func (c *Client) Processes(ctx context.Context, options map[string]any) ([]map[string]dbus.Variant, error) {
	var out []map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetProcesses", 0, Options(options)).Store(&out)
	return out, err
}

// Process calls GetProcess.
func (c *Client) Process(ctx context.Context, pid uint32) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetProcess", 0, pid).Store(&out)
	return out, err
}

// Events calls GetEvents.
func (c *Client) Events(ctx context.Context, afterSeq uint64, max uint32, filter map[string]any) (uint64, []map[string]dbus.Variant, error) {
	call := c.obj.CallWithContext(ctx, api.Interface+".GetEvents", 0, afterSeq, max, Options(filter))
	var last uint64
	var evs []map[string]dbus.Variant
	if err := call.Store(&last, &evs); err != nil {
		return 0, nil, err
	}
	return last, evs, nil
}

// Histogram calls GetHistogram.
func (c *Client) Histogram(ctx context.Context, name string, options map[string]any) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetHistogram", 0, name, Options(options)).Store(&out)
	return out, err
}

// SyscallStats calls GetSyscallStats.
func (c *Client) SyscallStats(ctx context.Context, options map[string]any) ([]map[string]dbus.Variant, error) {
	var out []map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetSyscallStats", 0, Options(options)).Store(&out)
	return out, err
}

// Alert calls GetAlert.
func (c *Client) Alert(ctx context.Context, id string) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetAlert", 0, id).Store(&out)
	return out, err
}

// Baseline calls GetBaseline.
func (c *Client) Baseline(ctx context.Context, program string) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetBaseline", 0, program).Store(&out)
	return out, err
}

// Configuration calls GetConfiguration.
func (c *Client) Configuration(ctx context.Context) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetConfiguration", 0).Store(&out)
	return out, err
}

// Unit calls GetUnit.
func (c *Client) Unit(ctx context.Context, unit string) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, api.Interface+".GetUnit", 0, unit).Store(&out)
	return out, err
}

// CallInteractive calls a method with the ALLOW_INTERACTIVE_AUTHORIZATION
// header flag, so polkit may ask the user (through their desktop's or
// terminal's agent). godbus's Object.Call drops that flag, so the message is
// built here.
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

// Options turns plain Go values into an a{sv} dictionary.
func Options(m map[string]any) map[string]dbus.Variant {
	out := make(map[string]dbus.Variant, len(m))
	for k, v := range m {
		out[k] = dbus.MakeVariant(v)
	}
	return out
}

// Plain unwraps variants recursively, for JSON output.
func Plain(v any) any {
	switch t := v.(type) {
	case dbus.Variant:
		return Plain(t.Value())
	case map[string]dbus.Variant:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = Plain(x)
		}
		return out
	case []map[string]dbus.Variant:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = Plain(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = Plain(x)
		}
		return out
	default:
		return v
	}
}

// Uint reads an unsigned number from a D-Bus value (a Variant or a plain
// value of any integer type; 0 otherwise), for clients that print them.
func Uint(v any) uint64 {
	if vv, ok := v.(dbus.Variant); ok {
		v = vv.Value()
	}
	switch n := v.(type) {
	case uint64:
		return n
	case uint32:
		return uint64(n)
	case int32:
		return uint64(n)
	case int64:
		return uint64(n)
	case float64:
		return uint64(n)
	}
	return 0
}

// String reads a string from a D-Bus value ("" if it is none).
func String(v any) string {
	if vv, ok := v.(dbus.Variant); ok {
		v = vv.Value()
	}
	s, _ := v.(string)
	return s
}
