//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// TCP connection lifecycle (sock:inet_sock_set_state) and retransmit/reset
// counters (tcp:tcp_retransmit_skb, tcp_send_reset, tcp_receive_reset).
//
// A connection is remembered from SYN_SENT (connect, in the caller's
// context: pid and comm are right) or SYN_RECV (a passive open, in softirq:
// no process is known yet) until CLOSE, when one record carries its
// duration, bytes and retransmits. A passive connection learns its process
// when the application closes it (FIN_WAIT1/LAST_ACK run in its context).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

// Makes the record type part of the BTF, so bpf2go emits its Go twin (used
// by the layout test).
const struct npllm_tcp_event *unused_npllm_tcp_event __attribute__((unused));

#define WAKEUP_BYTES (64 * 1024)
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} events SEC(".maps");

// [0] emitted, [1] dropped in kernel, [2] retransmits, [3] resets sent,
// [4] resets received.
NPLLM_COUNTERS(5)

struct conn {
	__u64 start_ns;
	__u32 pid;
	__u32 uid;
	__u32 retransmits;
	__u8 active;      // we sent the SYN (connect)
	__u8 established; // the tuple below is filled
	__u8 family;
	__u8 _pad;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
};

// LRU: a connection whose CLOSE we never see cannot leak an entry forever.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

#define SEND_SHUTDOWN 2

static __always_inline void own_context(struct conn *c)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	c->pid = pid_tgid >> 32;
	c->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(c->comm, sizeof(c->comm));
}

// The 4-tuple is read once established: a connecting socket gets its local
// port only after SYN_SENT, and by CLOSE the port is released again.
static __always_inline void fill_tuple(const struct sock *sk, struct conn *c)
{
	c->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET) {
		c->family = 4;
		bpf_core_read(c->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(c->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		c->family = 6;
		bpf_core_read(c->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(c->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	c->established = 1;
}

// Payload bytes, without the sequence numbers SYN and FIN occupy:
// bytes_acked counts our SYN (when we connected) and our FIN once acked;
// bytes_received counts their FIN (SOCK_DONE says it arrived).
static __always_inline void payload_bytes(const struct sock *sk, struct conn *c, __u64 *rx, __u64 *tx)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked), rcvd = BPF_CORE_READ(tp, bytes_received);
	if (c->active && acked > 0)
		acked--;
	if ((BPF_CORE_READ(sk, sk_shutdown) & SEND_SHUTDOWN) &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq) && acked > 0)
		acked--;
	unsigned long done = 1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE);
	if ((BPF_CORE_READ(sk, __sk_common.skc_flags) & done) && rcvd > 0)
		rcvd--;
	*rx = rcvd;
	*tx = acked;
}

static __always_inline void emit(const struct sock *sk, struct conn *c, __u8 type)
{
	struct npllm_tcp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_add(CNT_DROPPED_KERNEL, 1);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	__u64 now = bpf_ktime_get_boot_ns();
	e->type = type;
	e->pid = c->pid;
	e->uid = c->uid;
	__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
	e->ktime_ns = now;
	e->duration_ns = now - c->start_ns;
	e->retransmits = c->retransmits;
	e->family = c->family;
	e->sport = c->sport;
	e->dport = c->dport;
	__builtin_memcpy(e->saddr, c->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, c->daddr, sizeof(e->daddr));
	if (type == NPLLM_TCP_CLOSE)
		payload_bytes(sk, c, &e->rx_bytes, &e->tx_bytes);
	long flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	count_add(CNT_EMITTED, 1);
}

static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u64 key = (__u64)sk;
	struct conn *c;
	switch (newstate) {
	case TCP_SYN_SENT: {
		struct conn fresh = {.start_ns = bpf_ktime_get_boot_ns(), .active = 1};
		own_context(&fresh);
		if (fresh.pid == self_tgid)
			return 0;
		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
		return 0;
	}
	case TCP_SYN_RECV: {
		struct conn fresh = {.start_ns = bpf_ktime_get_boot_ns()};
		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
		return 0;
	}
	case TCP_ESTABLISHED:
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c)
			return 0;
		fill_tuple(sk, c);
		if (oldstate == TCP_SYN_SENT)
			emit(sk, c, NPLLM_TCP_CONNECT);
		else if (oldstate == TCP_SYN_RECV)
			emit(sk, c, NPLLM_TCP_ACCEPT);
		return 0;
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		// The application's close(): its context names the process.
		c = bpf_map_lookup_elem(&conns, &key);
		if (c && c->pid == 0)
			own_context(c);
		return 0;
	case TCP_CLOSE:
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c)
			return 0;
		// A handshake that never completed is not a connection.
		if (c->established)
			emit(sk, c, NPLLM_TCP_CLOSE);
		bpf_map_delete_elem(&conns, &key);
		return 0;
	}
	return 0;
}

static __always_inline int on_retransmit(const struct sock *sk)
{
	count_add(2, 1);
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		__sync_fetch_and_add(&c->retransmits, 1);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(btf_tcp_retransmit_skb, const struct sock *sk)
{
	return on_retransmit(sk);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(btf_tcp_send_reset)
{
	count_add(3, 1);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(btf_tcp_receive_reset)
{
	count_add(4, 1);
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate);
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(raw_tcp_retransmit_skb, const struct sock *sk)
{
	return on_retransmit(sk);
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(raw_tcp_send_reset)
{
	count_add(3, 1);
	return 0;
}

SEC("raw_tp/tcp_receive_reset")
int BPF_PROG(raw_tcp_receive_reset)
{
	count_add(4, 1);
	return 0;
}
