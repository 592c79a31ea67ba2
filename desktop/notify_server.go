package desktop

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"
)

// notifyServer is the notification server on the session bus. It replaces
// notify.New, whose signal loop checks no sender and asserts body types:
// any program on the session bus could crash the agent with a malformed
// NotificationClosed, or press its buttons with an ActionInvoked (match
// rules do not filter unicast signals). Here a signal counts only when it
// comes from the connection that owns org.freedesktop.Notifications now,
// and has the types the specification gives. Calls go through the
// library's plain functions.
type notifyServer struct {
	conn     *dbus.Conn
	onAction func(id uint32, key string)
	onClosed func(id uint32, reason notify.Reason)
	log      *slog.Logger

	in    chan *dbus.Signal
	stop  context.CancelFunc
	done  chan struct{}
	close sync.Once

	mu       sync.Mutex
	owner    string
	ignored  atomic.Uint64
	lastWarn time.Time
}

const (
	notificationsName  = "org.freedesktop.Notifications"
	notificationsPath  = "/org/freedesktop/Notifications"
	notificationsIface = "org.freedesktop.Notifications"
)

func newNotifyServer(conn *dbus.Conn, onAction func(uint32, string), onClosed func(uint32, notify.Reason), log *slog.Logger) (*notifyServer, error) {
	s := &notifyServer{conn: conn, onAction: onAction, onClosed: onClosed, log: log,
		in: make(chan *dbus.Signal, 64), done: make(chan struct{})}
	if err := conn.AddMatchSignal(dbus.WithMatchSender(notificationsName), dbus.WithMatchObjectPath(notificationsPath),
		dbus.WithMatchInterface(notificationsIface)); err != nil {
		return nil, fmt.Errorf("subscribe to the notification server: %w", err)
	}
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, notificationsName)); err != nil {
		return nil, fmt.Errorf("subscribe to the notification server: %w", err)
	}
	conn.Signal(s.in)
	// Read after subscribing, so no change falls between. No owner yet is
	// fine: an activatable server starts with the first Notify.
	var owner string
	if conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, notificationsName).Store(&owner) == nil {
		s.owner = owner
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.run(ctx)
	return s, nil
}

func (s *notifyServer) run(ctx context.Context) {
	defer close(s.done)
	defer s.conn.RemoveSignal(s.in)
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-s.in:
			if !ok {
				return
			}
			s.handle(sig)
		}
	}
}

// ignore counts a signal that was not the server's or not well formed; one
// warning a minute at most.
func (s *notifyServer) ignore(msg string, args ...any) {
	n := s.ignored.Add(1)
	now := time.Now()
	s.mu.Lock()
	quiet := !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < time.Minute
	if !quiet {
		s.lastWarn = now
	}
	s.mu.Unlock()
	if !quiet {
		s.log.Warn(msg, append(args, "ignored_total", n)...)
	}
}

func (s *notifyServer) handle(sig *dbus.Signal) {
	defer func() {
		if r := recover(); r != nil {
			s.ignore("malformed notification signal ignored", "signal", sig.Name, "panic", fmt.Sprint(r))
		}
	}()
	if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" {
		if sig.Sender != "org.freedesktop.DBus" || len(sig.Body) != 3 {
			s.ignore("ignored a NameOwnerChanged not sent by the session bus", "sender", sig.Sender)
			return
		}
		name, ok1 := sig.Body[0].(string)
		owner, ok2 := sig.Body[2].(string)
		if ok1 && ok2 && name == notificationsName {
			s.mu.Lock()
			s.owner = owner
			s.mu.Unlock()
		}
		return
	}
	if sig.Path != notificationsPath {
		return
	}
	s.mu.Lock()
	owner := s.owner
	s.mu.Unlock()
	if owner == "" || sig.Sender != owner {
		s.ignore("ignored a notification signal not sent by the notification server", "signal", sig.Name, "sender", sig.Sender, "server", owner)
		return
	}
	if len(sig.Body) != 2 {
		s.ignore("malformed notification signal ignored", "signal", sig.Name, "args", len(sig.Body))
		return
	}
	id, ok := sig.Body[0].(uint32)
	if !ok {
		s.ignore("malformed notification signal ignored", "signal", sig.Name, "type", fmt.Sprintf("%T", sig.Body[0]))
		return
	}
	switch sig.Name {
	case notificationsIface + ".ActionInvoked":
		if key, ok := sig.Body[1].(string); ok {
			s.onAction(id, key)
			return
		}
	case notificationsIface + ".NotificationClosed":
		if reason, ok := sig.Body[1].(uint32); ok {
			s.onClosed(id, notify.Reason(reason))
			return
		}
	default:
		return
	}
	s.ignore("malformed notification signal ignored", "signal", sig.Name, "type", fmt.Sprintf("%T", sig.Body[1]))
}

func (s *notifyServer) SendNotification(n notify.Notification) (uint32, error) {
	return notify.SendNotification(s.conn, n)
}

func (s *notifyServer) GetCapabilities() ([]string, error) { return notify.GetCapabilities(s.conn) }

func (s *notifyServer) GetServerInformation() (notify.ServerInformation, error) {
	return notify.GetServerInformation(s.conn)
}

func (s *notifyServer) CloseNotification(id uint32) (bool, error) {
	err := s.conn.Object(notificationsName, notificationsPath).Call(notificationsIface+".CloseNotification", 0, id).Err
	return err == nil, err
}

// Close stops listening; the session connection stays the caller's.
func (s *notifyServer) Close() error {
	s.close.Do(func() {
		s.stop()
		<-s.done
		s.conn.RemoveMatchSignal(dbus.WithMatchSender(notificationsName), dbus.WithMatchObjectPath(notificationsPath),
			dbus.WithMatchInterface(notificationsIface))
	})
	return nil
}
