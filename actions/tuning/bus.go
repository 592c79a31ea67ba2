package tuning

import (
	"slices"

	godbus "github.com/godbus/dbus/v5"
)

// BusFunc returns a connection to the system bus.
type BusFunc func() (*godbus.Conn, error)

// SystemBus is the shared system bus connection.
func SystemBus() (*godbus.Conn, error) { return godbus.SystemBus() }

// busService returns the bus when name is running or activatable there.
func busService(env *Env, name string) (*godbus.Conn, error) {
	if env.Bus == nil {
		return nil, unavailable("no system bus configured")
	}
	conn, err := env.Bus()
	if err != nil {
		return nil, unavailable("no system bus: %v", err)
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err == nil && has {
		return conn, nil
	}
	var names []string
	if err := conn.BusObject().Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err == nil &&
		slices.Contains(names, name) {
		return conn, nil
	}
	return nil, unavailable("%s is not on the system bus", name)
}
