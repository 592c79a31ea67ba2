// Package actions performs npllmd's privileged methods: signalling,
// renicing and ionicing a process through a pidfd, and asking systemd to
// start/stop/restart/reload a unit. Every argument is validated here before
// any authorization is asked or anything is done.
package actions

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Sentinel errors; the D-Bus layer maps each to one named error.
var (
	ErrInvalidArgument = errors.New("invalid argument")
	ErrNoSuchProcess   = errors.New("no such process")
	ErrProcessChanged  = errors.New("process changed")
	ErrNotSupported    = errors.New("not supported")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// Signals that may be sent, by name.
var Signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM,
	"KILL": syscall.SIGKILL,
	"INT":  syscall.SIGINT,
	"HUP":  syscall.SIGHUP,
	"STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT,
}

// ParseSignal accepts "TERM" or "SIGTERM" (any case) for the allowed signals.
func ParseSignal(name string) (syscall.Signal, string, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	sig, ok := Signals[n]
	if !ok {
		return 0, "", invalid("signal %q is not one of TERM, KILL, INT, HUP, STOP, CONT", name)
	}
	return sig, n, nil
}

// ValidateNice checks a nice value.
func ValidateNice(nice int32) error {
	if nice < -20 || nice > 19 {
		return invalid("nice %d is outside [-20, 19]", nice)
	}
	return nil
}

// I/O scheduling classes of ioprio_set(2).
var IOClasses = map[string]int{"realtime": ioClassRealtime, "best-effort": ioClassBestEffort, "idle": ioClassIdle}

// ValidateIOPriority checks an I/O class and level.
func ValidateIOPriority(class string, level int32) (int, error) {
	c, ok := IOClasses[class]
	if !ok {
		return 0, invalid("I/O class %q is not one of realtime, best-effort, idle", class)
	}
	if level < 0 || level > 7 {
		return 0, invalid("I/O priority level %d is outside [0, 7]", level)
	}
	return c, nil
}

// Verbs of ManageUnit.
var Verbs = []string{"start", "stop", "restart", "reload"}

// ValidateVerb checks a ManageUnit verb.
func ValidateVerb(verb string) error {
	for _, v := range Verbs {
		if v == verb {
			return nil
		}
	}
	return invalid("verb %q is not one of start, stop, restart, reload", verb)
}

// unitTypes are the suffixes systemd accepts (systemd's unit_type_table).
var unitTypes = []string{"service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"}

const unitNameMax = 255

// ValidateUnitName applies systemd's unit_name_is_valid() rules: at most
// 255 bytes; a prefix of [A-Za-z0-9:_.\-] characters; optionally
// "@instance" (an instance may also hold '@'; "prefix@.type" is a template,
// which cannot be started and is refused here); a known ".type" suffix.
func ValidateUnitName(name string) error {
	if name == "" {
		return invalid("unit name is empty")
	}
	if len(name) > unitNameMax {
		return invalid("unit name is longer than %d bytes", unitNameMax)
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return invalid("unit name %q has no type suffix such as .service", name)
	}
	typ := name[dot+1:]
	known := false
	for _, t := range unitTypes {
		known = known || t == typ
	}
	if !known {
		return invalid("unit name %q has unknown type %q", name, typ)
	}
	stem := name[:dot]
	prefix, instance, templated := strings.Cut(stem, "@")
	if prefix == "" {
		return invalid("unit name %q has an empty prefix", name)
	}
	if !validUnitChars(prefix, false) {
		return invalid("unit name %q has characters systemd does not allow (only A-Z a-z 0-9 : _ . - and \\)", name)
	}
	if templated {
		if instance == "" {
			return invalid("unit name %q is a template; name an instance (foo@bar.service)", name)
		}
		if !validUnitChars(instance, true) {
			return invalid("unit instance in %q has characters systemd does not allow", name)
		}
	}
	return nil
}

func validUnitChars(s string, instance bool) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == ':' || r == '_' || r == '.' || r == '-' || r == '\\':
		case instance && r == '@':
		default:
			return false
		}
	}
	return true
}
