package actions

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Units asks systemd, over its own D-Bus API, to act on units. npllmd has
// already authorized the caller with polkit's manage-units action; systemd
// then sees root asking.
type Units struct {
	mu   sync.Mutex
	conn *sdbus.Conn
}

// Booted reports whether systemd is PID 1 (sd_booted(3)).
func Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func (u *Units) connect(ctx context.Context) (*sdbus.Conn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn != nil && u.conn.Connected() {
		return u.conn, nil
	}
	if !Booted() {
		return nil, fmt.Errorf("%w: systemd is not running as PID 1 on this machine", ErrNotSupported)
	}
	conn, err := sdbus.NewWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot reach systemd: %v", ErrNotSupported, err)
	}
	u.conn = conn
	return conn, nil
}

// Manage queues verb on unit ("replace" mode, as systemctl does) and
// returns the job's object path on systemd's bus.
func (u *Units) Manage(ctx context.Context, unit, verb string) (dbus.ObjectPath, error) {
	if err := ValidateUnitName(unit); err != nil {
		return "", err
	}
	if err := ValidateVerb(verb); err != nil {
		return "", err
	}
	conn, err := u.connect(ctx)
	if err != nil {
		return "", err
	}
	var id int
	switch verb {
	case "start":
		id, err = conn.StartUnitContext(ctx, unit, "replace", nil)
	case "stop":
		id, err = conn.StopUnitContext(ctx, unit, "replace", nil)
	case "restart":
		id, err = conn.RestartUnitContext(ctx, unit, "replace", nil)
	case "reload":
		id, err = conn.ReloadUnitContext(ctx, unit, "replace", nil)
	}
	if err != nil {
		return "", fmt.Errorf("systemd refused to %s %s: %w", verb, unit, err)
	}
	return dbus.ObjectPath("/org/freedesktop/systemd1/job/" + strconv.Itoa(id)), nil
}

// UnitStatus is what systemd says of a unit.
type UnitStatus struct {
	Unit, Description, LoadState, ActiveState, SubState, Result string
	Restarts                                                    uint32
	MainPID                                                     uint32
	ExecMainStatus                                              int32
	ActiveEnterTimestampUS                                      uint64
}

// Status reads a unit's state from systemd.
func (u *Units) Status(ctx context.Context, unit string) (UnitStatus, error) {
	if err := ValidateUnitName(unit); err != nil {
		return UnitStatus{}, err
	}
	conn, err := u.connect(ctx)
	if err != nil {
		return UnitStatus{}, err
	}
	props, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("systemd: %s: %w", unit, err)
	}
	st := UnitStatus{Unit: unit}
	str := func(k string) string { s, _ := props[k].(string); return s }
	st.Description, st.LoadState, st.ActiveState, st.SubState = str("Description"), str("LoadState"), str("ActiveState"), str("SubState")
	st.ActiveEnterTimestampUS, _ = props["ActiveEnterTimestamp"].(uint64)
	// Service-only properties.
	if svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service"); err == nil {
		st.Result, _ = svc["Result"].(string)
		st.Restarts, _ = svc["NRestarts"].(uint32)
		st.MainPID, _ = svc["MainPID"].(uint32)
		st.ExecMainStatus, _ = svc["ExecMainStatus"].(int32)
	}
	return st, nil
}

// Close drops the connection to systemd.
func (u *Units) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn != nil {
		u.conn.Close()
		u.conn = nil
	}
}
