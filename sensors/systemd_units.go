package sensors

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// The "units" sensor follows systemd over its D-Bus API and journals
// unit.failed {unit, result, exit_code, exit_status} when a unit enters the
// failed state, and unit.restarted {unit, restarts} when systemd restarts
// one (its NRestarts grows), so alerts can say "unit failed". Without
// systemd as PID 1 it is unavailable, and says so.
//
// It reads systemd's signals on its own connection, not through
// go-systemd's subscriber, whose loop checks no sender and asserts body
// types: any local user could send it a PropertiesChanged (match rules do
// not filter unicast signals) and forge unit.failed or crash npllmd. A
// signal counts only when its sender is systemd's current unique name.
func init() {
	Register(Registration{
		Name:        "units",
		Description: "systemd unit failures and restarts",
		DefaultOn:   true,
		Variants:    []Variant{{Name: "systemd", Start: startUnits}},
	})
}

const (
	systemdBusName  = "org.freedesktop.systemd1"
	systemdUnitPath = "/org/freedesktop/systemd1/unit"
	// maxTrackedUnits bounds the state and restarts maps; a unit beyond it
	// is not followed and counted (dropped_units).
	maxTrackedUnits = 8192
	unitsSignalBuf  = 256
)

type unitsSensor struct {
	conn   *dbus.Conn
	hub    *Hub
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	owner    string            // systemd's unique name now
	state    map[string]string // unit → last ActiveState
	restarts map[string]uint32

	failed, restarted, ignored, droppedUnits atomic.Uint64
	lastWarn                                 atomic.Int64
}

func startUnits(ctx context.Context, env *Env) (Running, error) {
	if env.Hub == nil {
		return nil, fmt.Errorf("no event hub")
	}
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return nil, &Unavailable{Reason: "systemd is not running as PID 1 on this machine", Fix: "boot with systemd to get unit failure events"}
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, &Unavailable{Reason: "cannot reach the system bus: " + err.Error()}
	}
	s, err := watchUnits(ctx, conn, env.Hub)
	if err != nil {
		conn.Close()
		return nil, &Unavailable{Reason: "cannot follow systemd: " + err.Error()}
	}
	return s, nil
}

// watchUnits subscribes to systemd's signals on conn (which it then owns)
// and publishes unit events to hub until Close.
func watchUnits(ctx context.Context, conn *dbus.Conn, hub *Hub) (*unitsSensor, error) {
	s := &unitsSensor{conn: conn, hub: hub, log: slog.Default().With("sensor", "units"),
		state: map[string]string{}, restarts: map[string]uint32{}}
	if err := conn.AddMatchSignal(dbus.WithMatchSender(systemdBusName), dbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
		dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace(systemdUnitPath)); err != nil {
		return nil, err
	}
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, systemdBusName)); err != nil {
		return nil, err
	}
	in := make(chan *dbus.Signal, unitsSignalBuf)
	conn.Signal(in)
	// The owner is read after subscribing, so no change falls between.
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, systemdBusName).Store(&s.owner); err != nil {
		return nil, err
	}
	mgr := conn.Object(systemdBusName, "/org/freedesktop/systemd1")
	if err := mgr.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.Subscribe", 0).Err; err != nil {
		return nil, err
	}
	// What is failed already is not news; only changes from now on are.
	var units []struct {
		Name, Description, Load, Active, Sub, Following string
		Path                                            dbus.ObjectPath
		JobID                                           uint32
		JobType                                         string
		JobPath                                         dbus.ObjectPath
	}
	if err := mgr.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.ListUnits", 0).Store(&units); err == nil {
		for _, u := range units {
			s.track(u.Name, u.Active)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.run(runCtx, in)
	return s, nil
}

func (s *unitsSensor) run(ctx context.Context, in chan *dbus.Signal) {
	defer s.wg.Done()
	defer s.conn.RemoveSignal(in)
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-in:
			if !ok {
				return
			}
			s.handle(ctx, sig)
		}
	}
}

// ignore counts a forged or malformed signal; a warning at most a minute.
func (s *unitsSensor) ignore(msg string, args ...any) {
	n := s.ignored.Add(1)
	now := time.Now().UnixNano()
	if last := s.lastWarn.Load(); last != 0 && now-last < int64(time.Minute) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, append(args, "ignored_total", n)...)
}

// handle checks one signal's sender and types, then acts on it. A panic on
// hostile input is recovered and counted.
func (s *unitsSensor) handle(ctx context.Context, sig *dbus.Signal) {
	defer func() {
		if r := recover(); r != nil {
			s.ignore("malformed systemd signal ignored", "panic", fmt.Sprint(r))
		}
	}()
	if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" {
		if sig.Sender != "org.freedesktop.DBus" || len(sig.Body) != 3 {
			s.ignore("ignored a NameOwnerChanged not sent by the bus", "sender", sig.Sender)
			return
		}
		name, ok1 := sig.Body[0].(string)
		owner, ok2 := sig.Body[2].(string)
		if ok1 && ok2 && name == systemdBusName {
			s.mu.Lock()
			s.owner = owner
			s.mu.Unlock()
		}
		return
	}
	s.mu.Lock()
	owner := s.owner
	s.mu.Unlock()
	if owner == "" || sig.Sender != owner {
		s.ignore("ignored a unit signal not sent by systemd", "sender", sig.Sender, "signal", sig.Name)
		return
	}
	if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || !strings.HasPrefix(string(sig.Path), systemdUnitPath+"/") {
		return
	}
	if len(sig.Body) != 3 {
		s.ignore("malformed PropertiesChanged from systemd", "args", len(sig.Body))
		return
	}
	iface, ok1 := sig.Body[0].(string)
	changed, ok2 := sig.Body[1].(map[string]dbus.Variant)
	if !ok1 || !ok2 {
		s.ignore("malformed PropertiesChanged from systemd", "types", fmt.Sprintf("%T %T", sig.Body[0], sig.Body[1]))
		return
	}
	unit := unitFromPath(sig.Path)
	switch iface {
	case "org.freedesktop.systemd1.Service":
		if n, ok := changed["NRestarts"].Value().(uint32); ok {
			s.restartsChanged(unit, n)
		}
	case "org.freedesktop.systemd1.Unit":
		if state, ok := changed["ActiveState"].Value().(string); ok {
			s.stateChanged(ctx, sig.Path, unit, state)
		}
	}
}

// track records a unit's state; false when the map is full (counted).
func (s *unitsSensor) track(unit, state string) (prev string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, known := s.state[unit]
	if !known && len(s.state) >= maxTrackedUnits {
		s.droppedUnits.Add(1)
		return "", false
	}
	s.state[unit] = state
	return prev, true
}

func (s *unitsSensor) restartsChanged(unit string, n uint32) {
	s.mu.Lock()
	prev, known := s.restarts[unit]
	full := !known && len(s.restarts) >= maxTrackedUnits
	if !full {
		s.restarts[unit] = n
	}
	s.mu.Unlock()
	if full {
		s.droppedUnits.Add(1)
		return
	}
	if known && n > prev {
		s.restarted.Add(1)
		s.hub.Publish(Event{Kind: api.KindUnitRestarted, Unit: &api.UnitChange{Unit: unit, Restarts: n}})
	}
}

func (s *unitsSensor) stateChanged(ctx context.Context, p dbus.ObjectPath, unit, state string) {
	prev, ok := s.track(unit, state)
	if !ok || state != "failed" || prev == "failed" {
		return
	}
	uc := &api.UnitChange{Unit: unit}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var svc map[string]dbus.Variant
	if s.conn.Object(systemdBusName, p).CallWithContext(qctx, "org.freedesktop.DBus.Properties.GetAll", 0, "org.freedesktop.systemd1.Service").Store(&svc) == nil {
		if r, ok := svc["Result"].Value().(string); ok {
			uc.Result = r
		}
		// ExecMainCode is a CLD_* code: 1 exited, 2 killed, 3 dumped.
		if c, ok := svc["ExecMainCode"].Value().(int32); ok {
			uc.ExitCode = map[int32]string{1: "exited", 2: "killed", 3: "dumped"}[c]
		}
		if st, ok := svc["ExecMainStatus"].Value().(int32); ok {
			uc.ExitStatus = st
		}
	}
	s.failed.Add(1)
	s.hub.Publish(Event{Kind: api.KindUnitFailed, Unit: uc})
}

// unitFromPath undoes systemd's object path escaping ("_2e" is ".").
func unitFromPath(p dbus.ObjectPath) string {
	label := path.Base(string(p))
	var b strings.Builder
	for i := 0; i < len(label); i++ {
		if label[i] == '_' && i+2 < len(label) {
			if c, err := hex.DecodeString(label[i+1 : i+3]); err == nil {
				b.Write(c)
				i += 2
				continue
			}
		}
		b.WriteByte(label[i])
	}
	return b.String()
}

func (s *unitsSensor) Counters() map[string]uint64 {
	return map[string]uint64{"failed": s.failed.Load(), "restarted": s.restarted.Load(),
		"signals_ignored": s.ignored.Load(), "dropped_units": s.droppedUnits.Load()}
}

func (s *unitsSensor) Close() error {
	s.cancel()
	s.wg.Wait()
	s.conn.Close()
	return nil
}
