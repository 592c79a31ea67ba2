package sensors

import (
	"encoding/binary"
	"fmt"

	"github.com/npllm/npllm/bpf"
	"github.com/npllm/npllm/dbus/api"
)

// The "signal" sensor reports who sent KILL, TERM, SEGV, ABRT or BUS to
// whom (signal:signal_generate, filtered in the kernel) as signal.sent
// events. Without eBPF there is no fallback: the exit events still carry
// the signal that ended a process.
func init() {
	Register(Registration{
		Name:        "signal",
		Description: "fatal signals sent (KILL, TERM, SEGV, ABRT, BUS): sender, target, signal",
		DefaultOn:   true,
		Variants:    bpfVariants(startSignalBPF),
	})
}

func startSignalBPF(env *Env, btf bool) (Running, error) {
	spec, err := bpf.LoadSignal()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	return startRingSensor(env, spec, btf, []string{"signal_generate"}, []string{"emitted", "dropped_kernel"}, false, decodeSignalEvent)
}

// Offsets of struct npllm_signal_event (bpf/events.h).
const (
	sigSenderPID, sigSenderUID, sigTargetPID, sigTargetUID  = 0, 4, 8, 12
	sigSignal, sigCode, sigResult, sigKtime, sigTargetStart = 16, 20, 24, 32, 40
	sigSenderComm, sigTargetComm, sigSize                   = 48, 64, 80
)

func decodeSignalEvent(b []byte) (Event, error) {
	if len(b) < sigSize {
		return Event{}, fmt.Errorf("short signal record: %d bytes", len(b))
	}
	le := binary.LittleEndian
	target, targetUID := le.Uint32(b[sigTargetPID:]), le.Uint32(b[sigTargetUID:])
	// The event belongs to the target's owner (filters, privacy).
	return Event{
		Kind: api.KindSignalSent, TimeNS: bootToUnixNS(le.Uint64(b[sigKtime:])), PID: target, UID: targetUID, HasUID: true,
		Comm:      cString(b[sigTargetComm : sigTargetComm+16]),
		StartTime: le.Uint64(b[sigTargetStart:]) / nsPerTick,
		Signal: &api.SignalSent{
			SenderPID: le.Uint32(b[sigSenderPID:]), SenderUID: le.Uint32(b[sigSenderUID:]),
			SenderComm: cString(b[sigSenderComm : sigSenderComm+16]),
			Signal:     int32(le.Uint32(b[sigSignal:])),
			Code:       int32(le.Uint32(b[sigCode:])),
			Result:     int32(le.Uint32(b[sigResult:])),
		},
	}, nil
}
