//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Block I/O latency: issue to completion of each request, as in-kernel log2
// histograms of nanoseconds for reads, writes and other operations, read
// on demand (GetHistogram).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

// [0] samples, [1] completions whose issue was not seen.
NPLLM_COUNTERS(2)

#define REQ_OP_MASK 0xff

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} issued SEC(".maps");

// Slots 0–63 reads, 64–127 writes, 128–191 everything else (flush, discard…).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3 * 64);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

static __always_inline int on_issue(struct request *rq)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	bpf_map_update_elem(&issued, &key, &now, BPF_ANY);
	return 0;
}

static __always_inline int on_complete(struct request *rq)
{
	__u64 key = (__u64)rq;
	__u64 *ts = bpf_map_lookup_elem(&issued, &key);
	if (!ts) {
		count_add(1, 1);
		return 0;
	}
	__u64 delta = bpf_ktime_get_ns() - *ts;
	bpf_map_delete_elem(&issued, &key);
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;
	__u32 base = op == 0 ? 0 : (op == 1 ? 64 : 128);
	__u32 slot = base + log2_bucket(delta);
	__u64 *n = bpf_map_lookup_elem(&hist, &slot);
	if (n)
		(*n)++;
	count_add(0, 1);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(btf_block_rq_issue, struct request *rq)
{
	return on_issue(rq);
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(btf_block_rq_complete, struct request *rq)
{
	return on_complete(rq);
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(raw_block_rq_issue, struct request *rq)
{
	return on_issue(rq);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(raw_block_rq_complete, struct request *rq)
{
	return on_complete(rq);
}
