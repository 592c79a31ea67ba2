package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func histCmd(env *Env) *cobra.Command {
	var series string
	cmd := daemonCmd(env, "read", "hist NAME", "a latency histogram kept in the kernel: runq_latency, block_io_latency (--series read, write or other)",
		nargs(1, 1, "hist "+strings.Join(api.Histograms, "|")+" [--series S]"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			h, err := c.GetHistogram(ctx, args[0], series)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, h)
			}
			fmt.Fprintf(env.Out, "%s (%s), %d samples, p50 ≤ %s, p99 ≤ %s\n", h.Name, h.Series, h.Total, humanNS(h.P50), humanNS(h.P99))
			var most uint64
			for _, n := range h.Counts {
				most = max(most, n)
			}
			for i, n := range h.Counts {
				if n == 0 && (i == 0 || h.Counts[i-1] == 0) {
					continue
				}
				if i >= len(h.BucketLow) || i >= len(h.BucketHigh) {
					break
				}
				bar := 0
				if most > 0 {
					bar = int(40 * n / most)
				}
				fmt.Fprintf(env.Out, "%10s – %-10s %10d |%s\n", humanNS(h.BucketLow[i]), humanNS(h.BucketHigh[i]), n, strings.Repeat("*", bar))
			}
			if h.Missed > 0 {
				fmt.Fprintf(env.Out, "(%d samples missed: their start was not seen)\n", h.Missed)
			}
			return nil
		})
	cmd.Flags().StringVar(&series, "series", "all", "which series (all, read, write, other)")
	cmd.ValidArgs = api.Histograms
	return cmd
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

func syscallsCmd(env *Env) *cobra.Command {
	var q client.SyscallQuery
	cmd := daemonCmd(env, "read", "syscalls", `top processes by syscall count, with errors by errno (needs "npllmctl sensors enable syscalls")`,
		nargs(0, 0, "syscalls [--pid PID] [--syscall NAME] [--sort count|errors|time] [--limit N]"),
		func(ctx context.Context, env *Env, c *client.Client, _ []string) error {
			rows, err := c.GetSyscallStats(ctx, q)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, rows)
			}
			fmt.Fprintf(env.Out, "%7s %-15s %-18s %10s %8s %9s  %s\n", "PID", "COMM", "SYSCALL", "COUNT", "ERRORS", "AVG", "ERRNOS")
			for _, r := range rows {
				var parts []string
				for _, k := range sortedKeys(r.Errnos) {
					parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errnos[k]))
				}
				fmt.Fprintf(env.Out, "%7d %-15s %-18s %10d %8d %9s  %s\n", r.PID, r.Comm, r.Syscall, r.Count, r.Errors, humanNS(r.AvgNS), strings.Join(parts, " "))
			}
			return nil
		})
	cmd.Flags().Uint32Var(&q.PID, "pid", 0, "one process only")
	cmd.Flags().StringVar(&q.Syscall, "syscall", "", "one syscall only (e.g. openat)")
	cmd.Flags().StringVar(&q.SortBy, "sort", "count", "count, errors or time")
	cmd.Flags().Uint32Var(&q.Limit, "limit", 20, "at most this many rows")
	cmd.RegisterFlagCompletionFunc("sort", cobra.FixedCompletions([]string{"count", "errors", "time"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
