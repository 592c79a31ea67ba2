package polkit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

// Result of an authorization check.
type Result int

const (
	// Denied: polkit said no (or could not be asked: we fail closed).
	Denied Result = iota
	// Authorized: go ahead.
	Authorized
	// ChallengeRequired: polkit would ask the user, but the caller did not
	// allow interaction.
	ChallengeRequired
)

// Decision is polkit's answer with the reason to show the caller.
type Decision struct {
	Result Result
	Reason string
}

// Authority asks org.freedesktop.PolicyKit1 on the bus npllmd is on.
type Authority struct {
	conn *dbus.Conn
	// Timeout bounds one check; an interactive one waits for the user.
	Timeout            time.Duration
	InteractiveTimeout time.Duration
}

// NewAuthority returns a client of polkitd on conn.
func NewAuthority(conn *dbus.Conn) *Authority {
	return &Authority{conn: conn, Timeout: 25 * time.Second, InteractiveTimeout: 5 * time.Minute}
}

const allowUserInteraction = 0x1

type subject struct {
	Kind    string
	Details map[string]dbus.Variant
}

type authResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// Check asks whether the caller (its unique bus name: polkit resolves uid,
// pid and session itself, which avoids the pid-reuse race of unix-process
// subjects) may perform action. details are shown in prompts ($(key) in
// the .policy messages) and to admins' .rules (action.lookup("key")).
// Any failure to ask is a denial.
func (a *Authority) Check(ctx context.Context, sender, action string, details map[string]string, interactive bool) Decision {
	if a == nil || a.conn == nil {
		return Decision{Denied, "polkit is not available, so npllmd refuses privileged actions"}
	}
	if sender == "" {
		return Decision{Denied, "the call has no sender to authorize"}
	}
	var flags uint32
	timeout := a.Timeout
	if interactive {
		flags |= allowUserInteraction
		timeout = a.InteractiveTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	subj := subject{Kind: "system-bus-name", Details: map[string]dbus.Variant{"name": dbus.MakeVariant(sender)}}
	if details == nil {
		details = map[string]string{}
	}
	var res authResult
	obj := a.conn.Object("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")
	err := obj.CallWithContext(ctx, "org.freedesktop.PolicyKit1.Authority.CheckAuthorization", 0,
		subj, action, details, flags, "").Store(&res)
	if err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" {
			return Decision{Denied, "polkit is not running, so npllmd refuses privileged actions (install and start polkitd)"}
		}
		return Decision{Denied, fmt.Sprintf("could not ask polkit, so npllmd refuses: %v", err)}
	}
	switch {
	case res.IsAuthorized:
		return Decision{Authorized, ""}
	case res.IsChallenge && !interactive:
		return Decision{ChallengeRequired, fmt.Sprintf("%s needs authentication; call again allowing interactive authorization (npllmctl does)", action)}
	case res.Details["polkit.dismissed"] == "true":
		return Decision{Denied, fmt.Sprintf("authentication for %s was dismissed", action)}
	default:
		return Decision{Denied, fmt.Sprintf("polkit does not allow %s for this caller", action)}
	}
}
