//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Run-queue latency: time from a task becoming runnable (wakeup, or being
// preempted while runnable) to it running, as an in-kernel log2 histogram
// of nanoseconds, read on demand (GetHistogram). Nothing is streamed.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

// [0] samples, [1] switches to a task whose enqueue time was not seen.
NPLLM_COUNTERS(2)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} enqueued SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

static __always_inline void mark(__u32 pid)
{
	if (pid == 0)
		return;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&enqueued, &pid, &now, BPF_ANY);
}

static __always_inline int on_switch(struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	if (prev_state == 0) // TASK_RUNNING: preempted, back on the queue
		mark(BPF_CORE_READ(prev, pid));
	__u32 pid = BPF_CORE_READ(next, pid);
	if (pid == 0)
		return 0;
	__u64 *ts = bpf_map_lookup_elem(&enqueued, &pid);
	if (!ts) {
		count_add(1, 1);
		return 0;
	}
	__u64 delta = bpf_ktime_get_ns() - *ts;
	bpf_map_delete_elem(&enqueued, &pid);
	__u32 slot = log2_bucket(delta);
	__u64 *n = bpf_map_lookup_elem(&hist, &slot);
	if (n)
		(*n)++;
	count_add(0, 1);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(btf_sched_wakeup, struct task_struct *p)
{
	mark(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(btf_sched_wakeup_new, struct task_struct *p)
{
	mark(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(btf_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	return on_switch(prev, next, prev_state);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(raw_sched_wakeup, struct task_struct *p)
{
	mark(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(raw_sched_wakeup_new, struct task_struct *p)
{
	mark(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	return on_switch(prev, next, prev_state);
}
