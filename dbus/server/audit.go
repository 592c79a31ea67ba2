package server

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/npllm/npllm/systemd/msgid"
)

// auditKeys are the only keys an audit record carries after its fixed
// header (method, sender, caller_uid, caller_pid, result, reason): caller
// data is a value, never a key, so it cannot become a log or journal field.
var auditKeys = map[string]bool{
	"action": true, "interactive": true, "automated": true,
	"pid": true, "start_time": true, "target_uid": true, "comm": true,
	"signal": true, "nice": true, "io_class": true, "io_level": true,
	"unit": true, "verb": true, "job": true, "sensor": true, "on": true,
	"program": true, "settings": true, "changes": true, "trial": true,
}

// maxAuditValue is how much of a caller-supplied string an audit record
// keeps.
const maxAuditValue = 256

// Failed privileged calls are logged at most deniedBurst times per
// deniedWindow per caller uid; the rest are counted (a line with the count
// when the uid's window rolls, and deniedNotLogged in the Sensors row).
const (
	deniedBurst  = 10
	deniedWindow = time.Minute
	maxAuditUIDs = 1024
)

// note adds a field to the call's audit record. Strings are quoted (no
// control character reaches a log line) and cut to maxAuditValue bytes.
func (c *call) note(key string, value any) {
	if !auditKeys[key] {
		panic("audit key " + strconv.Quote(key) + " is not in auditKeys") // a programming error; end() recovers it
	}
	if s, ok := value.(string); ok && key != "action" { // actions are our own constants
		value = auditString(s)
	}
	c.audit = append(c.audit, key, value)
}

func auditString(s string) string {
	cut := len(s) > maxAuditValue
	if cut {
		s = s[:maxAuditValue]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
	}
	q := strconv.Quote(s)
	if cut {
		q += "…"
	}
	return q
}

// auditLog writes audit records and rate-limits failed calls per uid.
type auditLog struct {
	mu              sync.Mutex
	uids            map[uint32]*denials
	deniedNotLogged atomic.Uint64
}

type denials struct {
	start      time.Time
	logged     int
	suppressed uint64
}

func (a *auditLog) write(log *slog.Logger, uid uint32, failed bool, attrs []any) {
	if failed && !a.allow(log, uid, time.Now()) {
		return
	}
	log.Info("audit", append([]any{msgid.Attr(msgid.Audit)}, attrs...)...)
}

// allow says whether a failed call of uid may be logged now.
func (a *auditLog) allow(log *slog.Logger, uid uint32, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.uids == nil || len(a.uids) >= maxAuditUIDs {
		a.uids = map[uint32]*denials{}
	}
	d := a.uids[uid]
	if d == nil {
		d = &denials{start: now}
		a.uids[uid] = d
	}
	if now.Sub(d.start) >= deniedWindow {
		if d.suppressed > 0 {
			var who any = uid
			if uid == unknownCaller {
				who = "unknown"
			}
			log.Warn("audit: failed privileged calls not logged one by one", msgid.Attr(msgid.AuditSuppressed),
				"caller_uid", who, "count", d.suppressed, "window_s", int(deniedWindow.Seconds()))
		}
		*d = denials{start: now}
	}
	if d.logged >= deniedBurst {
		d.suppressed++
		a.deniedNotLogged.Add(1)
		return false
	}
	d.logged++
	return true
}
