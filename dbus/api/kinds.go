package api

// Event kinds, as journaled, filtered by GetEvents and shown by clients.
const (
	KindProcessExec   = "process.exec"
	KindProcessFork   = "process.fork"
	KindProcessExit   = "process.exit"
	KindOOMKill       = "oom.kill"
	KindSignalSent    = "signal.sent"
	KindTCPConnect    = "tcp.connect"
	KindTCPAccept     = "tcp.accept"
	KindTCPClose      = "tcp.close"
	KindUnitFailed    = "unit.failed"
	KindUnitRestarted = "unit.restarted"

	// Tuning trials (npllmd's actions/tuning engine).
	KindTuningStarted   = "tuning.started"
	KindTuningRegressed = "tuning.regressed" // also an alert
	KindTuningReverted  = "tuning.reverted"
	KindTuningConfirmed = "tuning.confirmed"
	KindTuningEnded     = "tuning.ended"
)

// Alert kinds that are not also event kinds (an OOM kill and a failed unit
// are both an event and an alert of the same kind).
const (
	KindMemoryPressure = "memory.pressure"
	KindMemoryLow      = "memory.low"
	KindProcessCrash   = "process.crash"
	KindDiskFull       = "disk.full"
	KindCPURunaway     = "cpu.runaway"
	KindAnomaly        = "process.anomaly"
)

// EventKinds lists every event kind, for validation and completion.
var EventKinds = []string{
	KindProcessExec, KindProcessFork, KindProcessExit, KindOOMKill, KindSignalSent,
	KindTCPConnect, KindTCPAccept, KindTCPClose, KindUnitFailed, KindUnitRestarted,
	KindTuningStarted, KindTuningRegressed, KindTuningReverted, KindTuningConfirmed, KindTuningEnded,
}

// AlertKinds lists every alert kind.
var AlertKinds = []string{
	KindMemoryPressure, KindMemoryLow, KindOOMKill, KindProcessCrash, KindUnitFailed,
	KindDiskFull, KindCPURunaway, KindAnomaly, KindTuningRegressed,
}

// Severities of alerts; the Health property uses the last three as levels.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
	HealthOK         = "ok"
)

// Histograms GetHistogram accepts.
const (
	HistogramRunqLatency    = "runq_latency"
	HistogramBlockIOLatency = "block_io_latency"
)

// Histograms lists the names GetHistogram accepts.
var Histograms = []string{HistogramRunqLatency, HistogramBlockIOLatency}

// PrivateFields of an event: withheld by npllmd from callers that are
// neither root nor the event's owner (command lines, paths and addresses
// can carry secrets; a cgroup path, or its id, which names the same
// directory under /sys/fs/cgroup, tells another user's apps and units).
var PrivateFields = []string{"argv", "filename", "cmdline", "saddr", "daddr", "cgroup", "cgroup_id"}
