package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func alertsCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "read", "alerts", "active alerts (memory, disks, OOM kills, crashes, …)", nargs(0, 0, "alerts"),
		func(ctx context.Context, env *Env, c *client.Client, _ []string) error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, alertsJSON(st.ActiveAlerts))
			}
			if len(st.ActiveAlerts) == 0 {
				fmt.Fprintln(env.Out, "no active alerts")
			}
			for _, a := range st.ActiveAlerts {
				at := time.Unix(0, int64(a.RaisedNS)).Format("15:04:05")
				fmt.Fprintf(env.Out, "%s %-8s %-28s %s\n", at, a.Severity, a.ID, a.Summary)
			}
			return nil
		})
}

// alertJSON is an alert as the bus sends it: as ActiveAlerts lists it, or
// (withPrivate) as GetAlert answers.
func alertJSON(a *api.Alert, withPrivate bool) any {
	m := a.Encode()
	if withPrivate {
		if a.Private != nil {
			m["private"] = dbus.MakeVariant(a.Private)
		}
		m["private_withheld"] = dbus.MakeVariant(a.PrivateWithheld)
	}
	return api.Plain(m)
}

func alertsJSON(as []api.Alert) []any {
	out := make([]any, 0, len(as))
	for i := range as {
		out = append(out, alertJSON(&as[i], false))
	}
	return out
}

func alertCmd(env *Env) *cobra.Command {
	cmd := daemonCmd(env, "read", "alert ID", "one alert; root and the process's owner also see its private details (e.g. the cgroup)",
		nargs(1, 1, "alert ID   (ids: npllmctl alerts)"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			a, err := c.GetAlert(ctx, args[0])
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, alertJSON(&a, true))
			}
			fmt.Fprintf(env.Out, "%s [%s] %s\n", a.ID, a.Severity, a.Summary)
			for _, group := range []any{api.Plain(a.Details), api.Plain(a.Private)} {
				m, _ := group.(map[string]any)
				for _, k := range sortedKeys(m) {
					if k != "summary" {
						fmt.Fprintf(env.Out, "  %s %v\n", pad(k+":", 24), m[k])
					}
				}
			}
			if a.PrivateWithheld {
				fmt.Fprintln(env.Out, "  (some details are shown only to root and the process's owner)")
			}
			return nil
		})
	cmd.ValidArgsFunction = completeAlertIDs(env)
	return cmd
}

func baselineCmd(env *Env) *cobra.Command {
	var forget bool
	cmd := daemonCmd(env, "read", "baseline PROGRAM", "what npllmd has learned is normal for a program you run (peak memory, CPU time, lifetime, crashes)",
		nargs(1, 1, "baseline PROGRAM [--forget]   (PROGRAM: a process name as in top)"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			program := args[0]
			if forget {
				if err := c.ForgetBaseline(ctx, program, client.CallOptions{Interactive: true}); err != nil {
					return err
				}
				return done(env, map[string]any{"program": program, "forgotten": true}, "forgot what is normal for %s; learning starts again", program)
			}
			b, err := c.GetBaseline(ctx, program)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, b)
			}
			fmt.Fprintf(env.Out, "%s: %d runs, %d crashes\n", program, b.Runs, b.Crashes)
			fmt.Fprintf(env.Out, "  peak memory  p50 %s  p95 %s  (ewma %s)\n", api.HumanBytes(b.RSSP50Bytes), api.HumanBytes(b.RSSP95Bytes), api.HumanBytes(b.RSSEWMABytes))
			fmt.Fprintf(env.Out, "  CPU time     p95 %s\n", humanNS(b.CPUP95NS))
			fmt.Fprintf(env.Out, "  lifetime     p95 %s\n", humanNS(b.LifetimeP95NS))
			return nil
		})
	cmd.Flags().BoolVar(&forget, "forget", false, "start learning again (polkit: configure)")
	return cmd
}

func configCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "act", "config [KEY=VALUE ...]",
		"show the alert thresholds, or change them until npllmd restarts (polkit: configure); the file is /etc/npllm/npllmd.toml",
		cobra.ArbitraryArgs,
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
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
				if err := c.Configure(ctx, settings, client.CallOptions{Interactive: true}); err != nil {
					return err
				}
				return done(env, settings, "changed %s (until npllmd restarts)", strings.Join(args, " "))
			}
			cfg, err := c.GetConfiguration(ctx)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, cfg)
			}
			for _, k := range sortedKeys(cfg) {
				fmt.Fprintf(env.Out, "%s = %v\n", k, cfg[k])
			}
			return nil
		})
}
