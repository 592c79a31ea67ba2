package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/npllm/npllm/actions"
	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/polkit"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/alerts"
	"github.com/npllm/npllm/sensors/journal"
)

// ServerConfig wires npllmd's parts into the D-Bus object.
type ServerConfig struct {
	Version string
	// Refresh is how often properties are re-read (default 1 s).
	Refresh time.Duration
	Sensors *sensors.Manager
	Log     *slog.Logger
	// Authority decides privileged methods; nil denies them all.
	Authority *polkit.Authority
	// Units performs ManageUnit; nil answers NotSupported.
	Units *actions.Units
	// ProcRoot is where processes are looked up ("/proc").
	ProcRoot string
	// Journal serves GetEvents; Hub's counters are shown in Sensors.
	Journal *journal.Journal
	Hub     *sensors.Hub
	// Alerts raises and clears alerts; nil leaves ActiveAlerts empty.
	Alerts *alerts.Engine
	// Baselines, when set, are shown by GetProcess and GetBaseline and
	// saved every minute.
	Baselines *alerts.Baselines
	// Tuning runs trials (RecoverAtStart already done); nil answers
	// NotSupported to the tuning methods.
	Tuning *tuning.Engine
}

// Server is the org.npllm.Assistant1 object of npllmd.
type Server struct {
	conn     *dbus.Conn
	cfg      ServerConfig
	contract *api.Contract
	props    *properties
	log      *slog.Logger
	obj      *assistant

	callers callerCache
	limits  *limiter
	events  *bucket // events answered to non-root callers
	// sensorUse: read-held while a method reads a sensor's kernel maps,
	// held while SetSensorEnabled switches one.
	sensorUse sync.RWMutex
	audits    auditLog
	counters  *counterState
	health    string
	lastSaved time.Time
}

// NewServer exports the object with all its interfaces on conn. It does not
// own the bus name yet: call RequestName once everything is exported, so no
// client ever sees a half-built object.
func NewServer(conn *dbus.Conn, cfg ServerConfig) (*Server, error) {
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	contract, err := api.ParseContract()
	if err != nil {
		return nil, err
	}
	s := &Server{conn: conn, cfg: cfg, contract: contract, log: cfg.Log}
	s.callers.conn = conn
	s.limits = newLimiter()
	s.events = newBucket(eventRate, eventBurst)
	s.counters = newCounterState()
	s.props = newProperties(conn, contract)
	s.obj = &assistant{s: s}

	if err := s.checkTables(); err != nil {
		return nil, err
	}
	s.refresh()

	if err := conn.Export(s.obj, api.ObjectPath, api.Interface); err != nil {
		return nil, fmt.Errorf("export %s: %w", api.Interface, err)
	}
	if err := conn.Export(s.props, api.ObjectPath, "org.freedesktop.DBus.Properties"); err != nil {
		return nil, fmt.Errorf("export Properties: %w", err)
	}
	if err := conn.Export(introspect.Introspectable(api.InterfaceXML), api.ObjectPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("export Introspectable: %w", err)
	}
	// The root and /org/npllm answer Introspect too, so tools like busctl
	// tree and d-feet can walk to our object.
	for _, p := range []struct {
		path  dbus.ObjectPath
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
	if err := polkit.CheckTable(); err != nil {
		return err
	}
	exported := ExportedMethods()
	for _, name := range s.contract.MethodNames() {
		if !exported[name] {
			return fmt.Errorf("method %s is in %s.xml but not implemented", name, api.Interface)
		}
		if _, ok := polkit.Lookup(name); !ok {
			return fmt.Errorf("method %s has no entry in the polkit table", name)
		}
	}
	for name := range exported {
		if _, ok := s.contract.InSignature[name]; !ok {
			return fmt.Errorf("method %s is implemented but not declared in %s.xml", name, api.Interface)
		}
	}
	return nil
}

// RequestName takes org.npllm.Assistant without queueing; if another
// connection owns it, it returns an error saying so.
func (s *Server) RequestName() error {
	reply, err := s.conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request name %s: %w", api.BusName, err)
	}
	switch reply {
	case dbus.RequestNameReplyPrimaryOwner, dbus.RequestNameReplyAlreadyOwner:
		return nil
	case dbus.RequestNameReplyExists:
		return fmt.Errorf("%s is already owned by another process (is npllmd already running?)", api.BusName)
	default:
		return fmt.Errorf("request name %s: not primary owner (reply %d)", api.BusName, reply)
	}
}

// ReleaseName gives the bus name back (on shutdown).
func (s *Server) ReleaseName() {
	if _, err := s.conn.ReleaseName(api.BusName); err != nil {
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
	now := time.Now()
	s.health = snap.Health()
	if s.cfg.Alerts != nil {
		s.cfg.Alerts.Machine(&snap, now)
		s.health = worse(s.health, s.cfg.Alerts.Health())
	}
	if s.cfg.Baselines != nil && now.Sub(s.lastSaved) >= time.Minute {
		s.lastSaved = now
		if err := s.cfg.Baselines.Save(); err != nil {
			s.log.Warn("save baselines", "err", err)
		}
	}
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
		"ActiveAlerts":    s.activeAlerts(),
	}); err != nil {
		s.log.Warn("emit PropertiesChanged", "err", err)
	}
}

// sensorRows is the Sensors property: only what changes rarely, so a
// refresh re-emits it only when a variant or state changes (counters and
// descriptions are served by GetSensorDetails).
func (s *Server) sensorRows() []api.SensorStatus {
	if s.cfg.Sensors == nil {
		return []api.SensorStatus{}
	}
	var rows []api.SensorStatus
	for _, st := range s.cfg.Sensors.Status() {
		d := map[string]dbus.Variant{}
		if len(st.Skipped) > 0 {
			d["skipped"] = dbus.MakeVariant(st.Skipped)
		}
		if st.Reason != "" {
			d["reason"] = dbus.MakeVariant(st.Reason)
		}
		if st.Fix != "" {
			d["fix"] = dbus.MakeVariant(st.Fix)
		}
		rows = append(rows, api.SensorStatus{Name: st.Name, Variant: st.Variant, State: st.State, Details: d})
	}
	if s.cfg.Hub != nil {
		d := map[string]dbus.Variant{}
		if s.cfg.Journal != nil {
			if ok, reason := s.cfg.Journal.Health(); !ok {
				d["reason"] = dbus.MakeVariant(reason)
			}
		}
		rows = append(rows, api.SensorStatus{Name: pipelineName, Variant: "hub", State: sensors.StateRunning, Details: d})
	}
	return rows
}

// call is one incoming method call, from its checked signature to its audit.
type call struct {
	s      *Server
	method string
	rule   polkit.Rule
	sender string
	flags  dbus.Flags
	// automated: options["automated"], the agent-* actions apply.
	automated bool
	// limited: holds a slot of s.limits until end.
	limited bool
	// id is the caller, from the bus (set by begin when idKnown).
	id      callerID
	idKnown bool
	// audit collects the target and decision of a privileged call; end
	// logs it whatever the outcome.
	audit []any
}

// begin checks an incoming call against the contract. godbus converts
// arguments loosely (an int32 into a uint32, a number into a string), so the
// signature is compared exactly here: a call that does not match the XML is
// InvalidArgs, whatever godbus managed to decode.
func (s *Server) begin(msg dbus.Message, method string) (*call, *dbus.Error) {
	c := &call{s: s, method: method, flags: msg.Flags}
	if v, ok := msg.Headers[dbus.FieldSender]; ok {
		c.sender, _ = v.Value().(string)
	}
	want := s.contract.InSignature[method]
	got := ""
	if v, ok := msg.Headers[dbus.FieldSignature]; ok {
		if sig, ok := v.Value().(dbus.Signature); ok {
			got = sig.String()
		}
	}
	if got != want {
		return nil, api.NewError(api.ErrInvalidArgs, "%s takes arguments (%s), not (%s)", method, want, got)
	}
	rule, ok := polkit.Lookup(method)
	if !ok {
		return nil, api.NewError(api.ErrAccessDenied, "%s is not in the authorization table", method)
	}
	c.rule = rule
	// Who calls is settled before anything else: a privileged call whose
	// sender is already gone is refused (it was once audited as uid 0 and
	// charged to root's rate limit).
	if !rule.ReadOnly || expensive[method] {
		id, err := s.callers.lookup(c.sender)
		if err != nil {
			return nil, api.NewError(api.ErrAccessDenied, "cannot identify the caller: %v", err)
		}
		c.id, c.idKnown = id, true
	}
	if derr := checkSizes(method, msg.Body); derr != nil {
		return nil, derr
	}
	if expensive[method] {
		if c.id.uid != 0 {
			if derr := s.limits.acquire(method, c.sender); derr != nil {
				return nil, derr
			}
			c.limited = true
		}
	}
	return c, nil
}

// end turns a panic into a Failed reply (the daemon keeps serving) and logs
// the call.
func (c *call) end(derr **dbus.Error) {
	if c.limited {
		defer c.s.limits.release(c.sender)
	}
	if r := recover(); r != nil {
		c.s.log.Error("panic in method handler", "method", c.method, "sender", c.sender, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*derr = api.NewError(api.ErrFailed, "internal error in %s; see the npllmd log", c.method)
	}
	result := "ok"
	if *derr != nil {
		result = (*derr).Name
	}
	if c.rule.ReadOnly {
		if *derr != nil {
			c.s.log.Debug("call failed", "method", c.method, "sender", c.sender, "error", result)
		}
		return
	}
	// begin refuses a privileged call it cannot attribute; should one get
	// here anyway, it is "unknown" in a bucket of its own, never uid 0.
	var uid, pid any = "unknown", "unknown"
	bucket := unknownCaller
	if c.idKnown {
		uid, pid, bucket = c.id.uid, c.id.pid, c.id.uid
	}
	attrs := append([]any{"method", c.method, "sender", c.sender, "caller_uid", uid, "caller_pid", pid, "result", result}, c.audit...)
	if *derr != nil {
		attrs = append(attrs, "reason", auditString(api.ErrorMessage(*derr)))
	}
	c.s.audits.write(c.s.log, bucket, *derr != nil, attrs)
}

// interactive reports whether the caller allows polkit to ask the user:
// the ALLOW_INTERACTIVE_AUTHORIZATION flag, or options["interactive"] for
// clients that cannot set it. It also reads options["automated"]: a call
// made for a model or a script, authorized with the agent-* actions.
func (c *call) interactive(o *optionReader) bool {
	c.automated, _ = o.bool("automated")
	if c.flags&dbus.FlagAllowInteractiveAuthorization != 0 {
		return true
	}
	v, _ := o.bool("interactive")
	return v
}

// authorize asks polkit and turns its answer into nil or a named error.
// action is the one for a person at a client; an automated call gets its
// agent-* counterpart (polkit.ForCall).
func (c *call) authorize(action string, details map[string]string, interactive bool) *dbus.Error {
	action = polkit.ForCall(action, c.automated)
	c.note("action", action)
	c.note("interactive", interactive)
	c.note("automated", c.automated)
	d := c.s.cfg.Authority.Check(context.Background(), c.sender, action, details, interactive)
	switch d.Result {
	case polkit.Authorized:
		return nil
	case polkit.ChallengeRequired:
		return api.NewError(api.ErrInteractiveAuthorizationRequired, "%s", d.Reason)
	default:
		return api.NewError(api.ErrNotAuthorized, "%s", d.Reason)
	}
}

// callerUID asks the bus who is calling (cached per unique name, which the
// bus never reuses).
func (c *call) callerUID() (uint32, error) {
	id, err := c.s.callers.lookup(c.sender)
	return id.uid, err
}

type callerID struct{ uid, pid uint32 }

// unknownCaller is the audit rate bucket of calls whose caller is unknown:
// (uid_t)-1 is no one's uid.
const unknownCaller = ^uint32(0)

type callerCache struct {
	conn *dbus.Conn
	mu   sync.Mutex
	ids  map[string]callerID
}

func (cc *callerCache) lookup(sender string) (callerID, error) {
	if sender == "" {
		return callerID{}, errors.New("call has no sender")
	}
	cc.mu.Lock()
	id, ok := cc.ids[sender]
	cc.mu.Unlock()
	if ok {
		return id, nil
	}
	bus := cc.conn.BusObject()
	if err := bus.Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, sender).Store(&id.uid); err != nil {
		return callerID{}, fmt.Errorf("ask the bus for the uid of %s: %w", sender, err)
	}
	// The pid is for the audit log only; authorization never uses it. A
	// sender gone between the two questions is not identified.
	if err := bus.Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, sender).Store(&id.pid); err != nil {
		return callerID{}, fmt.Errorf("ask the bus for the pid of %s: %w", sender, err)
	}
	cc.mu.Lock()
	if cc.ids == nil || len(cc.ids) > 4096 {
		cc.ids = map[string]callerID{}
	}
	cc.ids[sender] = id
	cc.mu.Unlock()
	return id, nil
}
