// Package ctl implements npllmctl's commands over the dbus client. Each
// command prints for people by default and JSON with --json.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	npbus "github.com/npllm/npllm/dbus"
)

// Usage is npllmctl's --help text.
const Usage = `Usage: npllmctl [--json] [--timeout DURATION] COMMAND [ARGS]

npllmctl talks to npllmd, the npllm system daemon, over the system bus
(org.npllm.Assistant). Reading is open to every local user; acting on
processes and units is authorized by polkit, which may ask for a password.

Commands:
  status                 health, load, CPU, memory, swap, pressure, sensors
                         and active alerts, at a glance
  top [--sort cpu|memory|io] [--limit N] [--user UID]
                         processes, busiest first (default: cpu, 20)
  ps PID                 everything npllmd knows about one process
  events [--follow] [--kind K1,K2] [--pid PID] [--after SEQ] [--limit N]
                         the event journal (process.exec, process.exit, …);
                         --follow keeps printing new events
  sensors                every sensor: the variant in use, why better ones
                         were skipped, and its counters (drops included)
  sensors enable|disable NAME
                         switch a sensor on or off until npllmd restarts
                         (polkit: org.npllm.Assistant.configure)
  hist NAME [--series S] a latency histogram kept in the kernel:
                         runq_latency, block_io_latency (--series read,
                         write or other)
  syscalls [--pid PID] [--syscall NAME] [--sort count|errors|time] [--limit N]
                         top processes by syscall count, with errors by
                         errno (needs "npllmctl sensors enable syscalls")
  alerts                 active alerts (memory, disks, OOM kills, crashes, …)
  alert ID               one alert; root and the process's owner also see
                         its private details (e.g. the cgroup)
  baseline PROGRAM [--forget]
                         what npllmd has learned is normal for a program
                         you run (peak memory, CPU time, lifetime, crashes);
                         --forget starts learning again (polkit: configure)
  config [KEY=VALUE ...] show the alert thresholds, or change them until
                         npllmd restarts (polkit: configure); the file is
                         /etc/npllm/npllmd.toml
  mutes                  the alerts you muted in npllm-agent (yours only)
  unmute KIND [APP]      hear of a muted kind of alert again (e.g.
                         "npllmctl unmute process.crash firefox")
  signal PID SIGNAL      send TERM, KILL, INT, HUP, STOP or CONT
  renice PID NICE        set the nice value (-20..19) of every thread
  ionice PID CLASS LEVEL set the I/O class (realtime, best-effort, idle)
                         and level (0..7)
  unit VERB UNIT         start, stop, restart or reload a systemd unit

Acting commands identify the process by pid and start time, so a pid that
is reused in between is refused rather than hit. They allow polkit to ask
for a password through your desktop's or terminal's polkit agent (run
"pkttyagent --process $$" in a plain terminal); polkit's refusal is printed
in plain words.

Options:
  --json                 print machine-readable JSON instead of text
  --timeout DURATION     give up on npllmd after this long (default 2m, time to type a password)
  -h, --help             show this help

Environment:
  DBUS_SYSTEM_BUS_ADDRESS  the bus to use instead of the system bus (set by
                           "make run" for a private development bus)

Exit status: 0 on success, 1 when npllmd refused or failed (the reason is
printed on one line), 2 on bad usage, 3 when npllmd is not reachable.
`

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
	// Connect opens the client (replaced in tests only by the same function
	// pointed at a private bus).
	Connect func(context.Context) (*npbus.Client, error)
}

type command struct {
	name string
	run  func(ctx context.Context, env *Env, c *npbus.Client, args []string) error
	// local commands do not talk to npllmd (c is nil).
	local bool
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// Run parses the arguments and runs one command.
func Run(ctx context.Context, env *Env, args []string) error {
	global := flag.NewFlagSet("npllmctl", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.BoolVar(&env.JSON, "json", false, "")
	global.DurationVar(&env.Timeout, "timeout", 2*time.Minute, "")
	help := global.Bool("help", false, "")
	global.BoolVar(help, "h", false, "")
	if err := global.Parse(args); err != nil {
		return usageErr("%v (see npllmctl --help)", err)
	}
	rest := global.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		fmt.Fprint(env.Out, Usage)
		return nil
	}
	cmd, ok := commands[rest[0]]
	if !ok {
		return usageErr("unknown command %q (see npllmctl --help)", rest[0])
	}
	ctx, cancel := context.WithTimeout(ctx, env.Timeout)
	defer cancel()
	if cmd.local {
		if err := cmd.run(ctx, env, nil, rest[1:]); err != nil {
			var ee *ExitError
			if errors.As(err, &ee) {
				return err
			}
			return &ExitError{Code: 1, Err: err}
		}
		return nil
	}
	client, err := env.Connect(ctx)
	if err != nil {
		return &ExitError{Code: 3, Err: err}
	}
	defer client.Close()
	if err := cmd.run(ctx, env, client, rest[1:]); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return err
		}
		return &ExitError{Code: 1, Err: explain(err)}
	}
	return nil
}

// explain turns D-Bus errors into one plain sentence.
func explain(err error) error {
	name, msg := npbus.ErrorName(err), npbus.ErrorMessage(err)
	switch name {
	case "":
		return err
	case npbus.ErrNotAuthorized, npbus.ErrAccessDenied:
		return fmt.Errorf("not authorized: %s", msg)
	case npbus.ErrInteractiveAuthorizationRequired:
		return fmt.Errorf("authentication is required but no polkit agent could ask you: %s (run pkttyagent, or use a desktop session)", msg)
	case npbus.ErrNoSuchProcess:
		return fmt.Errorf("no such process: %s", msg)
	case npbus.ErrProcessChanged:
		return fmt.Errorf("the process changed: %s", msg)
	case npbus.ErrInvalidArgument, npbus.ErrInvalidArgs:
		return fmt.Errorf("invalid argument: %s", msg)
	case npbus.ErrNotSupported:
		return fmt.Errorf("not supported here: %s", msg)
	}
	return fmt.Errorf("%s (%s)", msg, name)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
