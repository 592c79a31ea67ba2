package api

import "github.com/godbus/dbus/v5"

// SensorStatus is one element of the Sensors property, a(sssa{sv}): only
// what changes rarely (descriptions and counters are in GetSensorDetails).
type SensorStatus struct {
	Name    string
	Variant string
	State   string
	Details map[string]dbus.Variant // skipped, reason, fix
}

// Process is one element of GetProcesses, or GetProcess's reply.
type Process struct {
	PID          uint32  `json:"pid"`
	PPID         uint32  `json:"ppid"`
	UID          uint32  `json:"uid"`
	User         string  `json:"user"`
	Comm         string  `json:"comm"`
	State        string  `json:"state"`
	StartTime    uint64  `json:"start_time"` // clock ticks since boot: identifies the process with its pid
	Nice         int32   `json:"nice"`
	Threads      uint32  `json:"threads"`
	RSSBytes     uint64  `json:"rss_bytes"`
	CPUPercent   float64 `json:"cpu_percent"`
	IOReadBytes  uint64  `json:"io_read_bytes"`
	IOWriteBytes uint64  `json:"io_write_bytes"`
	// IOWithheld: another user's process, whose I/O figures only root sees
	// (io_read_bytes and io_write_bytes are then absent: 0 here).
	IOWithheld   bool `json:"io_withheld,omitempty"`
	KernelThread bool `json:"kernel_thread"`
	// Cmdline is nil when withheld: only root and the owner see it.
	Cmdline  *string   `json:"cmdline,omitempty"`
	Cgroup   string    `json:"cgroup,omitempty"`
	Unit     string    `json:"unit,omitempty"`
	Baseline *Baseline `json:"baseline,omitempty"` // GetProcess only, once learned
}

// Encode is the process as a{sv}.
func (p *Process) Encode() map[string]dbus.Variant { return encodeRecord(p) }

// DecodeProcess reads a process, checking every type.
func DecodeProcess(m map[string]dbus.Variant) (Process, error) {
	var p Process
	return p, decodeRecord(m, &p, "process")
}

// Baseline is what npllmd learned is normal for a program (GetBaseline).
type Baseline struct {
	Program       string `json:"program"`
	Runs          uint64 `json:"runs"`
	Crashes       uint64 `json:"crashes"`
	RSSP50Bytes   uint64 `json:"rss_p50_bytes"`
	RSSP95Bytes   uint64 `json:"rss_p95_bytes"`
	RSSEWMABytes  uint64 `json:"rss_ewma_bytes"`
	CPUP95NS      uint64 `json:"cpu_p95_ns"`
	LifetimeP95NS uint64 `json:"lifetime_p95_ns"`
	LastSeenNS    uint64 `json:"last_seen_ns"`
}

// Encode is the baseline as a{sv}.
func (b *Baseline) Encode() map[string]dbus.Variant { return encodeRecord(b) }

// DecodeBaseline reads a baseline, checking every type.
func DecodeBaseline(m map[string]dbus.Variant) (Baseline, error) {
	var b Baseline
	return b, decodeRecord(m, &b, "baseline")
}

// Histogram is GetHistogram's reply: log2 buckets of a latency.
type Histogram struct {
	Name            string   `json:"name"`
	Unit            string   `json:"unit"`
	Series          string   `json:"series"`
	AvailableSeries []string `json:"available_series"`
	BucketLow       []uint64 `json:"bucket_low"`
	BucketHigh      []uint64 `json:"bucket_high"`
	Counts          []uint64 `json:"counts"`
	Total           uint64   `json:"total"`
	Missed          uint64   `json:"missed"`
	P50             uint64   `json:"p50"`
	P90             uint64   `json:"p90"`
	P99             uint64   `json:"p99"`
}

// Encode is the histogram as a{sv}.
func (h *Histogram) Encode() map[string]dbus.Variant { return encodeRecord(h) }

// DecodeHistogram reads a histogram, checking every type.
func DecodeHistogram(m map[string]dbus.Variant) (Histogram, error) {
	var h Histogram
	return h, decodeRecord(m, &h, "histogram")
}

// SyscallStat is one element of GetSyscallStats: a process × syscall.
type SyscallStat struct {
	PID     uint32            `json:"pid"`
	UID     uint32            `json:"uid"`
	Comm    string            `json:"comm"`
	Syscall string            `json:"syscall"`
	Nr      uint32            `json:"nr"`
	Count   uint64            `json:"count"`
	Errors  uint64            `json:"errors"`
	TotalNS uint64            `json:"total_ns"`
	AvgNS   uint64            `json:"avg_ns"`
	Errnos  map[string]uint64 `json:"errnos"` // "ENOENT" → count
}

// Encode is the row as a{sv}.
func (s *SyscallStat) Encode() map[string]dbus.Variant {
	if s.Errnos == nil {
		s.Errnos = map[string]uint64{}
	}
	return encodeRecord(s)
}

// DecodeSyscallStat reads a row, checking every type.
func DecodeSyscallStat(m map[string]dbus.Variant) (SyscallStat, error) {
	var s SyscallStat
	return s, decodeRecord(m, &s, "syscall stat")
}

// Unit is GetUnit's reply: a systemd unit's state.
type Unit struct {
	Unit                   string `json:"unit"`
	Description            string `json:"description"`
	LoadState              string `json:"load_state"`
	ActiveState            string `json:"active_state"`
	SubState               string `json:"sub_state"`
	Result                 string `json:"result"`
	Restarts               uint32 `json:"restarts"`
	MainPID                uint32 `json:"main_pid"`
	ExecMainStatus         int32  `json:"exec_main_status"`
	ActiveEnterTimestampUS uint64 `json:"active_enter_timestamp_us"`
}

// Encode is the unit as a{sv}.
func (u *Unit) Encode() map[string]dbus.Variant { return encodeRecord(u) }

// DecodeUnit reads a unit, checking every type.
func DecodeUnit(m map[string]dbus.Variant) (Unit, error) {
	var u Unit
	return u, decodeRecord(m, &u, "unit")
}
