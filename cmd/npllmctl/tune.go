package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

const tuneLong = `Tuning trials ("commit confirmed"): a change to a kernel or systemd knob
is applied as a trial, watched through a canary window, reverted at once if
a watched metric gets worse, and reverted when its lease ends unless you
confirm it after the canary passed. Trials need polkit's
org.npllm.Assistant.tune (an administrator's password, asked every time).

  npllmctl tune list
  npllmctl tune try vm.swappiness=10 --watch psi.memory --canary 60s --lease 10m
  npllmctl tune try unit.CPUWeight=50 --unit build.service --watch unit.cpu
  npllmctl tune confirm ID     (after the canary, before the lease ends)
  npllmctl tune revert ID
  npllmctl tune history build.service`

func tuneCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{Use: "tune", Short: "try kernel and systemd knobs as trials that revert unless confirmed",
		Long: tuneLong, GroupID: "act",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown tune command %q (list, try, confirm, revert, history)", args[0])
			}
			return cmd.Help()
		}}
	cmd.AddCommand(tuneListCmd(env), tuneTryCmd(env), tuneIDCmd(env, "confirm"), tuneIDCmd(env, "revert"), tuneHistoryCmd(env))
	return cmd
}

func tuneListCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "", "list", "every knob (current value, allowed values, risk) and the trials", nargs(0, 0, "tune list"),
		func(ctx context.Context, env *Env, c *client.Client, _ []string) error {
			tunables, err := c.GetTunables(ctx)
			if err != nil {
				return err
			}
			trials, err := c.GetTrials(ctx)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, map[string]any{"tunables": tunables, "trials": trials})
			}
			fmt.Fprintf(env.Out, "%-28s %-8s %-12s %-30s %s\n", "KNOB", "RISK", "CURRENT", "VALUES", "WHY")
			var off []api.Tunable
			for _, t := range tunables {
				if !t.Available {
					off = append(off, t)
					continue
				}
				name := t.Name
				if t.Target != "" {
					name += "@" + t.Target
				} else if t.NeedsUnit {
					name += "@UNIT"
				}
				cur := t.Current
				if t.Trial != "" {
					cur += " (trial)"
				}
				fmt.Fprintf(env.Out, "%-28s %-8s %-12s %-30s %s\n", name, t.Risk, orDash(cur), values(t), t.Why)
			}
			for _, t := range off {
				fmt.Fprintf(env.Out, "%-28s unavailable: %s\n", t.Name, t.Reason)
			}
			if len(trials) > 0 {
				fmt.Fprintln(env.Out)
				for _, t := range trials {
					printTrial(env, t)
				}
			}
			return nil
		})
}

func values(t api.Tunable) string {
	if len(t.Allowed) > 0 {
		return strings.Join(t.Allowed, " ")
	}
	if t.Type == "bytes" {
		return ">= " + api.HumanBytes(uint64(t.Min)) + ", infinity"
	}
	return fmt.Sprintf("%d-%d", t.Min, t.Max)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printTrial(env *Env, t api.Trial) {
	var ch []string
	for _, c := range t.Changes {
		k := c.Knob
		if c.Target != "" {
			k += "@" + c.Target
		}
		ch = append(ch, fmt.Sprintf("%s %s → %s", k, c.Old, c.New))
	}
	fmt.Fprintf(env.Out, "trial %s  %s  %s\n", t.ID, t.State, strings.Join(ch, ", "))
	switch t.State {
	case api.TrialCanary, api.TrialApplying:
		fmt.Fprintf(env.Out, "    canary until %s; confirm before %s or it is reverted\n", clock(t.CanaryEndsNS), clock(t.LeaseEndsNS))
	case api.TrialAwaiting:
		fmt.Fprintf(env.Out, "    canary passed; npllmctl tune confirm %s before %s or it is reverted\n", t.ID, clock(t.LeaseEndsNS))
	}
	if t.Reason != "" && t.State != api.TrialCanary && t.State != api.TrialAwaiting {
		fmt.Fprintf(env.Out, "    %s\n", t.Reason)
	}
}

func clock(ns uint64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, int64(ns)).Format(time.TimeOnly)
}

// watchAliases are short names for the commonest metrics.
var watchAliases = map[string]string{"psi.cpu": "psi.cpu.some", "psi.memory": "psi.memory.some", "psi.io": "psi.io.some",
	"runq": "runq.p99", "blockio": "blockio.p99"}

// trialRequest turns "try" arguments into a request: KNOB=VALUE (KNOB may
// name its target as KNOB@TARGET; --unit is the target of unit.* knobs and
// of unit.* metrics given without one).
func trialRequest(args []string, unit string, watch []string) (client.TrialRequest, error) {
	req := client.TrialRequest{Changes: map[string]string{}}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || v == "" {
			return req, usageErr("%q is not KNOB=VALUE", a)
		}
		if strings.HasPrefix(k, "unit.") && !strings.Contains(k, "@") {
			if unit == "" {
				return req, usageErr("%s needs --unit UNIT", k)
			}
			k += "@" + unit
		}
		if _, dup := req.Changes[k]; dup {
			return req, usageErr("%s is given twice", k)
		}
		req.Changes[k] = v
	}
	for _, w := range watch {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if full, ok := watchAliases[w]; ok {
			w = full
		}
		if strings.HasPrefix(w, "unit.") && !strings.Contains(w, ":") {
			if unit == "" {
				return req, usageErr("--watch %s needs --unit UNIT (or %s:UNIT)", w, w)
			}
			w += ":" + unit
		}
		req.Watch = append(req.Watch, w)
	}
	return req, nil
}

func tuneTryCmd(env *Env) *cobra.Command {
	var unit, workload string
	var watch []string
	var canary, lease time.Duration
	var threshold float64
	var persist bool
	cmd := daemonCmd(env, "", "try KNOB=VALUE...", "start a trial (polkit: tune); it is reverted unless confirmed",
		func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("usage: npllmctl tune try KNOB=VALUE... [--unit U] [--canary 60s] [--lease 10m] [--watch psi.memory,...]")
			}
			return nil
		},
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			req, err := trialRequest(args, unit, watch)
			if err != nil {
				return err
			}
			req.Canary, req.Lease, req.Threshold, req.Persist, req.Workload = canary, lease, threshold, persist, workload
			if req.Workload == "" {
				req.Workload = unit
			}
			id, err := c.StartTrial(ctx, req, client.TuneCall{Interactive: true})
			if err != nil {
				return err
			}
			trials, err := c.GetTrials(ctx)
			if err != nil {
				return err
			}
			for _, t := range trials {
				if t.ID == id {
					if env.JSON {
						return printJSON(env.Out, t)
					}
					printTrial(env, t)
					return nil
				}
			}
			return done(env, map[string]any{"id": id}, "trial %s started", id)
		})
	f := cmd.Flags()
	f.StringVar(&unit, "unit", "", "the unit of unit.* knobs and metrics (build.service, app-firefox-1234.scope)")
	f.StringSliceVar(&watch, "watch", nil, "metrics that must not get worse: psi.cpu, psi.memory, psi.io (some), psi.memory.full, psi.io.full, runq, blockio (p99), unit.cpu, unit.memory, program.cpu:COMM, program.memory:COMM")
	f.DurationVar(&canary, "canary", 0, "how long the metrics are watched (default 60s)")
	f.DurationVar(&lease, "lease", 0, "revert this long after the apply unless confirmed (default 10m)")
	f.Float64Var(&threshold, "threshold", 0, "relative worsening tolerated (default 0.25)")
	f.StringVar(&workload, "workload", "", "the program or unit the trial is for, its history key (default: --unit)")
	f.BoolVar(&persist, "persist", false, "on confirm, also write a file so the change survives reboots (sysctls, service/slice properties)")
	return cmd
}

func tuneIDCmd(env *Env, verb string) *cobra.Command {
	short := map[string]string{"confirm": "keep a trial's changes (after its canary passed; polkit: tune)",
		"revert": "undo a trial now (polkit: tune)"}[verb]
	return daemonCmd(env, "", verb+" ID", short, nargs(1, 1, "tune "+verb+" ID"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			call := client.TuneCall{Interactive: true}
			var err error
			if verb == "confirm" {
				err = c.ConfirmTrial(ctx, args[0], call)
			} else {
				err = c.RevertTrial(ctx, args[0], call)
			}
			if err != nil {
				return err
			}
			past := map[string]string{"confirm": "confirmed", "revert": "reverted"}[verb]
			return done(env, map[string]any{"id": args[0], "result": past}, "trial %s %s", args[0], past)
		})
}

func tuneHistoryCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "", "history [WORKLOAD]", "finished trials of a program or unit (default: trials without one)",
		nargs(0, 1, "tune history [WORKLOAD]"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			workload := ""
			if len(args) == 1 {
				workload = args[0]
			}
			hist, err := c.GetTrialHistory(ctx, workload)
			if err != nil {
				return err
			}
			if env.JSON {
				return printJSON(env.Out, hist)
			}
			if len(hist) == 0 {
				fmt.Fprintln(env.Out, "no finished trials")
			}
			for _, h := range hist {
				var ch []string
				for _, c := range h.Changes {
					ch = append(ch, c.Knob+targetSuffix(c.Target)+" "+c.Old+" → "+c.New)
				}
				fmt.Fprintf(env.Out, "%s  %-9s %s  %s\n", clock(h.StartedNS), h.Outcome, h.ID, strings.Join(ch, ", "))
				for _, f := range h.Before {
					fmt.Fprintf(env.Out, "    %s%s before %s\n", f.Metric, targetSuffix(f.Target), strconv.FormatFloat(f.Value, 'g', 4, 64))
				}
				for _, f := range h.After {
					fmt.Fprintf(env.Out, "    %s%s after  %s\n", f.Metric, targetSuffix(f.Target), strconv.FormatFloat(f.Value, 'g', 4, 64))
				}
				if h.Reason != "" {
					fmt.Fprintf(env.Out, "    %s\n", h.Reason)
				}
			}
			return nil
		})
}

func targetSuffix(t string) string {
	if t == "" {
		return ""
	}
	return "@" + t
}
