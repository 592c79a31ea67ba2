package sensors

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/bpf"
)

// The "syscalls" sensor counts every syscall of every process (raw_syscalls
// sys_enter/sys_exit): calls, errors by errno and time spent, per process
// and syscall, in kernel maps read by GetSyscallStats. It costs on every
// syscall of the machine, so it is off unless switched on (SetSensorEnabled
// or npllmd --enable-sensor syscalls); counts start from that moment.
func init() {
	Register(Registration{
		Name:        "syscalls",
		Description: "per-process syscall counts, errors and latency (off by default: costs on every syscall)",
		DefaultOn:   false,
		Variants:    bpfVariants(startSyscalls),
	})
}

type syscallSensor struct {
	obj *bpfObject
}

func startSyscalls(env *Env, btf bool) (Running, error) {
	spec, err := bpf.LoadSyscalls()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	obj, err := loadBPF(spec, btf, []string{"sys_enter", "sys_exit"}, []string{"counted", "map_full"})
	if err != nil {
		return nil, err
	}
	return &syscallSensor{obj: obj}, nil
}

// SyscallStat is one process × syscall row.
type SyscallStat struct {
	PID     uint32
	UID     uint32
	Comm    string
	Nr      uint32
	Syscall string
	Count   uint64
	Errors  uint64
	TotalNS uint64
	Errnos  map[string]uint64 // "ENOENT" → count
}

// SyscallQuery selects and orders rows.
type SyscallQuery struct {
	PID     uint32 // 0: every process
	Syscall string // "": every syscall
	SortBy  string // "count" (default), "errors" or "time"
	Limit   int
}

// SyscallSortKeys are the accepted SortBy values.
var SyscallSortKeys = []string{"count", "errors", "time"}

// ErrUnknownSyscall is returned for a syscall name this build does not know.
var ErrUnknownSyscall = errors.New("unknown syscall")

// SyscallStatsReader is implemented by the running syscalls sensor.
type SyscallStatsReader interface {
	SyscallStats(SyscallQuery) ([]SyscallStat, error)
}

// SyscallName names a syscall number ("syscall_N" when unknown).
func SyscallName(nr uint32) string {
	if n, ok := syscallNames[nr]; ok {
		return n
	}
	return "syscall_" + strconv.FormatUint(uint64(nr), 10)
}

func syscallNumber(name string) (uint32, bool) {
	for nr, n := range syscallNames {
		if n == name {
			return nr, true
		}
	}
	return 0, false
}

func (s *syscallSensor) SyscallStats(q SyscallQuery) ([]SyscallStat, error) {
	var wantNr uint32
	if q.Syscall != "" {
		nr, ok := syscallNumber(q.Syscall)
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownSyscall, q.Syscall)
		}
		wantNr = nr
	}
	var (
		key  bpf.SyscallsNpllmSyscallKey
		val  bpf.SyscallsNpllmSyscallStats
		rows []SyscallStat
	)
	it := s.obj.coll.Maps["stats"].Iterate()
	for it.Next(&key, &val) {
		if (q.PID != 0 && key.Tgid != q.PID) || (q.Syscall != "" && key.Nr != wantNr) {
			continue
		}
		comm := make([]byte, len(val.Comm))
		for i, c := range val.Comm {
			comm[i] = byte(c)
		}
		rows = append(rows, SyscallStat{
			PID: key.Tgid, UID: val.Uid, Comm: cString(comm), Nr: key.Nr, Syscall: SyscallName(key.Nr),
			Count: val.Count, Errors: val.Errors, TotalNS: val.TotalNs,
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read syscall stats: %w", err)
	}
	sortBy := func(r *SyscallStat) uint64 { return r.Count }
	switch q.SortBy {
	case "errors":
		sortBy = func(r *SyscallStat) uint64 { return r.Errors }
	case "time":
		sortBy = func(r *SyscallStat) uint64 { return r.TotalNS }
	}
	slices.SortFunc(rows, func(a, b SyscallStat) int {
		if x, y := sortBy(&a), sortBy(&b); x != y {
			if x > y {
				return -1
			}
			return 1
		}
		if a.PID != b.PID {
			return int(a.PID) - int(b.PID)
		}
		return int(a.Nr) - int(b.Nr)
	})
	if q.Limit > 0 && len(rows) > q.Limit {
		rows = rows[:q.Limit]
	}
	// Errnos only for the rows kept.
	index := map[bpf.SyscallsNpllmSyscallKey]int{}
	for i, r := range rows {
		if r.Errors > 0 {
			index[bpf.SyscallsNpllmSyscallKey{Tgid: r.PID, Nr: r.Nr}] = i
		}
	}
	if len(index) > 0 {
		var ek bpf.SyscallsNpllmSyscallErrnoKey
		var n uint64
		it := s.obj.coll.Maps["errnos"].Iterate()
		for it.Next(&ek, &n) {
			i, ok := index[bpf.SyscallsNpllmSyscallKey{Tgid: ek.Tgid, Nr: ek.Nr}]
			if !ok {
				continue
			}
			if rows[i].Errnos == nil {
				rows[i].Errnos = map[string]uint64{}
			}
			rows[i].Errnos[errnoName(ek.Err)] += n
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read syscall errnos: %w", err)
		}
	}
	return rows, nil
}

func errnoName(e uint32) string {
	if n := unix.ErrnoName(unix.Errno(e)); n != "" {
		return n
	}
	return "E" + strconv.FormatUint(uint64(e), 10)
}

func (s *syscallSensor) Counters() map[string]uint64 {
	out := map[string]uint64{}
	s.obj.addCounters(out)
	return out
}

func (s *syscallSensor) Close() error {
	s.obj.Close()
	return nil
}
