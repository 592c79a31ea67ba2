package systemd

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/coreos/go-systemd/v22/journal"
)

// Logger returns a slog logger that writes to the journal with every
// attribute as a field of its own (SENSOR=process, CALLER_UID=1000, …)
// when stderr is connected to the journal (JOURNAL_STREAM), and plain text
// on stderr otherwise.
func Logger(identifier string, level slog.Leveler) *slog.Logger {
	if ok, err := journal.StderrIsJournalStream(); err == nil && ok && journal.Enabled() {
		return slog.New(&JournalHandler{Identifier: identifier, Level: level})
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// JournalHandler is a slog.Handler for the systemd journal.
type JournalHandler struct {
	Identifier string
	Level      slog.Leveler
	attrs      []slog.Attr
	group      string
}

func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.Level != nil {
		min = h.Level.Level()
	}
	return l >= min
}

func (h *JournalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": h.Identifier}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				add(prefix+a.Key+"_", g)
			}
			return
		}
		if name := FieldName(prefix + a.Key); name != "" {
			vars[name] = a.Value.String()
		}
	}
	for _, a := range h.attrs {
		add(h.group, a)
	}
	// The message alone is what journalctl shows; a short summary of the
	// record's own fields keeps plain "journalctl -u" readable too.
	var parts []string
	r.Attrs(func(a slog.Attr) bool {
		add(h.group, a)
		parts = append(parts, a.Key+"="+summaryValue(a.Value))
		return true
	})
	return journal.Send(summary(r.Message, parts), priority(r.Level), vars)
}

func summary(msg string, parts []string) string {
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, " ") + ")"
	}
	return msg
}

// summaryValue quotes a value as slog's text handler does (spaces, quotes,
// "=", control characters): a process name such as "x result=ok" or one
// with a newline cannot pass for another field or another line.
func summaryValue(v slog.Value) string {
	s := v.Resolve().String()
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == ' ' || r == '=' || r == '"' || r == '(' || r == ')' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

func (h *JournalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *JournalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "_"
	return &c
}

// FieldName turns an attribute key into a journal field name: upper case
// letters, digits and underscores, not starting with an underscore (those
// are the journal's own) or a digit; "" when nothing is left.
func FieldName(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), "_0123456789")
	if len(s) > 64 {
		s = s[:64]
	}
	switch s {
	case "", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC":
		if s != "" {
			return "NPLLM_" + s
		}
	}
	return s
}
