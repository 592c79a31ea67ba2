package server

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/npllm/npllm/polkit"
	"github.com/npllm/npllm/systemd"
)

// Under journald every slog key becomes a field (systemd.FieldName): the
// audit's fixed keys must map to distinct fields of our own, never to one
// the journal or its readers trust (OBJECT_*, _*, MESSAGE, PRIORITY, …).
func TestAuditKeysBecomeDistinctJournalFieldsOfOurOwn(t *testing.T) {
	keys := []string{"method", "sender", "caller_uid", "caller_pid", "result", "reason", "message_id"}
	for k := range auditKeys {
		keys = append(keys, k)
	}
	seen := map[string]string{}
	for _, k := range keys {
		f := systemd.FieldName(k)
		if f == "" || strings.HasPrefix(f, "_") || strings.HasPrefix(f, "OBJECT_") || strings.HasPrefix(f, "CODE_") ||
			strings.HasPrefix(f, "SYSLOG_") || f == "MESSAGE" || f == "PRIORITY" {
			t.Errorf("audit key %q becomes journal field %q", k, f)
		}
		if other, dup := seen[f]; dup {
			t.Errorf("audit keys %q and %q both become %s", k, other, f)
		}
		seen[f] = k
	}
}

func TestAuditValuesAreQuotedAndCut(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	got := auditString(long)
	if !strings.HasPrefix(got, `"`) || !strings.HasSuffix(got, `"…`) || len(got) > maxAuditValue+8 || !utf8.ValidString(got) {
		t.Errorf("auditString(600 bytes) = %d bytes %q…", len(got), got[:20])
	}
	if got := auditString("a\nmethod=Forged result=ok\x1b[2J"); strings.ContainsAny(got, "\n\x1b") {
		t.Errorf("control characters survive: %q", got)
	}
	c := &call{}
	defer func() {
		if recover() == nil {
			t.Error("note accepted a key outside auditKeys")
		}
	}()
	c.note("caller_uid", "0")
}

func TestServerRefusesToStartWhenAnActionHasNoAutomatedCounterpart(t *testing.T) {
	saved := polkit.Automated[polkit.ActionManageUnits]
	delete(polkit.Automated, polkit.ActionManageUnits)
	defer func() { polkit.Automated[polkit.ActionManageUnits] = saved }()
	s := &Server{}
	if err := s.checkTables(); err == nil || !strings.Contains(err.Error(), "no automated counterpart") {
		t.Errorf("checkTables = %v", err)
	}
	if got := polkit.ForCall(polkit.ActionManageUnits, true); got != polkit.ActionAgentManageAnyProcess {
		t.Errorf("an action without a counterpart maps to %s for an automated call, want the admin's", got)
	}
}
