package api

import "github.com/godbus/dbus/v5"

// SensorStatus is one element of the Sensors property, a(sssa{sv}).
type SensorStatus struct {
	Name    string
	Variant string
	State   string
	Details map[string]dbus.Variant
}
