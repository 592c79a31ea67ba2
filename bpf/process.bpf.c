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

// RD reads kernel memory: a plain load on tp_btf (the verifier checks
// BTF-typed pointers and turns loads into faulting-safe ones), a
// bpf_probe_read_kernel per step on raw_tp. The helper calls were most of
// the programs' run time (bpf_stats: ~1.0–1.7 µs a run with ~20 of them).
// btf is a constant in each caller, so the other branch compiles away.
#define RD(btf, direct, ...) ((btf) ? (direct) : BPF_CORE_READ(__VA_ARGS__))

// Fork and exit records stop before filename: only exec carries the
// filename and arguments, so the others reserve (and user space reads)
// 88 bytes instead of 472.
#define PROC_SHORT_LEN ((__builtin_offsetof(struct npllm_proc_event, filename) + 7) & ~7)

static __always_inline struct npllm_proc_event *reserve(__u64 size)
{
	struct npllm_proc_event *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		count_add(CNT_DROPPED_KERNEL, 1);
		return 0;
	}
	// Every field of the header is written below; no memset.
	return e;
}

static __always_inline void submit(struct npllm_proc_event *e, bool urgent)
{
	long flags = BPF_RB_NO_WAKEUP;
	if (urgent || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	count_add(CNT_EMITTED, 1);
}

static __always_inline bool skip(bool btf, struct task_struct *t)
{
	return RD(btf, t->tgid, t, tgid) == self_tgid || (RD(btf, t->flags, t, flags) & PF_KTHREAD);
}

static __always_inline void fill_common(bool btf, struct npllm_proc_event *e, __u8 type, struct task_struct *t)
{
	e->type = type;
	e->core_dumped = 0;
	e->_pad = 0;
	e->pid = RD(btf, t->tgid, t, tgid);
	e->uid = RD(btf, t->cred->uid.val, t, cred, uid.val);
	e->exit_code = 0;
	e->exit_signal = 0;
	e->start_boottime_ns = RD(btf, t->start_boottime, t, start_boottime);
	e->cgroup_id = 0;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->cpu_ns = 0;
	e->max_rss_bytes = 0;
	e->args_len = 0;
	if (btf)
		__builtin_memcpy(e->comm, t->comm, sizeof(e->comm)); // NUL-terminated by the kernel
	else
		BPF_CORE_READ_STR_INTO(&e->comm, t, comm);
}

static __always_inline int on_exec(bool btf, struct task_struct *t, struct linux_binprm *bprm)
{
	if (skip(btf, t))
		return 0;
	struct npllm_proc_event *e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_common(btf, e, NPLLM_EXEC, t);
	e->ppid = RD(btf, t->real_parent->tgid, t, real_parent, tgid);
	e->cgroup_id = RD(btf, t->cgroups->dfl_cgrp->kn->id, t, cgroups, dfl_cgrp, kn, id);
	const char *filename = RD(btf, bprm->filename, bprm, filename);
	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename) < 0)
		e->filename[0] = 0;
	unsigned long start = RD(btf, t->mm->arg_start, t, mm, arg_start);
	unsigned long end = RD(btf, t->mm->arg_end, t, mm, arg_end);
	unsigned long len = end - start;
	if (len > sizeof(e->args))
		len = sizeof(e->args);
	if (bpf_probe_read_user(e->args, len & (sizeof(e->args) - 1 | sizeof(e->args)), (void *)start) == 0)
		e->args_len = len;
	submit(e, false);
	return 0;
}

static __always_inline int on_fork(bool btf, struct task_struct *parent, struct task_struct *child)
{
	// Threads share their creator's tgid: only new processes are reported,
	// and a thread is dropped here, before any ring space is reserved.
	if (RD(btf, child->pid, child, pid) != RD(btf, child->tgid, child, tgid) || skip(btf, child))
		return 0;
	struct npllm_proc_event *e = reserve(PROC_SHORT_LEN);
	if (!e)
		return 0;
	fill_common(btf, e, NPLLM_FORK, child);
	e->ppid = RD(btf, parent->tgid, parent, tgid);
	submit(e, false);
	return 0;
}

static __always_inline int on_exit(bool btf, struct task_struct *t)
{
	// Only the death of the last thread ends the process. signal->live is
	// decremented before this tracepoint on every kernel, with or without
	// the group_dead argument newer kernels pass.
	if (RD(btf, t->signal->live.counter, t, signal, live.counter) != 0 || skip(btf, t))
		return 0;
	struct npllm_proc_event *e = reserve(PROC_SHORT_LEN);
	if (!e)
		return 0;
	fill_common(btf, e, NPLLM_EXIT, t);
	e->ppid = RD(btf, t->real_parent->tgid, t, real_parent, tgid);
	__u32 code = RD(btf, t->exit_code, t, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->exit_signal = code & 0x7f;
	e->core_dumped = (code & 0x80) ? 1 : 0;
	e->cpu_ns = RD(btf, t->utime, t, utime) + RD(btf, t->stime, t, stime) +
		    RD(btf, t->signal->utime, t, signal, utime) + RD(btf, t->signal->stime, t, signal, stime);
	// signal->maxrss is in pages, folded in from the mm when the group died.
	e->max_rss_bytes = RD(btf, t->signal->maxrss, t, signal, maxrss) * 4096;
	// A crash (the alert engine's fatal signals, or a core dump) wakes the
	// reader at once, like an OOM kill; other exits wait for the poll.
	__u32 sig = e->exit_signal;
	bool crash = e->core_dumped || sig == 4 || sig == 6 || sig == 7 || sig == 8 || sig == 11;
	submit(e, crash);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(btf_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(true, p, bprm);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(btf_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(true, parent, child);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(btf_sched_process_exit, struct task_struct *p)
{
	return on_exit(true, p);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(raw_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(false, p, bprm);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(raw_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(false, parent, child);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_sched_process_exit, struct task_struct *p)
{
	return on_exit(false, p);
}
