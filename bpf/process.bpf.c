//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Process lifecycle (exec, fork of a new process, whole-process exit) on one
// ring buffer, so user space sees them in kernel order.
//
// Each handler exists twice — tp_btf (typed, cheapest) and raw_tp (no BTF
// attach needed) — sharing one body that reads kernel memory only through
// BPF_CORE_READ, which both program types allow. Go picks the first pair
// that loads and attaches (sensors/process_ebpf.go).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "process.h"

char LICENSE[] SEC("license") = "GPL";

// Makes the record type part of the BTF, so bpf2go emits its Go twin (used
// by the layout test).
const struct npllm_proc_event *unused_npllm_proc_event __attribute__((unused));

// Wake the reader only when this much is pending; otherwise it polls
// (SENSORS.md: per-event wake-ups cost 8–15 µs per run under exec storms).
#define WAKEUP_BYTES (64 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

NPLLM_COUNTERS(2)

static __always_inline struct npllm_proc_event *reserve(void)
{
	struct npllm_proc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_add(CNT_DROPPED_KERNEL, 1);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	return e;
}

static __always_inline void submit(struct npllm_proc_event *e)
{
	long flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	count_add(CNT_EMITTED, 1);
}

static __always_inline void fill_common(struct npllm_proc_event *e, struct task_struct *t)
{
	e->pid = BPF_CORE_READ(t, tgid);
	e->ppid = BPF_CORE_READ(t, real_parent, tgid);
	e->uid = BPF_CORE_READ(t, cred, uid.val);
	e->start_boottime_ns = BPF_CORE_READ(t, start_boottime);
	e->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	e->ktime_ns = bpf_ktime_get_boot_ns();
	BPF_CORE_READ_STR_INTO(&e->comm, t, comm);
}

static __always_inline int on_exec(struct task_struct *t, struct linux_binprm *bprm)
{
	if (skip_task(t))
		return 0;
	struct npllm_proc_event *e = reserve();
	if (!e)
		return 0;
	e->type = NPLLM_EXEC;
	fill_common(e, t);
	const char *filename = BPF_CORE_READ(bprm, filename);
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	unsigned long start = BPF_CORE_READ(t, mm, arg_start);
	unsigned long end = BPF_CORE_READ(t, mm, arg_end);
	unsigned long len = end - start;
	if (len > sizeof(e->args))
		len = sizeof(e->args);
	if (bpf_probe_read_user(e->args, len & (sizeof(e->args) - 1 | sizeof(e->args)), (void *)start) == 0)
		e->args_len = len;
	submit(e);
	return 0;
}

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	// Threads share their creator's tgid: only new processes are reported.
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid) || skip_task(child))
		return 0;
	struct npllm_proc_event *e = reserve();
	if (!e)
		return 0;
	e->type = NPLLM_FORK;
	fill_common(e, child);
	e->ppid = BPF_CORE_READ(parent, tgid);
	submit(e);
	return 0;
}

static __always_inline int on_exit(struct task_struct *t)
{
	// Only the death of the last thread ends the process. signal->live is
	// decremented before this tracepoint on every kernel, with or without
	// the group_dead argument newer kernels pass.
	if (BPF_CORE_READ(t, signal, live.counter) != 0 || skip_task(t))
		return 0;
	struct npllm_proc_event *e = reserve();
	if (!e)
		return 0;
	e->type = NPLLM_EXIT;
	fill_common(e, t);
	__u32 code = BPF_CORE_READ(t, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->exit_signal = code & 0x7f;
	e->core_dumped = (code & 0x80) ? 1 : 0;
	e->cpu_ns = BPF_CORE_READ(t, utime) + BPF_CORE_READ(t, stime) +
		    BPF_CORE_READ(t, signal, utime) + BPF_CORE_READ(t, signal, stime);
	// signal->maxrss is in pages, folded in from the mm when the group died.
	e->max_rss_bytes = BPF_CORE_READ(t, signal, maxrss) * 4096;
	submit(e);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(btf_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, bprm);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(btf_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(btf_sched_process_exit, struct task_struct *p)
{
	return on_exit(p);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(raw_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, bprm);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(raw_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_sched_process_exit, struct task_struct *p)
{
	return on_exit(p);
}
