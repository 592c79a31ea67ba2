package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func topCmd(env *Env) *cobra.Command {
	var (
		sortBy string
		limit  uint32
		uid    int64
	)
	cmd := daemonCmd(env, "read", "top", "processes, busiest first (default: cpu, 20)",
		nargs(0, 0, "top [--sort cpu|memory|io] [--limit N] [--user UID]"),
		func(ctx context.Context, env *Env, c *client.Client, _ []string) error {
			q := client.ProcessQuery{SortBy: sortBy, Limit: limit}
			if uid >= 0 {
				u := uint32(uid)
				q.UID = &u
			}
			procs, err := c.ListProcesses(ctx, q)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, procs)
			}
			fmt.Fprintf(env.Out, "%7s %-10s %6s %10s %10s %4s  %s\n", "PID", "USER", "CPU%", "RSS", "IO", "NI", "COMMAND")
			for _, p := range procs {
				fmt.Fprintf(env.Out, "%7d %-10.10s %6.1f %10s %10s %4d  %s\n",
					p.PID, p.User, p.CPUPercent, api.HumanBytes(p.RSSBytes), api.HumanBytes(p.IOReadBytes+p.IOWriteBytes), p.Nice, p.Comm)
			}
			return nil
		})
	cmd.Flags().StringVar(&sortBy, "sort", "cpu", "cpu, memory or io")
	cmd.Flags().Uint32Var(&limit, "limit", 20, "at most this many processes")
	cmd.Flags().Int64Var(&uid, "user", -1, "only this user's processes (uid)")
	cmd.RegisterFlagCompletionFunc("sort", cobra.FixedCompletions([]string{"cpu", "memory", "io"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func psCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "read", "ps PID", "everything npllmd knows about one process", nargs(1, 1, "ps PID"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			pid, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil {
				return usageErr("ps: %q is not a pid", args[0])
			}
			p, err := c.GetProcess(ctx, uint32(pid))
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, p)
			}
			m := p.Encode()
			for _, k := range sortedKeys(m) {
				v := m[k].Value()
				if k == "baseline" {
					v = api.Plain(v)
				}
				fmt.Fprintf(env.Out, "%s %v\n", pad(k+":", 16), v)
			}
			return nil
		})
}
