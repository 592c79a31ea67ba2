//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// A task iterator: one read() of its link returns a fixed-size row per
// task (thread) on the machine. The process table (sensors/tasks_iter.go)
// builds its CPU and memory ranking from it instead of opening
// /proc/PID/stat for every process, so a sample costs ~a few hundred ns
// per task in the kernel and three syscalls in all.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tasks.h"

char LICENSE[] SEC("license") = "GPL";

const struct npllm_task_row *unused_npllm_task_row __attribute__((unused));

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	struct npllm_task_row r = {};
	r.tid = t->pid;
	r.tgid = t->tgid;
	r.run_ns = t->se.sum_exec_runtime;
	if (t->pid == t->tgid) {
		// The leader carries the process's own fields; times of threads
		// that already exited are kept in signal.
		struct signal_struct *sig = t->signal;
		r.leader = 1;
		r.ppid = t->real_parent->tgid;
		r.uid = t->cred->uid.val;
		r.flags = t->flags;
		r.state = t->__state;
		r.exit_state = t->exit_state;
		r.nice = t->static_prio - 120;
		r.threads = sig->nr_threads;
		r.start_boottime_ns = t->start_boottime;
		r.run_ns += sig->sum_sched_runtime;
		struct mm_struct *mm = t->mm;
		if (mm) {
			// get_mm_rss(): file + anon + shmem pages (not swap).
			__s64 pages = mm->rss_stat[0].count + mm->rss_stat[1].count + mm->rss_stat[3].count;
			r.rss_pages = pages > 0 ? pages : 0;
		}
		__builtin_memcpy(r.comm, t->comm, sizeof(r.comm));
	}
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
