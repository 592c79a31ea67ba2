// SPDX-License-Identifier: GPL-2.0
// The row tasks.bpf.c writes per task. sensors/tasks_iter.go decodes it
// by hand (little-endian, these offsets); keep both in step.
#ifndef NPLLM_TASKS_H
#define NPLLM_TASKS_H

struct npllm_task_row {
	__u32 tid;
	__u32 tgid;
	__u64 run_ns;            // CPU time: this thread's; the leader adds exited threads'
	__u32 ppid;              // leader only, as every field below
	__u32 uid;               // real uid
	__u32 flags;             // PF_* (PF_KTHREAD)
	__u32 state;             // __state
	__u32 exit_state;
	__s32 nice;
	__u32 threads;
	__u8 leader;
	__u8 _pad[3];
	__u64 start_boottime_ns;
	__u64 rss_pages;
	char comm[16];
};

#endif
