package sensors

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/npllm/npllm/dbus/api"
)

// The "units" sensor follows systemd over its D-Bus API and journals
// unit.failed {unit, result, exit_code, exit_status} when a unit enters the
// failed state, and unit.restarted {unit, restarts} when systemd restarts
// one (its NRestarts grows), so alerts can say "unit failed". Without
// systemd as PID 1 it is unavailable, and says so.
func init() {
	Register(Registration{
		Name:        "units",
		Description: "systemd unit failures and restarts",
		DefaultOn:   true,
		Variants:    []Variant{{Name: "systemd", Start: startUnits}},
	})
}

type unitsSensor struct {
	conn   *sdbus.Conn
	hub    *Hub
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	state    map[string]string // unit → last ActiveState
	restarts map[string]uint32

	failed, restarted atomic.Uint64
}

func startUnits(ctx context.Context, env *Env) (Running, error) {
	if env.Hub == nil {
		return nil, fmt.Errorf("no event hub")
	}
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return nil, &Unavailable{Reason: "systemd is not running as PID 1 on this machine", Fix: "boot with systemd to get unit failure events"}
	}
	conn, err := sdbus.NewWithContext(ctx)
	if err != nil {
		return nil, &Unavailable{Reason: "cannot reach systemd: " + err.Error()}
	}
	if err := conn.Subscribe(); err != nil {
		conn.Close()
		return nil, &Unavailable{Reason: "cannot subscribe to systemd's signals: " + err.Error()}
	}
	s := &unitsSensor{conn: conn, hub: env.Hub, state: map[string]string{}, restarts: map[string]uint32{}}
	// What is failed already is not news; only changes from now on are.
	if units, err := conn.ListUnitsContext(ctx); err == nil {
		for _, u := range units {
			s.state[u.Name] = u.ActiveState
		}
	}
	updates := make(chan *sdbus.PropertiesUpdate, 256)
	errs := make(chan error, 16)
	conn.SetPropertiesSubscriber(updates, errs)
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.run(runCtx, updates, errs)
	return s, nil
}

func (s *unitsSensor) run(ctx context.Context, updates <-chan *sdbus.PropertiesUpdate, errs <-chan error) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-errs:
		case u := <-updates:
			s.handle(ctx, u)
		}
	}
}

func (s *unitsSensor) handle(ctx context.Context, u *sdbus.PropertiesUpdate) {
	if v, ok := u.Changed["NRestarts"]; ok {
		if n, ok := v.Value().(uint32); ok {
			s.mu.Lock()
			prev, known := s.restarts[u.UnitName]
			s.restarts[u.UnitName] = n
			s.mu.Unlock()
			if known && n > prev {
				s.restarted.Add(1)
				s.hub.Publish(Event{Kind: api.KindUnitRestarted, Unit: &api.UnitChange{Unit: u.UnitName, Restarts: n}})
			}
		}
	}
	v, ok := u.Changed["ActiveState"]
	if !ok {
		return
	}
	state, _ := v.Value().(string)
	s.mu.Lock()
	prev := s.state[u.UnitName]
	s.state[u.UnitName] = state
	s.mu.Unlock()
	if state != "failed" || prev == "failed" {
		return
	}
	uc := &api.UnitChange{Unit: u.UnitName}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if svc, err := s.conn.GetUnitTypePropertiesContext(qctx, u.UnitName, "Service"); err == nil {
		if r, ok := svc["Result"].(string); ok {
			uc.Result = r
		}
		// ExecMainCode is a CLD_* code: 1 exited, 2 killed, 3 dumped.
		if c, ok := svc["ExecMainCode"].(int32); ok {
			uc.ExitCode = map[int32]string{1: "exited", 2: "killed", 3: "dumped"}[c]
		}
		if st, ok := svc["ExecMainStatus"].(int32); ok {
			uc.ExitStatus = st
		}
	}
	s.failed.Add(1)
	s.hub.Publish(Event{Kind: api.KindUnitFailed, Unit: uc})
}

func (s *unitsSensor) Counters() map[string]uint64 {
	return map[string]uint64{"failed": s.failed.Load(), "restarted": s.restarted.Load()}
}

func (s *unitsSensor) Close() error {
	s.cancel()
	s.wg.Wait()
	s.conn.Close()
	return nil
}
