package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func init() {
	register(command{name: "hist", run: runHist})
	register(command{name: "syscalls", run: runSyscalls})
}

func runHist(ctx context.Context, env *Env, c *client.Client, args []string) error {
	fs := flag.NewFlagSet("hist", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	series := fs.String("series", "all", "")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageErr("usage: npllmctl hist %s [--series S]", strings.Join(api.Histograms, "|"))
	}
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return usageErr("usage: npllmctl hist NAME [--series S]")
	}
	h, err := c.Histogram(ctx, args[0], map[string]any{"series": *series})
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(h))
	}
	counts, _ := h["counts"].Value().([]uint64)
	low, _ := h["bucket_low"].Value().([]uint64)
	high, _ := h["bucket_high"].Value().([]uint64)
	fmt.Fprintf(env.Out, "%s (%s), %d samples, p50 ≤ %s, p99 ≤ %s\n", client.String(h["name"]), client.String(h["series"]),
		client.Uint(h["total"]), humanNS(client.Uint(h["p50"])), humanNS(client.Uint(h["p99"])))
	var most uint64
	for _, n := range counts {
		most = max(most, n)
	}
	for i, n := range counts {
		if n == 0 && (i == 0 || counts[i-1] == 0) {
			continue
		}
		bar := 0
		if most > 0 {
			bar = int(40 * n / most)
		}
		fmt.Fprintf(env.Out, "%10s – %-10s %10d |%s\n", humanNS(low[i]), humanNS(high[i]), n, strings.Repeat("*", bar))
	}
	if m := client.Uint(h["missed"]); m > 0 {
		fmt.Fprintf(env.Out, "(%d samples missed: their start was not seen)\n", m)
	}
	return nil
}

func humanNS(ns uint64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.3gs", float64(ns)/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	}
	return fmt.Sprintf("%dns", ns)
}

func runSyscalls(ctx context.Context, env *Env, c *client.Client, args []string) error {
	fs := flag.NewFlagSet("syscalls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pid := fs.Uint("pid", 0, "")
	name := fs.String("syscall", "", "")
	sortBy := fs.String("sort", "count", "")
	limit := fs.Uint("limit", 20, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return usageErr("usage: npllmctl syscalls [--pid PID] [--syscall NAME] [--sort count|errors|time] [--limit N]")
	}
	opts := map[string]any{"sort_by": *sortBy, "limit": uint32(*limit)}
	if *pid != 0 {
		opts["pid"] = uint32(*pid)
	}
	if *name != "" {
		opts["syscall"] = *name
	}
	rows, err := c.SyscallStats(ctx, opts)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(rows))
	}
	fmt.Fprintf(env.Out, "%7s %-15s %-18s %10s %8s %9s  %s\n", "PID", "COMM", "SYSCALL", "COUNT", "ERRORS", "AVG", "ERRNOS")
	for _, r := range rows {
		errnos, _ := r["errnos"].Value().(map[string]uint64)
		var parts []string
		for _, k := range sortedKeys(errnos) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, errnos[k]))
		}
		fmt.Fprintf(env.Out, "%7d %-15s %-18s %10d %8d %9s  %s\n", client.Uint(r["pid"]), client.String(r["comm"]), client.String(r["syscall"]),
			client.Uint(r["count"]), client.Uint(r["errors"]), humanNS(client.Uint(r["avg_ns"])), strings.Join(parts, " "))
	}
	return nil
}
