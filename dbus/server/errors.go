package server

import (
	"errors"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions"
	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

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
	{actions.ErrInvalidArgument, api.ErrInvalidArgument},
	{actions.ErrNoSuchProcess, api.ErrNoSuchProcess},
	{sensors.ErrNoSuchProcess, api.ErrNoSuchProcess},
	{actions.ErrProcessChanged, api.ErrProcessChanged},
	{actions.ErrNotSupported, api.ErrNotSupported},
	{sensors.ErrNoSuchSensor, api.ErrInvalidArgument},
	{sensors.ErrUnknownSeries, api.ErrInvalidArgument},
	{sensors.ErrUnknownSyscall, api.ErrInvalidArgument},
	{sensors.ErrSensorNotRunning, api.ErrNotSupported},
	{sensors.ErrSensorUnavailable, api.ErrNotSupported},
	{tuning.ErrInvalidArgument, api.ErrInvalidArgument},
	{tuning.ErrUnknownKnob, api.ErrInvalidArgument},
	{tuning.ErrUnavailable, api.ErrNotSupported},
	{tuning.ErrConflict, api.ErrConflict},
	{tuning.ErrTrialState, api.ErrConflict},
	{tuning.ErrBusy, api.ErrConflict},
	{tuning.ErrNoSuchTrial, api.ErrNotFound},
}

// ToDBus maps any error to exactly one named D-Bus error at the boundary.
func ToDBus(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	var derr *dbus.Error
	if errors.As(err, &derr) {
		return derr
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return api.NewError(s.name, "%s", err.Error())
		}
	}
	var n Named
	if errors.As(err, &n) {
		return api.NewError(n.DBusErrorName(), "%s", err.Error())
	}
	return api.NewError(api.ErrFailed, "%s", err.Error())
}
