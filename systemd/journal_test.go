package systemd

import (
	"log/slog"
	"strings"
	"testing"
)

// journalctl shows MESSAGE: a process name in its summary must not pass
// for another field or start another line (issue 12 follow-up). The
// fields themselves are separate journal fields and keep the raw value.
// (No journald runs here, so the summary is tested without sending.)
func TestJournalSummaryQuotesHostileValues(t *testing.T) {
	for comm, want := range map[string]string{
		"firefox":            "comm=firefox",
		"x result=ok":        `comm="x result=ok"`,
		"a\nFAKE line":       `comm="a\nFAKE line"`,
		"b) (caller_uid=0":   `comm="b) (caller_uid=0"`,
		"":                   `comm=""`,
		"\x1b[31mred\x1b[0m": `comm="\x1b[31mred\x1b[0m"`,
	} {
		got := summary("process seen", []string{"comm=" + summaryValue(slog.StringValue(comm))})
		if got != "process seen ("+want+")" {
			t.Errorf("comm %q: MESSAGE %q, want %q", comm, got, "process seen ("+want+")")
		}
		if strings.ContainsAny(got, "\n\x1b") {
			t.Errorf("comm %q: control character in MESSAGE %q", comm, got)
		}
	}
	if got := summaryValue(slog.IntValue(42)); got != "42" {
		t.Errorf("int: %q", got)
	}
}
