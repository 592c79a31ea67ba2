// Package msgid is the one table of npllm's journal MESSAGE_IDs (128-bit
// ids from `systemd-id128 new`), so that `journalctl MESSAGE_ID=…` finds
// every occurrence of an event whatever its wording, and `journalctl -x`
// shows its entry of systemd/npllm.catalog (a test keeps the two equal). A
// leaf: any package may log with them without importing the journald glue.
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

	// One id per alert kind, logged when npllmd raises the alert.
	AlertMemoryPressure = "66032d9485db4a08b959f774546e68d4"
	AlertMemoryLow      = "7206b0eb83a24e148b123fd3c4a8261e"
	AlertOOMKill        = "2164e6c53448407ea43823fdb61c2a64"
	AlertProcessCrash   = "191e350dccdf4d269c42627cf0687977"
	AlertUnitFailed     = "e81b5144a4b546ecb27dac199a977abd"
	AlertDiskFull       = "954d7ef1211d4f4a893d68c904174dac"
	AlertCPURunaway     = "3899324664de47e5b127cc4427cc0e9f"
	AlertAnomaly        = "a4b3ff65f65e4911aa864641343354e6"
	AlertTuningRegress  = "0bf856b6528d4f45b134e46cc84d4502"
	// AlertOther: an alert of a kind this table does not know yet.
	AlertOther = "aa3f2ff4b5b44acb886188a4f1cfeea9"
	// AlertCleared: an alert's condition ended.
	AlertCleared = "c64fb1443fe64a238037592fe144baba"
)

// alertIDs maps the alert kinds of dbus/api (kept literal: this package is
// a leaf) to their ids; a test checks it covers api.AlertKinds.
var alertIDs = map[string]string{
	"memory.pressure":  AlertMemoryPressure,
	"memory.low":       AlertMemoryLow,
	"oom.kill":         AlertOOMKill,
	"process.crash":    AlertProcessCrash,
	"unit.failed":      AlertUnitFailed,
	"disk.full":        AlertDiskFull,
	"cpu.runaway":      AlertCPURunaway,
	"process.anomaly":  AlertAnomaly,
	"tuning.regressed": AlertTuningRegress,
}

// ForAlert is the MESSAGE_ID of an alert kind (AlertOther if unknown).
func ForAlert(kind string) string {
	if id, ok := alertIDs[kind]; ok {
		return id
	}
	return AlertOther
}

// All lists every id of the table, for the catalog test.
func All() []string {
	return []string{StateMovedAside, MountHung, Audit, AuditSuppressed, AlertTuningRegress, AlertMemoryPressure, AlertMemoryLow, AlertOOMKill,
		AlertProcessCrash, AlertUnitFailed, AlertDiskFull, AlertCPURunaway, AlertAnomaly, AlertOther, AlertCleared}
}

// Attr is the MESSAGE_ID attribute for a slog record.
func Attr(id string) slog.Attr { return slog.String("message_id", id) }
