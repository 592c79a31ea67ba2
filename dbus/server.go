package dbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/npllm/npllm/polkit"
	"github.com/npllm/npllm/sensors"
)

// ServerConfig wires npllmd's parts into the D-Bus object.
type ServerConfig struct {
	Version string
	// Refresh is how often properties are re-read (default 1 s).
	Refresh time.Duration
	Sensors *sensors.Manager
	Log     *slog.Logger
}

// Server is the org.npllm.Assistant1 object of npllmd.
type Server struct {
	conn     *godbus.Conn
	cfg      ServerConfig
	contract *Contract
	props    *properties
	log      *slog.Logger
	api      *api

	callers callerCache
	health  string
}

// NewServer exports the object with all its interfaces on conn. It does not
// own the bus name yet: call RequestName once everything is exported, so no
// client ever sees a half-built object.
func NewServer(conn *godbus.Conn, cfg ServerConfig) (*Server, error) {
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	contract, err := ParseContract()
	if err != nil {
		return nil, err
	}
	s := &Server{conn: conn, cfg: cfg, contract: contract, log: cfg.Log}
	s.callers.conn = conn
	s.props = newProperties(conn, contract)
	s.api = &api{s: s}

	if err := s.checkTables(); err != nil {
		return nil, err
	}
	s.refresh()

	if err := conn.Export(s.api, ObjectPath, Interface); err != nil {
		return nil, fmt.Errorf("export %s: %w", Interface, err)
	}
	if err := conn.Export(s.props, ObjectPath, "org.freedesktop.DBus.Properties"); err != nil {
		return nil, fmt.Errorf("export Properties: %w", err)
	}
	if err := conn.Export(introspect.Introspectable(InterfaceXML), ObjectPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("export Introspectable: %w", err)
	}
	// The root and /org/npllm answer Introspect too, so tools like busctl
	// tree and d-feet can walk to our object.
	for _, p := range []struct {
		path  godbus.ObjectPath
		child string
	}{{"/", "org"}, {"/org", "npllm"}, {"/org/npllm", "Assistant1"}} {
		node := fmt.Sprintf(`<node><node name="%s"/></node>`, p.child)
		if err := conn.Export(introspect.Introspectable(node), p.path, "org.freedesktop.DBus.Introspectable"); err != nil {
			return nil, fmt.Errorf("export Introspectable on %s: %w", p.path, err)
		}
	}
	return s, nil
}

// checkTables refuses to start when the contract, the Go methods and the
// polkit table disagree: a method added to one and not the others would
// either be unreachable or unguarded.
func (s *Server) checkTables() error {
	exported := ExportedMethods()
	for _, name := range s.contract.MethodNames() {
		if !exported[name] {
			return fmt.Errorf("method %s is in %s.xml but not implemented", name, Interface)
		}
		if _, ok := polkit.Lookup(name); !ok {
			return fmt.Errorf("method %s has no entry in the polkit table", name)
		}
	}
	for name := range exported {
		if _, ok := s.contract.InSignature[name]; !ok {
			return fmt.Errorf("method %s is implemented but not declared in %s.xml", name, Interface)
		}
	}
	return nil
}

// RequestName takes org.npllm.Assistant without queueing; if another
// connection owns it, it returns an error saying so.
func (s *Server) RequestName() error {
	reply, err := s.conn.RequestName(BusName, godbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request name %s: %w", BusName, err)
	}
	switch reply {
	case godbus.RequestNameReplyPrimaryOwner, godbus.RequestNameReplyAlreadyOwner:
		return nil
	case godbus.RequestNameReplyExists:
		return fmt.Errorf("%s is already owned by another process (is npllmd already running?)", BusName)
	default:
		return fmt.Errorf("request name %s: not primary owner (reply %d)", BusName, reply)
	}
}

// ReleaseName gives the bus name back (on shutdown).
func (s *Server) ReleaseName() {
	if _, err := s.conn.ReleaseName(BusName); err != nil {
		s.log.Warn("release name", "err", err)
	}
}

// Run refreshes the properties every cfg.Refresh until ctx ends. beat, if
// set, is called after each refresh (the systemd watchdog hangs off it).
func (s *Server) Run(ctx context.Context, beat func()) {
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh()
			if beat != nil {
				beat()
			}
		}
	}
}

func (s *Server) refresh() {
	var snap sensors.Snapshot
	if s.cfg.Sensors != nil {
		s.cfg.Sensors.Sample(&snap)
	}
	s.health = snap.Health()
	pressure := map[string]struct{ Avg10, Avg60, Avg300 float64 }{}
	for k, v := range snap.Pressure {
		pressure[k] = struct{ Avg10, Avg60, Avg300 float64 }{v[0], v[1], v[2]}
	}
	if err := s.props.update(map[string]any{
		"Version":         s.cfg.Version,
		"Health":          s.health,
		"LoadAverage":     struct{ Load1, Load5, Load15 float64 }{snap.Load[0], snap.Load[1], snap.Load[2]},
		"CPUUsage":        snap.CPUUsage,
		"MemoryTotal":     snap.MemoryTotal,
		"MemoryAvailable": snap.MemoryAvailable,
		"SwapTotal":       snap.SwapTotal,
		"SwapFree":        snap.SwapFree,
		"Pressure":        pressure,
		"Sensors":         s.sensorRows(),
		"ActiveAlerts":    []map[string]godbus.Variant{},
	}); err != nil {
		s.log.Warn("emit PropertiesChanged", "err", err)
	}
}

// SensorRow is one element of the Sensors property, a(sssa{sv}).
type SensorRow struct {
	Name    string
	Variant string
	State   string
	Details map[string]godbus.Variant
}

func (s *Server) sensorRows() []SensorRow {
	if s.cfg.Sensors == nil {
		return []SensorRow{}
	}
	var rows []SensorRow
	for _, st := range s.cfg.Sensors.Status() {
		d := map[string]godbus.Variant{"description": godbus.MakeVariant(st.Description)}
		if len(st.Skipped) > 0 {
			d["skipped"] = godbus.MakeVariant(st.Skipped)
		}
		if st.Reason != "" {
			d["reason"] = godbus.MakeVariant(st.Reason)
		}
		if st.Fix != "" {
			d["fix"] = godbus.MakeVariant(st.Fix)
		}
		for k, v := range st.Counters {
			d[k] = godbus.MakeVariant(v)
		}
		rows = append(rows, SensorRow{st.Name, st.Variant, st.State, d})
	}
	return rows
}

// call is one incoming method call, from its checked signature to its audit.
type call struct {
	s      *Server
	method string
	sender string
	flags  godbus.Flags
	start  time.Time
}

// begin checks an incoming call against the contract. godbus converts
// arguments loosely (an int32 into a uint32, a number into a string), so the
// signature is compared exactly here: a call that does not match the XML is
// InvalidArgs, whatever godbus managed to decode.
func (s *Server) begin(msg godbus.Message, method string) (*call, *godbus.Error) {
	c := &call{s: s, method: method, flags: msg.Flags, start: time.Now()}
	if v, ok := msg.Headers[godbus.FieldSender]; ok {
		c.sender, _ = v.Value().(string)
	}
	want := s.contract.InSignature[method]
	got := ""
	if v, ok := msg.Headers[godbus.FieldSignature]; ok {
		if sig, ok := v.Value().(godbus.Signature); ok {
			got = sig.String()
		}
	}
	if got != want {
		return nil, NewError(ErrInvalidArgs, "%s takes arguments (%s), not (%s)", method, want, got)
	}
	if _, ok := polkit.Lookup(method); !ok {
		return nil, NewError(ErrAccessDenied, "%s is not in the authorization table", method)
	}
	return c, nil
}

// end turns a panic into a Failed reply (the daemon keeps serving) and logs
// the call.
func (c *call) end(derr **godbus.Error) {
	if r := recover(); r != nil {
		c.s.log.Error("panic in method handler", "method", c.method, "sender", c.sender, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*derr = NewError(ErrFailed, "internal error in %s; see the npllmd log", c.method)
	}
	if *derr != nil {
		c.s.log.Debug("call failed", "method", c.method, "sender", c.sender, "error", (*derr).Name, "duration", time.Since(c.start))
	}
}

// callerUID asks the bus who is calling (cached per unique name, which the
// bus never reuses).
func (c *call) callerUID() (uint32, error) {
	return c.s.callers.uid(c.sender)
}

type callerCache struct {
	conn *godbus.Conn
	mu   sync.Mutex
	uids map[string]uint32
}

func (cc *callerCache) uid(sender string) (uint32, error) {
	if sender == "" {
		return 0, errors.New("call has no sender")
	}
	cc.mu.Lock()
	uid, ok := cc.uids[sender]
	cc.mu.Unlock()
	if ok {
		return uid, nil
	}
	if err := cc.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, sender).Store(&uid); err != nil {
		return 0, fmt.Errorf("ask the bus for the uid of %s: %w", sender, err)
	}
	cc.mu.Lock()
	if cc.uids == nil || len(cc.uids) > 4096 {
		cc.uids = map[string]uint32{}
	}
	cc.uids[sender] = uid
	cc.mu.Unlock()
	return uid, nil
}
