package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

func eventsCmd(env *Env) *cobra.Command {
	var (
		follow       bool
		kinds        []string
		after, limit uint64
		pid          int64
	)
	cmd := daemonCmd(env, "read", "events", "the event journal (process.exec, process.exit, …); --follow keeps printing new events",
		nargs(0, 0, "events [--follow] [--kind K1,K2] [--pid PID] [--after SEQ] [--limit N]"),
		func(ctx context.Context, env *Env, c *client.Client, _ []string) error {
			var f client.EventFilter
			f.Kinds = kinds
			if pid >= 0 {
				p := uint32(pid)
				f.PID = &p
			}
			seq := after
			if seq == 0 {
				// Without --after: the last --limit events, or (--follow)
				// only new ones.
				newest, err := c.NewestSeq(ctx)
				if err != nil {
					return err
				}
				switch {
				case follow:
					seq = newest
				case newest > limit:
					seq = newest - limit
				}
			}
			for {
				// --follow outlives --timeout: each page gets its own.
				pctx, cancel := context.WithTimeout(context.Background(), env.Timeout)
				last, evs, err := c.GetEvents(pctx, seq, uint32(min(limit, 1<<31)), f)
				cancel()
				if err != nil {
					return err
				}
				for i := range evs {
					printEvent(env, &evs[i])
				}
				seq = last
				if !follow {
					return nil
				}
				if len(evs) == 0 {
					time.Sleep(250 * time.Millisecond)
				}
			}
		})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	cmd.Flags().StringSliceVar(&kinds, "kind", nil, "only these kinds (comma-separated)")
	cmd.Flags().Int64Var(&pid, "pid", -1, "only events about this process")
	cmd.Flags().Uint64Var(&after, "after", 0, "events after this seq")
	cmd.Flags().Uint64Var(&limit, "limit", 50, "at most this many events")
	cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(api.EventKinds, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func printEvent(env *Env, ev *api.Event) {
	m := ev.Encode()
	if env.JSON {
		// One object per line, so --follow output can be streamed.
		b, _ := json.Marshal(api.Plain(m))
		fmt.Fprintln(env.Out, string(b))
		return
	}
	t := time.Unix(0, int64(ev.TimeNS)).Format("15:04:05.000")
	var parts []string
	for _, k := range sortedKeys(m) {
		if k == "seq" || k == "time_ns" || k == "kind" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k].Value()))
	}
	fmt.Fprintf(env.Out, "%8d %s %-13s %s\n", ev.Seq, t, ev.Kind, strings.Join(parts, " "))
}

func sensorsCmd(env *Env) *cobra.Command {
	cmd := daemonCmd(env, "read", "sensors [enable|disable NAME]",
		"every sensor: the variant in use, why better ones were skipped, its counters (drops included); enable/disable switch one until npllmd restarts (polkit: configure)",
		func(_ *cobra.Command, args []string) error {
			if len(args) != 0 && (len(args) != 2 || (args[0] != "enable" && args[0] != "disable")) {
				return usageErr("usage: npllmctl sensors [enable|disable NAME]")
			}
			return nil
		},
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			if len(args) == 2 {
				on := args[0] == "enable"
				if err := c.SetSensorEnabled(ctx, args[1], on, client.CallOptions{Interactive: true}); err != nil {
					return err
				}
				return done(env, map[string]any{"sensor": args[1], "enabled": on}, "sensor %s %sd", args[1], args[0])
			}
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			more, err := c.GetSensorDetails(ctx)
			if err != nil {
				return err
			}
			if env.JSON {
				rows := statusJSON(st)["sensors"].([]map[string]any)
				for _, r := range rows {
					d := more[r["name"].(string)]
					r["description"], r["counters"] = d.Description, d.Counters
					if d.Counters == nil {
						r["counters"] = map[string]uint64{}
					}
				}
				return printJSON(env.Out, rows)
			}
			for _, s := range st.Sensors {
				variant := s.Variant
				if variant == "" {
					variant = "-"
				}
				d := more[s.Name]
				fmt.Fprintf(env.Out, "%-15s %-8s %-11s %s\n", s.Name, variant, s.State, d.Description)
				if v, ok := s.Details["reason"]; ok {
					fmt.Fprintf(env.Out, "    reason: %v\n", v.Value())
				}
				if v, ok := s.Details["fix"]; ok {
					fmt.Fprintf(env.Out, "    fix: %v\n", v.Value())
				}
				if lines, ok := s.Details["skipped"].Value().([]string); ok {
					for _, line := range lines {
						fmt.Fprintf(env.Out, "    skipped %s\n", line)
					}
				}
				var counters []string
				for k, n := range d.Counters {
					counters = append(counters, fmt.Sprintf("%s=%d", k, n))
				}
				sort.Strings(counters)
				if len(counters) > 0 {
					fmt.Fprintf(env.Out, "    %s\n", strings.Join(counters, " "))
				}
			}
			return nil
		})
	cmd.ValidArgs = []string{"enable", "disable"}
	return cmd
}
