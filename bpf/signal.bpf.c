//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Signals that end or stop processes (signal:signal_generate), filtered in
// the kernel to KILL, TERM, SEGV, ABRT and BUS: who sent what to whom.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

// Makes the record type part of the BTF, so bpf2go emits its Go twin (used
// by the layout test).
const struct npllm_signal_event *unused_npllm_signal_event __attribute__((unused));

#define WAKEUP_BYTES (16 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

NPLLM_COUNTERS(2)

#define SI_USER 0
#define SI_KERNEL 0x80

static __always_inline bool wanted(int sig)
{
	return sig == 9 || sig == 15 || sig == 11 || sig == 6 || sig == 7;
}

static __always_inline int on_signal(int sig, struct kernel_siginfo *info, struct task_struct *t, int result)
{
	if (!wanted(sig))
		return 0;
	struct npllm_signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_add(CNT_DROPPED_KERNEL, 1);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->sender_pid = bpf_get_current_pid_tgid() >> 32;
	e->sender_uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->sender_comm, sizeof(e->sender_comm));
	e->target_pid = BPF_CORE_READ(t, tgid);
	e->target_uid = BPF_CORE_READ(t, cred, uid.val);
	e->target_start_boottime_ns = BPF_CORE_READ(t, start_boottime);
	BPF_CORE_READ_STR_INTO(&e->target_comm, t, comm);
	e->signal = sig;
	e->result = result;
	// SEND_SIG_NOINFO (0) and SEND_SIG_PRIV (1) are not pointers.
	if ((unsigned long)info == 0)
		e->code = SI_USER;
	else if ((unsigned long)info == 1)
		e->code = SI_KERNEL;
	else
		e->code = BPF_CORE_READ(info, si_code);
	e->ktime_ns = bpf_ktime_get_boot_ns();
	long flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	count_add(CNT_EMITTED, 1);
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(btf_signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *t, int group, int result)
{
	return on_signal(sig, info, t, result);
}

SEC("raw_tp/signal_generate")
int BPF_PROG(raw_signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *t, int group, int result)
{
	return on_signal(sig, info, t, result);
}
