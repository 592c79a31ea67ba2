//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// OOM kills (oom:mark_victim). Rare and urgent: the ring wakes the reader
// at once, so the alert follows the kill within milliseconds.
//
// mark_victim gained its task argument in 6.?-era kernels (before, it passed
// only a pid); the tp_btf variant is refused by the verifier where the
// prototype differs, and the Go side then falls back to /dev/kmsg.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

// Makes the record type part of the BTF, so bpf2go emits its Go twin (used
// by the layout test).
const struct npllm_oom_event *unused_npllm_oom_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

NPLLM_COUNTERS(2)

#define PAGE_BYTES 4096

static __always_inline int on_mark_victim(struct task_struct *t)
{
	struct npllm_oom_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_add(CNT_DROPPED_KERNEL, 1);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->pid = BPF_CORE_READ(t, tgid);
	e->uid = BPF_CORE_READ(t, cred, uid.val);
	e->start_boottime_ns = BPF_CORE_READ(t, start_boottime);
	// The memory controller's cgroup (v1 or v2): the one whose limit was hit
	// for a cgroup OOM.
	int memcg = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct cgroup_subsys_state *css = 0;
	if (memcg >= 0 && memcg < CGROUP_SUBSYS_COUNT)
		css = BPF_CORE_READ(t, cgroups, subsys[memcg]);
	e->cgroup_id = css ? BPF_CORE_READ(css, cgroup, kn, id) : BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	e->ktime_ns = bpf_ktime_get_boot_ns();
	// The percpu_counter totals lag per-CPU deltas by a batch at most:
	// close enough for "how big was it".
	__s64 pages = BPF_CORE_READ(t, mm, rss_stat[0].count) + // MM_FILEPAGES
		      BPF_CORE_READ(t, mm, rss_stat[1].count) + // MM_ANONPAGES
		      BPF_CORE_READ(t, mm, rss_stat[3].count);  // MM_SHMEMPAGES
	e->rss_bytes = pages > 0 ? pages * PAGE_BYTES : 0;
	e->oom_score_adj = BPF_CORE_READ(t, signal, oom_score_adj);
	BPF_CORE_READ_STR_INTO(&e->comm, t, comm);
	bpf_ringbuf_submit(e, 0); // 0: wake the reader if it is waiting
	count_add(CNT_EMITTED, 1);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(btf_mark_victim, struct task_struct *t, uid_t uid)
{
	return on_mark_victim(t);
}

SEC("raw_tp/mark_victim")
int BPF_PROG(raw_mark_victim, struct task_struct *t, uid_t uid)
{
	return on_mark_victim(t);
}
