// Package bpf holds npllm's eBPF programs (CO-RE, compiled by bpf2go) and
// their generated Go loaders, which are committed so that "go build" needs
// no clang. "make generate" rebuilds them (Debian: clang, libbpf-dev,
// bpftool); vmlinux.h is dumped from /sys/kernel/btf/vmlinux by bpftool.
//
// Every program exists twice, tp_btf_* ("btf_" prefix) and raw_tp
// ("raw_" prefix), sharing one body; sensors load one set or the other.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel -type npllm_proc_event Process process.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel -type npllm_oom_event OOM oom.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel -type npllm_signal_event Signal signal.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel -type npllm_tcp_event TCP tcp.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel RunqLat runqlat.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel BioLat biolat.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel Syscalls syscalls.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel -type npllm_task_row Tasks tasks.bpf.c
