// Package msgid is the one table of npllm's journal MESSAGE_IDs (128-bit
// ids from `systemd-id128 new`), so that `journalctl MESSAGE_ID=…` finds
// every occurrence of an event whatever its wording. A leaf: any package
// may log with them without importing the journald glue.
package msgid

import "log/slog"

const (
	// StateMovedAside: a damaged or outdated state file (baselines.json,
	// …) was renamed aside and npllmd went on with fresh state.
	StateMovedAside = "e197df4bbbb34bd2b506ccf015af8851"
	// MountHung: statfs on a mount did not answer in time; the mount shows
	// as unknown until it answers again.
	MountHung = "4e64f350e225480090e71516dfd8ac70"
	// Audit: one privileged call, its caller (from the bus) and its result.
	Audit = "d5efb60fb46c4c8c9981a08ea3aa8b0d"
	// AuditSuppressed: failed privileged calls of one uid beyond the log's
	// rate, counted instead of logged one by one.
	AuditSuppressed = "fa35bdd5b10e4e67b525bf11b3b3efcf"
)

// Attr is the MESSAGE_ID attribute for a slog record.
func Attr(id string) slog.Attr { return slog.String("message_id", id) }
