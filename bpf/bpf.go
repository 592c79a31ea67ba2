// Package bpf holds npllm's eBPF programs (CO-RE, compiled by bpf2go) and
// their generated Go loaders, which are committed so that "go build" needs
// no clang. "make generate" rebuilds them (Debian: clang, libbpf-dev,
// bpftool); vmlinux.h is dumped from /sys/kernel/btf/vmlinux by bpftool.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -fdebug-compilation-dir=." -target bpfel Process process.bpf.c
