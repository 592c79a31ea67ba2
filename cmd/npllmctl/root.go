package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

const rootLong = `npllmctl talks to npllmd, the npllm system daemon, over the system bus
(org.npllm.Assistant). Reading is open to every local user; acting on
processes and units is authorized by polkit, which may ask for a password.

Acting commands identify the process by pid and start time, so a pid that
is reused in between is refused rather than hit. They allow polkit to ask
for a password through your desktop's or terminal's polkit agent (run
"pkttyagent --process $$" in a plain terminal); polkit's refusal is printed
in plain words.

Global flags (--json, --timeout) may be given anywhere on the line.

Environment:
  DBUS_SYSTEM_BUS_ADDRESS  the bus to use instead of the system bus (set by
                           "make run" for a private development bus)

Exit status: 0 on success, 1 when npllmd refused or failed (the reason is
printed on one line), 2 on bad usage, 3 when npllmd is not reachable.`

// ExitError carries an exit status with its one-line reason.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// Env is where a command runs.
type Env struct {
	Out     io.Writer
	JSON    bool
	Timeout time.Duration
	// Connect opens the client (tests point it at a private bus).
	Connect func(context.Context) (*client.Client, error)
}

// runFunc is a command that talks to npllmd.
type runFunc func(ctx context.Context, env *Env, c *client.Client, args []string) error

// newRoot builds the command tree for one run.
func newRoot(ctx context.Context, env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "npllmctl",
		Short:         "the command-line client of npllmd",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		// No "help" noise for a bare npllmctl: it prints the help.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q (see npllmctl --help)", args[0])
			}
			return cmd.Help()
		},
		Args: cobra.ArbitraryArgs,
	}
	root.SetOut(env.Out)
	root.SetContext(ctx)
	root.PersistentFlags().BoolVar(&env.JSON, "json", false, "print machine-readable JSON instead of text")
	root.PersistentFlags().DurationVar(&env.Timeout, "timeout", 2*time.Minute, "give up on npllmd after this long (time to type a password)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErr("%s: %v (see npllmctl %s --help)", cmd.Name(), err, cmd.Name())
	})
	root.AddGroup(&cobra.Group{ID: "read", Title: "Reading:"}, &cobra.Group{ID: "act", Title: "Acting (polkit):"},
		&cobra.Group{ID: "agent", Title: "The desktop agent's mutes:"})
	for _, c := range []*cobra.Command{
		statusCmd(env), topCmd(env), psCmd(env), eventsCmd(env), sensorsCmd(env), histCmd(env), syscallsCmd(env),
		alertsCmd(env), alertCmd(env), baselineCmd(env), configCmd(env),
		signalCmd(env), reniceCmd(env), ioniceCmd(env), unitCmd(env),
		mutesCmd(env), unmuteCmd(env), tuneCmd(env),
	} {
		root.AddCommand(c)
	}
	root.AddCommand(askCmd(env))
	return root
}

// daemonCmd makes a command that connects to npllmd and runs fn.
func daemonCmd(env *Env, group, use, short string, args cobra.PositionalArgs, fn runFunc) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, GroupID: group, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), env.Timeout)
			defer cancel()
			c, err := env.Connect(ctx)
			if err != nil {
				return &ExitError{Code: 3, Err: err}
			}
			defer c.Close()
			if err := fn(ctx, env, c, args); err != nil {
				var ee *ExitError
				if errors.As(err, &ee) {
					return err
				}
				return &ExitError{Code: 1, Err: explain(err)}
			}
			return nil
		},
	}
}

// nargs checks the number of positional arguments with a usage line.
func nargs(lo, hi int, usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageErr("usage: npllmctl %s", usage)
		}
		return nil
	}
}

// negative matches a negative number given as an argument (renice PID -5),
// which the flag parser would take for a flag.
var negative = regexp.MustCompile(`^-[0-9]+$`)

// Run parses the arguments and runs one command.
func Run(ctx context.Context, env *Env, args []string) error {
	if !slices.Contains(args, "--") {
		var nums []string
		rest := make([]string, 0, len(args)+1)
		for _, a := range args {
			if negative.MatchString(a) {
				nums = append(nums, a)
			} else {
				rest = append(rest, a)
			}
		}
		if len(nums) > 0 {
			args = append(append(rest, "--"), nums...)
		}
	}
	root := newRoot(ctx, env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	// Everything else cobra reports (unknown commands, bad flags) is usage.
	return &ExitError{Code: 2, Err: fmt.Errorf("%v (see npllmctl --help)", err)}
}

// explain turns D-Bus errors into one plain sentence.
func explain(err error) error {
	name, msg := api.ErrorName(err), api.ErrorMessage(err)
	switch name {
	case "":
		return err
	case api.ErrNotAuthorized, api.ErrAccessDenied:
		return fmt.Errorf("not authorized: %s", msg)
	case api.ErrInteractiveAuthorizationRequired:
		return fmt.Errorf("authentication is required but no polkit agent could ask you: %s (run pkttyagent, or use a desktop session)", msg)
	case api.ErrNoSuchProcess:
		return fmt.Errorf("no such process: %s", msg)
	case api.ErrProcessChanged:
		return fmt.Errorf("the process changed: %s", msg)
	case api.ErrInvalidArgument, api.ErrInvalidArgs:
		return fmt.Errorf("invalid argument: %s", msg)
	case api.ErrNotSupported:
		return fmt.Errorf("not supported here: %s", msg)
	case api.ErrConflict:
		return fmt.Errorf("conflict: %s", msg)
	case api.ErrNotFound:
		return fmt.Errorf("not found: %s", msg)
	}
	return fmt.Errorf("%s (%s)", msg, name)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func done(env *Env, v map[string]any, format string, args ...any) error {
	if env.JSON {
		return printJSON(env.Out, v)
	}
	_, err := fmt.Fprintf(env.Out, format+"\n", args...)
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func pad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}
