package dbus

import (
	"errors"
	"fmt"

	godbus "github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions"
	"github.com/npllm/npllm/sensors"
)

// Error names of the API. Every failure reaches a client as exactly one of
// these, or as one of the standard org.freedesktop.DBus.Error names below.
const (
	ErrInvalidArgument = Interface + ".Error.InvalidArgument"
	ErrNoSuchProcess   = Interface + ".Error.NoSuchProcess"
	ErrProcessChanged  = Interface + ".Error.ProcessChanged"
	ErrNotAuthorized   = Interface + ".Error.NotAuthorized"
	ErrNotSupported    = Interface + ".Error.NotSupported"
	ErrFailed          = Interface + ".Error.Failed"

	ErrInvalidArgs                      = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrAccessDenied                     = "org.freedesktop.DBus.Error.AccessDenied"
	ErrInteractiveAuthorizationRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	ErrServiceUnknown                   = "org.freedesktop.DBus.Error.ServiceUnknown"
	ErrUnknownMethod                    = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrUnknownProperty                  = "org.freedesktop.DBus.Error.UnknownProperty"
	ErrPropertyReadOnly                 = "org.freedesktop.DBus.Error.PropertyReadOnly"
)

// NewError makes a named D-Bus error with a human message.
func NewError(name, format string, args ...any) *godbus.Error {
	return godbus.NewError(name, []any{fmt.Sprintf(format, args...)})
}

// Named is implemented by domain errors (in sensors/, actions/, polkit/) that
// know which D-Bus error they map to.
type Named interface {
	error
	DBusErrorName() string
}

// sentinels maps the domain packages' errors to their D-Bus names.
var sentinels = []struct {
	err  error
	name string
}{
	{actions.ErrInvalidArgument, ErrInvalidArgument},
	{actions.ErrNoSuchProcess, ErrNoSuchProcess},
	{sensors.ErrNoSuchProcess, ErrNoSuchProcess},
	{actions.ErrProcessChanged, ErrProcessChanged},
	{actions.ErrNotSupported, ErrNotSupported},
	{sensors.ErrNoSuchSensor, ErrInvalidArgument},
	{sensors.ErrUnknownSeries, ErrInvalidArgument},
	{sensors.ErrUnknownSyscall, ErrInvalidArgument},
	{sensors.ErrSensorNotRunning, ErrNotSupported},
	{sensors.ErrSensorUnavailable, ErrNotSupported},
}

// ToDBus maps any error to exactly one named D-Bus error at the boundary.
func ToDBus(err error) *godbus.Error {
	if err == nil {
		return nil
	}
	var derr *godbus.Error
	if errors.As(err, &derr) {
		return derr
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return NewError(s.name, "%s", err.Error())
		}
	}
	var n Named
	if errors.As(err, &n) {
		return NewError(n.DBusErrorName(), "%s", err.Error())
	}
	return NewError(ErrFailed, "%s", err.Error())
}

// ErrorName returns the D-Bus error name carried by err ("" if none).
func ErrorName(err error) string {
	var derr godbus.Error
	if errors.As(err, &derr) {
		return derr.Name
	}
	var pderr *godbus.Error
	if errors.As(err, &pderr) {
		return pderr.Name
	}
	return ""
}

// ErrorMessage returns the human message of a D-Bus error, or err.Error().
func ErrorMessage(err error) string {
	var derr godbus.Error
	if errors.As(err, &derr) && len(derr.Body) > 0 {
		if s, ok := derr.Body[0].(string); ok {
			return s
		}
	}
	return err.Error()
}
