package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func init() {
	register(command{name: "top", run: runTop})
	register(command{name: "ps", run: runPs})
}

func runTop(ctx context.Context, env *Env, c *client.Client, args []string) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sortBy := fs.String("sort", "cpu", "")
	limit := fs.Uint("limit", 20, "")
	uid := fs.Int64("user", -1, "")
	if err := fs.Parse(args); err != nil {
		return usageErr("top: %v", err)
	}
	opts := map[string]any{"sort_by": *sortBy, "limit": uint32(*limit)}
	if *uid >= 0 {
		opts["uid"] = uint32(*uid)
	}
	procs, err := c.Processes(ctx, opts)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(procs))
	}
	fmt.Fprintf(env.Out, "%7s %-10s %6s %10s %10s %4s  %s\n", "PID", "USER", "CPU%", "RSS", "IO", "NI", "COMMAND")
	for _, p := range procs {
		io := client.Uint(p["io_read_bytes"]) + client.Uint(p["io_write_bytes"])
		fmt.Fprintf(env.Out, "%7d %-10.10s %6.1f %10s %10s %4d  %s\n",
			client.Uint(p["pid"]), client.String(p["user"]), f64(p["cpu_percent"]), api.HumanBytes(client.Uint(p["rss_bytes"])), api.HumanBytes(io), i64(p["nice"]), client.String(p["comm"]))
	}
	return nil
}

func runPs(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 1 {
		return usageErr("usage: npllmctl ps PID")
	}
	pid, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return usageErr("ps: %q is not a pid", args[0])
	}
	p, err := c.Process(ctx, uint32(pid))
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(p))
	}
	for _, k := range sortedKeys(p) {
		fmt.Fprintf(env.Out, "%s %v\n", pad(k+":", 16), p[k].Value())
	}
	return nil
}

func i64(v dbus.Variant) int64 {
	switch n := v.Value().(type) {
	case int32:
		return int64(n)
	case int64:
		return n
	case uint32:
		return int64(n)
	}
	return 0
}

func f64(v dbus.Variant) float64 {
	f, _ := v.Value().(float64)
	return f
}
