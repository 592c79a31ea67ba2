package tools

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/npllm/npllm/dbus/api"
)

// Signals a model may send; anything else is refused before npllmd.
var allowedSignals = []string{"TERM", "KILL", "INT", "HUP", "STOP", "CONT"}

var startTimeParam = Param{Name: "start_time", Kind: Integer, Required: true, Min: 0, Max: math.MaxInt64,
	Description: "from list_processes or process_details: proves it is still the same process"}

var defSignalProcess = &Def{
	Name: "signal_process",
	Description: "Send a signal to a process, as the user running this tool; polkit asks the user to consent every time. " +
		"TERM asks it to quit; KILL ends it at once.",
	Params: []Param{
		{Name: "pid", Kind: Integer, Required: true, Min: 1, Max: math.MaxInt32}, startTimeParam,
		{Name: "signal", Kind: String, Required: true, Enum: allowedSignals},
	},
	Output: ActionResult{}, Write: true, Hints: Hints{Destructive: true},
	run: func(ctx context.Context, s *Set, a *Args) Result {
		pid, start, sig := uint32(a.Int("pid", 0)), uint64(a.Int("start_time", 0)), a.Str("signal", "")
		if err := s.client.SignalProcess(ctx, pid, start, sig, s.callOptions()); err != nil {
			return Refused(fmt.Sprintf("send %s to pid %d", sig, pid), err)
		}
		msg := fmt.Sprintf("sent %s to pid %d", sig, pid)
		return Result{Text: "S" + msg[1:] + ".", Structured: ActionResult{Done: true, Message: msg}}
	},
}

var defSetPriority = &Def{
	Name:        "set_process_priority",
	Description: "Set a process's nice value (all its threads): 19 is the lowest priority, 0 normal; raising priority (a lower value than now) needs an administrator.",
	Params: []Param{
		{Name: "pid", Kind: Integer, Required: true, Min: 1, Max: math.MaxInt32}, startTimeParam,
		{Name: "nice", Kind: Integer, Required: true, Min: -20, Max: 19, Description: "-20 (highest priority) to 19 (lowest)"},
	},
	Output: ActionResult{}, Write: true, Hints: Hints{Idempotent: true},
	run: func(ctx context.Context, s *Set, a *Args) Result {
		pid, start, nice := uint32(a.Int("pid", 0)), uint64(a.Int("start_time", 0)), int32(a.Int("nice", 0))
		msg := fmt.Sprintf("set the nice value of pid %d to %d", pid, nice)
		if err := s.client.SetProcessPriority(ctx, pid, start, nice, s.callOptions()); err != nil {
			return Refused(msg, err)
		}
		return Result{Text: msg + ".", Structured: ActionResult{Done: true, Message: msg}}
	},
}

var defManageUnit = &Def{
	Name:        "manage_unit",
	Description: "Start, stop, restart or reload a systemd unit; polkit asks the user (usually for an administrator's password) every time.",
	Params: []Param{
		{Name: "unit", Kind: String, Required: true, Description: `a full unit name such as "cups.service"`},
		{Name: "verb", Kind: String, Required: true, Enum: []string{"start", "stop", "restart", "reload"}},
	},
	Output: ActionResult{}, Write: true, Hints: Hints{Destructive: true},
	run: func(ctx context.Context, s *Set, a *Args) Result {
		unit, verb := a.Str("unit", ""), a.Str("verb", "")
		if unit == "" {
			return Errorf("unit is required")
		}
		job, err := s.client.ManageUnit(ctx, unit, verb, s.callOptions())
		if err != nil {
			return Refused(verb+" "+unit, err)
		}
		msg := fmt.Sprintf("systemd queued %s of %s", verb, unit)
		return Result{Text: msg + ".", Structured: ActionResult{Done: true, Message: msg, Job: job}}
	},
}

// Refused explains a failed write in words a model can relay: what was
// refused, by whom, and how it could be allowed.
func Refused(what string, err error) Result {
	name, msg := api.ErrorName(err), api.ErrorMessage(err)
	switch name {
	case api.ErrNotAuthorized, api.ErrAccessDenied:
		return Errorf("Refused: polkit did not allow this user to %s (%s). Nothing was changed. To allow it, the user can act from a desktop session whose polkit agent asks for confirmation, or an administrator can grant the npllm polkit action with a rule in /etc/polkit-1/rules.d.", what, msg)
	case api.ErrInteractiveAuthorizationRequired:
		return Errorf("Refused: polkit requires the user to authenticate to %s, and no one could be asked (%s). Nothing was changed. The user can do it themselves with npllmctl in a terminal, or run the bridge with prompts allowed in a desktop session with a polkit agent.", what, msg)
	case api.ErrProcessChanged:
		return Errorf("Refused: the process changed (%s): the pid now belongs to another process, so nothing was sent. Look the process up again.", msg)
	case api.ErrNoSuchProcess:
		return Errorf("No such process: %s. Nothing was changed.", msg)
	case api.ErrInvalidArgument, api.ErrInvalidArgs:
		return Errorf("Invalid request: %s. Nothing was changed.", msg)
	}
	return DaemonError(what, err)
}

// DaemonError explains a failed read.
func DaemonError(what string, err error) Result {
	name, msg := api.ErrorName(err), api.ErrorMessage(err)
	switch name {
	case api.ErrServiceUnknown, api.ErrNameHasNoOwner:
		return Errorf("Could not %s: npllmd is not running on the system bus.", what)
	case api.ErrNotSupported:
		return Errorf("Could not %s: not supported on this machine: %s", what, msg)
	case api.ErrNoSuchProcess:
		return Errorf("Could not %s: %s", what, msg)
	case api.ErrInvalidArgument:
		return Errorf("Could not %s: invalid argument: %s", what, msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Errorf("Could not %s: npllmd did not answer in time.", what)
	}
	return Errorf("Could not %s: %s", what, msg)
}
