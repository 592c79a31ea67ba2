package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/mutes"
	"github.com/spf13/cobra"
)

// Mutes belong to the desktop user, in their state directory: these
// commands edit that file (npllm-agent notices) and need no daemon.
func mutesCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use: "mutes", Short: "the alerts you muted in npllm-agent (yours only)", GroupID: "agent",
		Args: nargs(0, 0, "mutes"),
		RunE: func(cmd *cobra.Command, args []string) error { return local(runMutes(cmd.Context(), env, nil, args)) },
	}
}

func unmuteCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use: "unmute KIND [APP]", Short: `hear of a muted kind of alert again (e.g. "npllmctl unmute process.crash firefox")`, GroupID: "agent",
		Args: nargs(1, 2, "unmute KIND [APP]   (npllmctl mutes lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error { return local(runUnmute(cmd.Context(), env, nil, args)) },
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return api.AlertKinds, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// local gives a failure of a command that needs no daemon exit status 1.
func local(err error) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: 1, Err: err}
}

func runMutes(_ context.Context, env *Env, _ *client.Client, args []string) error {
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
