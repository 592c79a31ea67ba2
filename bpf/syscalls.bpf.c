//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Per-process syscall counts, errors (by errno) and time spent, kept in
// kernel maps and read on demand (GetSyscallStats). It runs on every
// syscall of every process, so the sensor is off unless switched on.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

// [0] syscalls counted, [1] not counted because a map was full.
NPLLM_COUNTERS(2)

struct inflight {
	__u64 start_ns; // 0: no syscall of this thread is being timed
	__u32 nr;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); // thread id
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct npllm_syscall_key);
	__type(value, struct npllm_syscall_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct npllm_syscall_errno_key);
	__type(value, __u64);
} errnos SEC(".maps");

static __always_inline int on_enter(long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((pid_tgid >> 32) == self_tgid)
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct inflight f = {.start_ns = bpf_ktime_get_ns(), .nr = (__u32)id};
	bpf_map_update_elem(&inflight, &tid, &f, BPF_ANY);
	return 0;
}

static __always_inline int on_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct inflight *f = bpf_map_lookup_elem(&inflight, &tid);
	if (!f || f->start_ns == 0)
		return 0;
	__u64 took = bpf_ktime_get_ns() - f->start_ns;
	struct npllm_syscall_key key = {.tgid = pid_tgid >> 32, .nr = f->nr};
	f->start_ns = 0;
	struct npllm_syscall_stats *s = bpf_map_lookup_elem(&stats, &key);
	if (!s) {
		struct npllm_syscall_stats fresh = {.uid = (__u32)bpf_get_current_uid_gid()};
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
		bpf_map_update_elem(&stats, &key, &fresh, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &key);
		if (!s) {
			count_add(1, 1);
			return 0;
		}
	}
	__sync_fetch_and_add(&s->count, 1);
	__sync_fetch_and_add(&s->total_ns, took);
	count_add(0, 1);
	if (ret >= 0 || ret < -4095)
		return 0;
	__sync_fetch_and_add(&s->errors, 1);
	struct npllm_syscall_errno_key ek = {.tgid = key.tgid, .nr = key.nr, .err = (__u32)-ret};
	__u64 *n = bpf_map_lookup_elem(&errnos, &ek);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&errnos, &ek, &one, BPF_NOEXIST) != 0) {
		n = bpf_map_lookup_elem(&errnos, &ek);
		if (n)
			__sync_fetch_and_add(n, 1);
		else
			count_add(1, 1);
	}
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(btf_sys_enter, struct pt_regs *regs, long id)
{
	return on_enter(id);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(btf_sys_exit, struct pt_regs *regs, long ret)
{
	return on_exit(ret);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long id)
{
	return on_enter(id);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	return on_exit(ret);
}
