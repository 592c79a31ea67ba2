package sensors

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/npllm/npllm/bpf"
	"github.com/npllm/npllm/dbus/api"
)

// The "tcp" sensor reports TCP connections as tcp.connect, tcp.accept and
// tcp.close events (sock:inet_sock_set_state) and counts retransmits and
// resets in the kernel (tcp:tcp_retransmit_skb, tcp_send_reset,
// tcp_receive_reset); each close also carries that connection's own
// retransmits. tcp.accept has pid 0: the handshake completes in softirq,
// before any process accepts; the close names the process that closed it.
func init() {
	Register(Registration{
		Name:        "tcp",
		Description: "TCP connect/accept/close with bytes and duration; retransmit and reset counters",
		DefaultOn:   true,
		Variants:    bpfVariants(startTCPBPF),
	})
}

var tcpTracepoints = []string{"inet_sock_set_state", "tcp_retransmit_skb", "tcp_send_reset", "tcp_receive_reset"}

func startTCPBPF(env *Env, btf bool) (Running, error) {
	spec, err := bpf.LoadTCP()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	return startRingSensor(env, spec, btf, tcpTracepoints,
		[]string{"emitted", "dropped_kernel", "retransmits", "resets_sent", "resets_received"}, false, decodeTCPEvent)
}

// Offsets of struct npllm_tcp_event (bpf/events.h).
const (
	tcpType, tcpFamily, tcpSport, tcpDport, tcpPID, tcpUID = 0, 1, 2, 4, 8, 12
	tcpKtime, tcpDuration, tcpRx, tcpTx, tcpRetrans        = 16, 24, 32, 40, 48
	tcpSaddr, tcpDaddr, tcpComm, tcpSize                   = 56, 72, 88, 104
)

var tcpKinds = map[byte]string{1: api.KindTCPConnect, 2: api.KindTCPAccept, 3: api.KindTCPClose}

func decodeTCPEvent(b []byte) (Event, error) {
	if len(b) < tcpSize {
		return Event{}, fmt.Errorf("short tcp record: %d bytes", len(b))
	}
	kind, ok := tcpKinds[b[tcpType]]
	if !ok {
		return Event{}, fmt.Errorf("unknown tcp record type %d", b[tcpType])
	}
	le := binary.LittleEndian
	addr := func(off int) string {
		if b[tcpFamily] == 4 {
			return netip.AddrFrom4([4]byte(b[off : off+4])).String()
		}
		return netip.AddrFrom16([16]byte(b[off : off+16])).String()
	}
	family := "ipv6"
	if b[tcpFamily] == 4 {
		family = "ipv4"
	}
	pid, uid := le.Uint32(b[tcpPID:]), le.Uint32(b[tcpUID:])
	return Event{
		Kind: kind, TimeNS: bootToUnixNS(le.Uint64(b[tcpKtime:])), PID: pid, UID: uid, HasUID: pid != 0,
		Comm: cString(b[tcpComm : tcpComm+16]),
		TCP: &api.TCPConn{
			Family: family,
			Saddr:  addr(tcpSaddr), Sport: uint32(le.Uint16(b[tcpSport:])),
			Daddr: addr(tcpDaddr), Dport: uint32(le.Uint16(b[tcpDport:])),
			RxBytes: le.Uint64(b[tcpRx:]), TxBytes: le.Uint64(b[tcpTx:]),
			DurationNS: le.Uint64(b[tcpDuration:]), Retransmits: le.Uint32(b[tcpRetrans:]),
		},
	}, nil
}
