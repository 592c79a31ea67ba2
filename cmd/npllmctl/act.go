package main

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/client"
)

// Writes let polkit ask the user.
var interactive = client.CallOptions{Interactive: true}

// target looks up the process's start_time, so that the daemon refuses if
// the pid is reused by another process before the call arrives.
func target(ctx context.Context, c *client.Client, arg string) (pid uint32, start uint64, comm string, err error) {
	n, perr := strconv.ParseUint(arg, 10, 32)
	if perr != nil {
		return 0, 0, "", usageErr("%q is not a pid", arg)
	}
	p, err := c.GetProcess(ctx, uint32(n))
	if err != nil {
		return 0, 0, "", err
	}
	return uint32(n), p.StartTime, p.Comm, nil
}

func signalCmd(env *Env) *cobra.Command {
	cmd := daemonCmd(env, "act", "signal PID SIGNAL", "send TERM, KILL, INT, HUP, STOP or CONT",
		nargs(2, 2, "signal PID TERM|KILL|INT|HUP|STOP|CONT"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			pid, start, comm, err := target(ctx, c, args[0])
			if err != nil {
				return err
			}
			if err := c.SignalProcess(ctx, pid, start, args[1], interactive); err != nil {
				return err
			}
			return done(env, map[string]any{"pid": pid, "comm": comm, "signal": args[1]}, "sent %s to %s (pid %d)", args[1], comm, pid)
		})
	cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 1 {
			return []string{"TERM", "KILL", "INT", "HUP", "STOP", "CONT"}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cmd
}

func reniceCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "act", "renice PID NICE", "set the nice value (-20..19) of every thread",
		nargs(2, 2, "renice PID NICE   (NICE from -20 to 19)"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			nice, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil {
				return usageErr("%q is not a nice value", args[1])
			}
			pid, start, comm, err := target(ctx, c, args[0])
			if err != nil {
				return err
			}
			if err := c.SetProcessPriority(ctx, pid, start, int32(nice), interactive); err != nil {
				return err
			}
			return done(env, map[string]any{"pid": pid, "comm": comm, "nice": nice}, "set nice %d on %s (pid %d)", nice, comm, pid)
		})
}

func ioniceCmd(env *Env) *cobra.Command {
	cmd := daemonCmd(env, "act", "ionice PID CLASS LEVEL", "set the I/O class (realtime, best-effort, idle) and level (0..7)",
		nargs(3, 3, "ionice PID realtime|best-effort|idle LEVEL   (LEVEL from 0 to 7)"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			level, err := strconv.ParseInt(args[2], 10, 32)
			if err != nil {
				return usageErr("%q is not an I/O priority level", args[2])
			}
			pid, start, comm, err := target(ctx, c, args[0])
			if err != nil {
				return err
			}
			if err := c.SetProcessIOPriority(ctx, pid, start, args[1], int32(level), interactive); err != nil {
				return err
			}
			return done(env, map[string]any{"pid": pid, "comm": comm, "class": args[1], "level": level}, "set I/O priority %s %d on %s (pid %d)", args[1], level, comm, pid)
		})
	cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 1 {
			return []string{"realtime", "best-effort", "idle"}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cmd
}

func unitCmd(env *Env) *cobra.Command {
	cmd := daemonCmd(env, "act", "unit VERB UNIT", "start, stop, restart or reload a systemd unit",
		nargs(2, 2, "unit start|stop|restart|reload UNIT"),
		func(ctx context.Context, env *Env, c *client.Client, args []string) error {
			job, err := c.ManageUnit(ctx, args[1], args[0], interactive)
			if err != nil {
				return err
			}
			return done(env, map[string]any{"unit": args[1], "verb": args[0], "job": job}, "%s %s: queued as %s", args[0], args[1], job)
		})
	cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return []string{"start", "stop", "restart", "reload"}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveDefault
	}
	return cmd
}
