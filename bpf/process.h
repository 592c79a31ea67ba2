// SPDX-License-Identifier: GPL-2.0
// The record process.bpf.c writes to its ring buffer. sensors/process_ebpf.go
// decodes it by hand (little-endian, these offsets); keep both in step.
#ifndef NPLLM_PROCESS_H
#define NPLLM_PROCESS_H

enum npllm_proc_event_type {
	NPLLM_EXEC = 1,
	NPLLM_FORK = 2,
	NPLLM_EXIT = 3,
};

#define PROC_ARGS_LEN 256

struct npllm_proc_event {
	__u8 type;
	__u8 core_dumped;
	__u16 _pad;
	__u32 pid;               // tgid
	__u32 ppid;
	__u32 uid;               // real uid
	__u32 exit_code;
	__u32 exit_signal;
	__u64 start_boottime_ns; // task->start_boottime; /proc/pid/stat field 22 is this in USER_HZ ticks
	__u64 cgroup_id;
	__u64 ktime_ns;          // CLOCK_BOOTTIME when the event happened
	__u64 cpu_ns;
	__u64 max_rss_bytes;
	__u32 args_len;
	char comm[16];
	char filename[128];
	char args[PROC_ARGS_LEN];
};

#endif
