// SPDX-License-Identifier: GPL-2.0
// Records the OOM, signal and TCP programs write to their ring buffers.
// sensors/*_ebpf.go decode them by hand (little-endian, these offsets;
// TestRecordLayouts checks the sizes against the compiled BTF); keep both
// in step.
#ifndef NPLLM_EVENTS_H
#define NPLLM_EVENTS_H

struct npllm_oom_event {
	__u32 pid;               // tgid of the victim
	__u32 uid;
	__u64 start_boottime_ns;
	__u64 cgroup_id;         // memory controller's cgroup (= inode of its directory)
	__u64 ktime_ns;          // CLOCK_BOOTTIME
	__u64 rss_bytes;         // file + anon + shmem
	__s32 oom_score_adj;
	__u32 _pad;
	char comm[16];
};

struct npllm_signal_event {
	__u32 sender_pid;
	__u32 sender_uid;
	__u32 target_pid;
	__u32 target_uid;
	__s32 signal;
	__s32 code;              // si_code: 0 SI_USER (kill), 0x80 SI_KERNEL, >0 a fault
	__s32 result;            // TRACE_SIGNAL_*: 0 delivered, 1 ignored, 2 already pending, …
	__u32 _pad;
	__u64 ktime_ns;
	__u64 target_start_boottime_ns;
	char sender_comm[16];
	char target_comm[16];
};

enum npllm_tcp_event_type {
	NPLLM_TCP_CONNECT = 1,
	NPLLM_TCP_ACCEPT = 2,
	NPLLM_TCP_CLOSE = 3,
};

struct npllm_tcp_event {
	__u8 type;
	__u8 family;             // 4 or 6
	__u16 sport;             // host order
	__u16 dport;             // host order
	__u16 _pad;
	__u32 pid;               // 0 when no process context was seen (accept)
	__u32 uid;
	__u64 ktime_ns;
	__u64 duration_ns;       // since SYN_SENT / SYN_RECV
	__u64 rx_bytes;          // tcp_sock.bytes_received
	__u64 tx_bytes;          // tcp_sock.bytes_acked
	__u32 retransmits;
	__u32 _pad2;
	__u8 saddr[16];          // IPv4 in the first 4 bytes
	__u8 daddr[16];
	char comm[16];
};

struct npllm_syscall_key {
	__u32 tgid;
	__u32 nr;
};

struct npllm_syscall_stats {
	__u64 count;
	__u64 errors;
	__u64 total_ns;
	__u32 uid;
	__u32 _pad;
	char comm[16];
};

struct npllm_syscall_errno_key {
	__u32 tgid;
	__u32 nr;
	__u32 err;               // positive errno
	__u32 _pad;
};

#endif
