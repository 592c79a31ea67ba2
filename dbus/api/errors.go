package api

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Error names of the API. Every failure reaches a client as exactly one of
// these, or as one of the standard org.freedesktop.DBus.Error names below.
const (
	ErrInvalidArgument = Interface + ".Error.InvalidArgument"
	ErrNoSuchProcess   = Interface + ".Error.NoSuchProcess"
	ErrProcessChanged  = Interface + ".Error.ProcessChanged"
	ErrNotAuthorized   = Interface + ".Error.NotAuthorized"
	ErrNotSupported    = Interface + ".Error.NotSupported"
	ErrConflict        = Interface + ".Error.Conflict" // the target is held by something else (a trial holds the knob)
	ErrNotFound        = Interface + ".Error.NotFound" // no such trial
	ErrFailed          = Interface + ".Error.Failed"
	// ErrBusy: too many expensive calls in flight (from this connection, or
	// in all); nothing was done, try again shortly.
	ErrBusy = Interface + ".Error.Busy"

	ErrInvalidArgs                      = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrAccessDenied                     = "org.freedesktop.DBus.Error.AccessDenied"
	ErrInteractiveAuthorizationRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	ErrServiceUnknown                   = "org.freedesktop.DBus.Error.ServiceUnknown"
	ErrNameHasNoOwner                   = "org.freedesktop.DBus.Error.NameHasNoOwner"
	ErrSpawnServiceNotFound             = "org.freedesktop.DBus.Error.Spawn.ServiceNotFound"
	ErrUnknownMethod                    = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrUnknownProperty                  = "org.freedesktop.DBus.Error.UnknownProperty"
	ErrPropertyReadOnly                 = "org.freedesktop.DBus.Error.PropertyReadOnly"
)

// NewError makes a named D-Bus error with a human message.
func NewError(name, format string, args ...any) *dbus.Error {
	return dbus.NewError(name, []any{fmt.Sprintf(format, args...)})
}

// ErrorName returns the D-Bus error name carried by err ("" if none).
func ErrorName(err error) string {
	var derr dbus.Error
	if errors.As(err, &derr) {
		return derr.Name
	}
	var pderr *dbus.Error
	if errors.As(err, &pderr) {
		return pderr.Name
	}
	return ""
}

// ErrorMessage returns the human message of a D-Bus error, or err.Error().
func ErrorMessage(err error) string {
	var derr dbus.Error
	if errors.As(err, &derr) && len(derr.Body) > 0 {
		if s, ok := derr.Body[0].(string); ok {
			return s
		}
	}
	var pderr *dbus.Error
	if errors.As(err, &pderr) && len(pderr.Body) > 0 {
		if s, ok := pderr.Body[0].(string); ok {
			return s
		}
	}
	return err.Error()
}
