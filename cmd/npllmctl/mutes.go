package main

import (
	"context"
	"fmt"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/mutes"
)

// Mutes belong to the desktop user, in their state directory: these
// commands edit that file and npllm-agent notices.
func init() {
	register(command{name: "mutes", run: runMutes, local: true})
	register(command{name: "unmute", run: runUnmute, local: true})
}

func runMutes(_ context.Context, env *Env, _ *client.Client, args []string) error {
	if len(args) != 0 {
		return usageErr("usage: npllmctl mutes")
	}
	m, err := mutes.Open(mutes.Path())
	if err != nil {
		return err
	}
	list := m.List()
	if env.JSON {
		return printJSON(env.Out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(env.Out, "nothing is muted")
	}
	for _, k := range list {
		fmt.Fprintln(env.Out, k)
	}
	return nil
}

func runUnmute(_ context.Context, env *Env, _ *client.Client, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageErr("usage: npllmctl unmute KIND [APP]   (npllmctl mutes lists them)")
	}
	app := ""
	if len(args) == 2 {
		app = args[1]
	}
	m, err := mutes.Open(mutes.Path())
	if err != nil {
		return err
	}
	was, err := m.Unmute(args[0], app)
	if err != nil {
		return err
	}
	if !was {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s %s was not muted (npllmctl mutes lists what is)", args[0], app)}
	}
	return done(env, map[string]any{"kind": args[0], "app": app, "muted": false}, "you will hear of %s alerts about %s again", args[0], app)
}
