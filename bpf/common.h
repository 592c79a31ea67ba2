// SPDX-License-Identifier: GPL-2.0
// Helpers every npllm eBPF object shares: the per-CPU counters array, the
// daemon's own tgid (set by the loader), and the kernel-thread filter.
#ifndef NPLLM_COMMON_H
#define NPLLM_COMMON_H

#define PF_KTHREAD 0x00200000

// Per-CPU counters; index 0 is always "events submitted", 1 "ring
// reservations that failed" (dropped in kernel). Objects may add more.
#define NPLLM_COUNTERS(n)                          \
	struct {                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
		__uint(max_entries, n);            \
		__type(key, __u32);                \
		__type(value, __u64);              \
	} counters SEC(".maps");

#define CNT_EMITTED 0
#define CNT_DROPPED_KERNEL 1

// Set by the loader: the daemon's own tgid, whose activity is not reported
// (its own work would otherwise feed back into what it watches).
const volatile __u32 self_tgid = 0;

#define count_add(idx, n)                                         \
	({                                                        \
		__u32 __k = (idx);                                \
		__u64 *__v = bpf_map_lookup_elem(&counters, &__k); \
		if (__v)                                          \
			*__v += (n);                              \
	})

static __always_inline bool skip_task(struct task_struct *t)
{
	return BPF_CORE_READ(t, tgid) == self_tgid || (BPF_CORE_READ(t, flags) & PF_KTHREAD);
}

// log2 bucket of v (0 for v <= 1), at most 63.
static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 b = 0;
#pragma unroll
	for (int shift = 32; shift > 0; shift >>= 1) {
		if (v >= (1ULL << shift)) {
			v >>= shift;
			b += shift;
		}
	}
	return b;
}

#endif
