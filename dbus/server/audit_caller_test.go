package server_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/api"
)

// A privileged call whose sender is gone before npllmd asks the bus who it
// was used to be audited as caller_uid=0 caller_pid=0, charged to root's
// rate limit (issue 12 follow-up). Now such a call is refused before
// anything else, and no record ever says uid 0 for a user's call.
func TestCallFromVanishedSenderIsNeverAuditedAsRoot(t *testing.T) {
	b, d, _ := startDaemon(t)
	alice, _ := users(t)
	if res := asUser(t, b, alice, "call-and-hang-up", 12); res.Error != "" {
		t.Fatalf("helper: %s %s", res.Error, res.Message)
	}
	// A call from a live connection is still audited, as alice.
	res := asUser(t, b, alice, "act", map[string]any{"method": "SignalProcess", "pid": 1, "start": 0, "value": "BOGUS"})
	if res.Error != api.ErrInvalidArgument {
		t.Fatalf("SignalProcess BOGUS as alice: %q %s, want InvalidArgument", res.Error, res.Message)
	}
	uid := strconv.Itoa(int(alice.UID))
	var recs []map[string][]string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		recs = logRecords(d.Log(), "audit")
		if n := len(recs); n > 0 && recs[n-1]["caller_uid"][0] == uid {
			break
		}
	}
	if len(recs) == 0 {
		t.Fatalf("no audit record:\n%s", d.Log())
	}
	for _, r := range recs {
		if r["caller_uid"][0] != uid || r["caller_pid"][0] == "0" {
			t.Errorf("audit record with caller_uid=%q caller_pid=%q, want %s and a pid: %v", r["caller_uid"], r["caller_pid"], uid, r)
		}
	}
}
