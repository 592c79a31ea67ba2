package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/client"
)

func init() {
	register(command{name: "events", run: runEvents})
	register(command{name: "sensors", run: runSensors})
}

func runEvents(ctx context.Context, env *Env, c *client.Client, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	follow := fs.Bool("follow", false, "")
	fs.BoolVar(follow, "f", false, "")
	kind := fs.String("kind", "", "")
	after := fs.Uint64("after", 0, "")
	limit := fs.Uint("limit", 50, "")
	pid := fs.Int64("pid", -1, "")
	if err := fs.Parse(args); err != nil {
		return usageErr("events: %v", err)
	}
	filter := map[string]any{}
	if *kind != "" {
		filter["kind"] = strings.Split(*kind, ",")
	}
	if *pid >= 0 {
		filter["pid"] = uint32(*pid)
	}
	seq := *after
	if seq == 0 {
		// Without --after: the last --limit events, or (--follow) only new
		// ones. Asking past the end returns the newest seq.
		newest, _, err := c.Events(ctx, math.MaxUint64-1, 1, nil)
		if err != nil {
			return err
		}
		switch {
		case *follow:
			seq = newest
		case newest > uint64(*limit):
			seq = newest - uint64(*limit)
		}
	}
	for {
		last, evs, err := c.Events(context.Background(), seq, uint32(*limit), filter)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			printEvent(env, ev)
		}
		seq = last
		if !*follow {
			return nil
		}
		if len(evs) == 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
}

func printEvent(env *Env, ev map[string]dbus.Variant) {
	if env.JSON {
		// One object per line, so --follow output can be streamed.
		b, _ := jsonMarshal(client.Plain(ev))
		fmt.Fprintln(env.Out, string(b))
		return
	}
	t := time.Unix(0, int64(client.Uint(ev["time_ns"]))).Format("15:04:05.000")
	var parts []string
	for _, k := range sortedKeys(ev) {
		if k == "seq" || k == "time_ns" || k == "kind" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, ev[k].Value()))
	}
	fmt.Fprintf(env.Out, "%8d %s %-13s %s\n", client.Uint(ev["seq"]), t, client.String(ev["kind"]), strings.Join(parts, " "))
}

func runSensors(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) > 0 {
		if len(args) != 2 || (args[0] != "enable" && args[0] != "disable") {
			return usageErr("usage: npllmctl sensors [enable|disable NAME]")
		}
		on := args[0] == "enable"
		if err := c.CallInteractive(ctx, "SetSensorEnabled", args[1], on, client.Options(nil)).Err; err != nil {
			return err
		}
		return done(env, map[string]any{"sensor": args[1], "enabled": on}, "sensor %s %sd", args[1], args[0])
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, statusJSON(st)["sensors"])
	}
	for _, s := range st.Sensors {
		variant := s.Variant
		if variant == "" {
			variant = "-"
		}
		fmt.Fprintf(env.Out, "%-15s %-8s %-11s %s\n", s.Name, variant, s.State, client.String(s.Details["description"]))
		if v, ok := s.Details["reason"]; ok {
			fmt.Fprintf(env.Out, "    reason: %v\n", v.Value())
		}
		if v, ok := s.Details["fix"]; ok {
			fmt.Fprintf(env.Out, "    fix: %v\n", v.Value())
		}
		if v, ok := s.Details["skipped"]; ok {
			for _, line := range v.Value().([]string) {
				fmt.Fprintf(env.Out, "    skipped %s\n", line)
			}
		}
		var counters []string
		for k, v := range s.Details {
			if n, ok := v.Value().(uint64); ok {
				counters = append(counters, fmt.Sprintf("%s=%d", k, n))
			}
		}
		sort.Strings(counters)
		if len(counters) > 0 {
			fmt.Fprintf(env.Out, "    %s\n", strings.Join(counters, " "))
		}
	}
	return nil
}
