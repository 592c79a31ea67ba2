package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func init() {
	register(command{name: "alerts", run: runAlerts})
	register(command{name: "alert", run: runAlert})
	register(command{name: "baseline", run: runBaseline})
	register(command{name: "config", run: runConfig})
}

func runAlerts(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 0 {
		return usageErr("usage: npllmctl alerts")
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(st.ActiveAlerts))
	}
	if len(st.ActiveAlerts) == 0 {
		fmt.Fprintln(env.Out, "no active alerts")
	}
	for _, a := range st.ActiveAlerts {
		at := time.Unix(0, int64(client.Uint(a["raised_ns"]))).Format("15:04:05")
		fmt.Fprintf(env.Out, "%s %-8s %-28s %s\n", at, client.String(a["severity"]), client.String(a["id"]), client.String(a["summary"]))
	}
	return nil
}

func runAlert(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 1 {
		return usageErr("usage: npllmctl alert ID   (ids: npllmctl alerts)")
	}
	a, err := c.Alert(ctx, args[0])
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(a))
	}
	fmt.Fprintf(env.Out, "%s [%s] %s\n", client.String(a["id"]), client.String(a["severity"]), client.String(a["summary"]))
	for _, group := range []string{"details", "private"} {
		m, _ := client.Plain(a[group]).(map[string]any)
		for _, k := range sortedKeys(m) {
			if k != "summary" {
				fmt.Fprintf(env.Out, "  %s %v\n", pad(k+":", 24), m[k])
			}
		}
	}
	if withheld, _ := a["private_withheld"].Value().(bool); withheld {
		fmt.Fprintln(env.Out, "  (some details are shown only to root and the process's owner)")
	}
	return nil
}

func runBaseline(ctx context.Context, env *Env, c *client.Client, args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	forget := fs.Bool("forget", false, "")
	var program string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		program, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil || program == "" || fs.NArg() > 0 {
		return usageErr("usage: npllmctl baseline PROGRAM [--forget]   (PROGRAM: a process name as in top)")
	}
	if *forget {
		if err := c.CallInteractive(ctx, "ForgetBaseline", program, client.Options(nil)).Err; err != nil {
			return err
		}
		return done(env, map[string]any{"program": program, "forgotten": true}, "forgot what is normal for %s; learning starts again", program)
	}
	b, err := c.Baseline(ctx, program)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(b))
	}
	fmt.Fprintf(env.Out, "%s: %d runs, %d crashes\n", program, client.Uint(b["runs"]), client.Uint(b["crashes"]))
	fmt.Fprintf(env.Out, "  peak memory  p50 %s  p95 %s  (ewma %s)\n", api.HumanBytes(client.Uint(b["rss_p50_bytes"])), api.HumanBytes(client.Uint(b["rss_p95_bytes"])), api.HumanBytes(client.Uint(b["rss_ewma_bytes"])))
	fmt.Fprintf(env.Out, "  CPU time     p95 %s\n", humanNS(client.Uint(b["cpu_p95_ns"])))
	fmt.Fprintf(env.Out, "  lifetime     p95 %s\n", humanNS(client.Uint(b["lifetime_p95_ns"])))
	return nil
}

func runConfig(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) > 0 {
		settings := map[string]any{}
		for _, kv := range args {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageErr("usage: npllmctl config [KEY=VALUE ...]   (%q is not KEY=VALUE)", kv)
			}
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				settings[k] = f
			} else {
				settings[k] = v // durations
			}
		}
		if err := c.CallInteractive(ctx, "Configure", client.Options(settings), client.Options(nil)).Err; err != nil {
			return err
		}
		return done(env, settings, "changed %s (until npllmd restarts)", strings.Join(args, " "))
	}
	cfg, err := c.Configuration(ctx)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, client.Plain(cfg))
	}
	for _, k := range sortedKeys(cfg) {
		fmt.Fprintf(env.Out, "%s = %v\n", k, cfg[k].Value())
	}
	return nil
}
