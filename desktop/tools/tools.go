// Package tools is npllm's tool set for models: one table of definitions,
// argument checks and result rendering behind two doors — the MCP bridge
// (desktop/mcp) and the ask loop (desktop/ask, through AskTools). It talks
// only to npllmd through dbus/client.API, as the user running it; every
// write carries the automated-caller option, so polkit asks the user
// afresh for each one.
package tools

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/npllm/npllm/dbus/client"
)

// Options configure a tool set.
type Options struct {
	// Interactive lets polkit ask the desktop user (through their polkit
	// agent) to confirm a write. Off, a write that needs consent is refused.
	Interactive bool
	Log         *slog.Logger
}

// Hints are MCP's tool annotations; every one is set explicitly.
type Hints struct {
	ReadOnly, Destructive, Idempotent, OpenWorld bool
}

// Def is one tool: its contract and its handler.
type Def struct {
	Name        string
	Description string
	Params      []Param
	// Output is a zero value of the structured result's type (its JSON
	// schema is derived from it).
	Output any
	// Write tools change the machine: hidden in read-only mode.
	Write bool
	// Tuning tools need a client that can tune (client.Tuner): a client
	// that cannot (an old npllmd, a fake) offers none of them.
	Tuning bool
	Hints  Hints
	run    func(ctx context.Context, s *Set, a *Args) Result
}

// OutputType is the type of the structured result.
func (d *Def) OutputType() reflect.Type { return reflect.TypeOf(d.Output) }

// Result is what a tool answered.
type Result struct {
	// Text is a short summary for people and small models.
	Text string
	// Structured is the full result (nil for errors).
	Structured any
	// IsError marks a result that says why nothing was done.
	IsError bool
}

// Errorf is a tool error the model reads.
func Errorf(format string, args ...any) Result {
	return Result{Text: fmt.Sprintf(format, args...), IsError: true}
}

// Set is the tool set over one client.
type Set struct {
	client client.API
	tuner  client.Tuner // nil: no tuning tools
	opts   Options

	mu    sync.Mutex
	top   []ProcessSummary // cached for topProcessesTTL
	topAt time.Time
}

// New builds the tool set.
func New(c client.API, opts Options) *Set {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	tu, _ := c.(client.Tuner)
	return &Set{client: c, tuner: tu, opts: opts}
}

// offers says whether this set offers d.
func (s *Set) offers(d *Def, readOnly bool) bool {
	return !(readOnly && d.Write) && !(d.Tuning && s.tuner == nil)
}

// Defs are the tools offered: without the write tools when readOnly, and
// without the tuning tools when the client cannot tune.
func (s *Set) Defs(readOnly bool) []*Def {
	out := make([]*Def, 0, len(table))
	for _, d := range table {
		if s.offers(d, readOnly) {
			out = append(out, d)
		}
	}
	return out
}

// Lookup finds a tool of the table by name.
func Lookup(name string) (*Def, bool) {
	i := slices.IndexFunc(table, func(d *Def) bool { return d.Name == name })
	if i < 0 {
		return nil, false
	}
	return table[i], true
}

// Call checks args against the tool's parameters and runs it. Unknown
// tools, unknown argument names and bad values are tool errors: nothing
// is sent to npllmd. readOnly refuses write tools even if asked by name.
func (s *Set) Call(ctx context.Context, name string, args map[string]any, readOnly bool) Result {
	d, ok := Lookup(name)
	if !ok || d.Tuning && s.tuner == nil {
		return Errorf("no tool %q", clip(name, 64))
	}
	if d.Write && readOnly {
		return Errorf("%s changes the system and this session is read-only: nothing was done", name)
	}
	a, err := newArgs(d, args)
	if err != nil {
		return Errorf("%v", err)
	}
	return d.run(ctx, s, a)
}

// callOptions: every write is an automated caller's (a model asked for
// it): npllmd maps that to polkit actions without a keep-window, so an
// earlier approval never covers the next write.
func (s *Set) callOptions() client.CallOptions {
	return client.CallOptions{Interactive: s.opts.Interactive, Automated: true}
}

// tuneCall is callOptions for the trial methods: "automated" also makes
// npllmd use agent-tune, which polkit never keeps.
func (s *Set) tuneCall() client.TuneCall {
	return client.TuneCall{Interactive: s.opts.Interactive, Automated: true}
}

// table is the one list of tools; the order is the order offered.
var table = []*Def{
	defSystemStatus, defListProcesses, defProcessDetails, defRecentEvents, defUnitStatus,
	defSignalProcess, defSetPriority, defManageUnit,
	defListTunables, defTryTuning, defConfirmTuning, defRevertTuning,
}

var readHints = Hints{ReadOnly: true, Idempotent: true}
