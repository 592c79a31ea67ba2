package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/npllm/npllm/dbus/client"
)

func init() {
	register(command{name: "signal", run: runSignal})
	register(command{name: "renice", run: runRenice})
	register(command{name: "ionice", run: runIonice})
	register(command{name: "unit", run: runUnit})
}

// target looks up the process's start_time, so that the daemon refuses if
// the pid is reused by another process before the call arrives.
func target(ctx context.Context, c *client.Client, arg string) (pid uint32, start uint64, comm string, err error) {
	n, perr := strconv.ParseUint(arg, 10, 32)
	if perr != nil {
		return 0, 0, "", usageErr("%q is not a pid", arg)
	}
	info, err := c.Process(ctx, uint32(n))
	if err != nil {
		return 0, 0, "", err
	}
	return uint32(n), client.Uint(info["start_time"]), client.String(info["comm"]), nil
}

func runSignal(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 2 {
		return usageErr("usage: npllmctl signal PID TERM|KILL|INT|HUP|STOP|CONT")
	}
	pid, start, comm, err := target(ctx, c, args[0])
	if err != nil {
		return err
	}
	if err := c.CallInteractive(ctx, "SignalProcess", pid, start, args[1], client.Options(nil)).Err; err != nil {
		return err
	}
	return done(env, map[string]any{"pid": pid, "comm": comm, "signal": args[1]}, "sent %s to %s (pid %d)", args[1], comm, pid)
}

func runRenice(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 2 {
		return usageErr("usage: npllmctl renice PID NICE   (NICE from -20 to 19)")
	}
	nice, err := strconv.ParseInt(args[1], 10, 32)
	if err != nil {
		return usageErr("%q is not a nice value", args[1])
	}
	pid, start, comm, err := target(ctx, c, args[0])
	if err != nil {
		return err
	}
	if err := c.CallInteractive(ctx, "SetProcessPriority", pid, start, int32(nice), client.Options(nil)).Err; err != nil {
		return err
	}
	return done(env, map[string]any{"pid": pid, "comm": comm, "nice": nice}, "set nice %d on %s (pid %d)", nice, comm, pid)
}

func runIonice(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 3 {
		return usageErr("usage: npllmctl ionice PID realtime|best-effort|idle LEVEL   (LEVEL from 0 to 7)")
	}
	level, err := strconv.ParseInt(args[2], 10, 32)
	if err != nil {
		return usageErr("%q is not an I/O priority level", args[2])
	}
	pid, start, comm, err := target(ctx, c, args[0])
	if err != nil {
		return err
	}
	if err := c.CallInteractive(ctx, "SetProcessIOPriority", pid, start, args[1], int32(level), client.Options(nil)).Err; err != nil {
		return err
	}
	return done(env, map[string]any{"pid": pid, "comm": comm, "class": args[1], "level": level}, "set I/O priority %s %d on %s (pid %d)", args[1], level, comm, pid)
}

func runUnit(ctx context.Context, env *Env, c *client.Client, args []string) error {
	if len(args) != 2 {
		return usageErr("usage: npllmctl unit start|stop|restart|reload UNIT")
	}
	call := c.CallInteractive(ctx, "ManageUnit", args[1], args[0], client.Options(nil))
	if call.Err != nil {
		return call.Err
	}
	job := ""
	if len(call.Body) == 1 {
		job = fmt.Sprint(call.Body[0])
	}
	return done(env, map[string]any{"unit": args[1], "verb": args[0], "job": job}, "%s %s: queued as %s", args[0], args[1], job)
}

func done(env *Env, v map[string]any, format string, args ...any) error {
	if env.JSON {
		return printJSON(env.Out, v)
	}
	_, err := fmt.Fprintf(env.Out, format+"\n", args...)
	return err
}
