// Package mcp bridges npllmd's D-Bus API to the Model Context Protocol, so
// that local models can observe the machine and — through polkit, as the
// user running the bridge — act on it. It never talks to anything but the
// daemon's API, and never runs as root.
package mcp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/tools"
)

// Options configure a bridge.
type Options struct {
	Version string
	// ReadOnly hides every tool that changes something.
	ReadOnly bool
	// Interactive lets polkit ask the desktop user (through their polkit
	// agent) to confirm a write a model asked for; every write is marked
	// automated, so polkit asks afresh each time. Off, a write that needs
	// consent is refused.
	Interactive bool
	Log         *slog.Logger
}

// Bridge is an MCP server over one D-Bus client.
type Bridge struct {
	client client.API
	opts   Options
	log    *slog.Logger
	srv    *server.MCPServer
	tools  *tools.Set // the tool set shared with the ask loop

	mu   sync.Mutex
	subs map[string]map[string]bool // session → subscribed resource URIs
}

// New builds the MCP server: tools, resources, prompts.
func New(client client.API, opts Options) *Bridge {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	b := &Bridge{client: client, opts: opts, log: opts.Log, subs: map[string]map[string]bool{},
		tools: tools.New(client, tools.Options{Interactive: opts.Interactive, Log: opts.Log})}
	hooks := &server.Hooks{}
	hooks.AddAfterSubscribe(func(ctx context.Context, _ any, req *mcp.SubscribeRequest, _ *mcp.EmptyResult) {
		b.subscribe(ctx, req.Params.URI, true)
	})
	hooks.AddAfterUnsubscribe(func(ctx context.Context, _ any, req *mcp.UnsubscribeRequest, _ *mcp.EmptyResult) {
		b.subscribe(ctx, req.Params.URI, false)
	})
	hooks.AddOnUnregisterSession(func(_ context.Context, s server.ClientSession) {
		b.mu.Lock()
		delete(b.subs, s.SessionID())
		b.mu.Unlock()
	})
	b.srv = server.NewMCPServer("npllm", opts.Version,
		server.WithTitle("npllm system assistant"),
		server.WithInstructions(instructions),
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(true, false),
		server.WithPromptCapabilities(false),
		server.WithRecovery(),
		server.WithHooks(hooks),
		server.WithToolHandlerMiddleware(b.logCall),
	)
	b.addTools()
	b.addResources()
	b.addPrompts()
	b.addTuningPrompt()
	return b
}

const instructions = `npllm shows what this Linux machine is doing and can act on it through polkit, as the user running this bridge.
Start with system_status. Processes are identified by pid AND start_time (from list_processes or process_details): pass both back to any write tool, so a reused pid is never hit.
Writes may be refused by polkit; the error says what would allow them. Never retry a refused write with another pid.`

// Server is the MCP server, for the transports.
func (b *Bridge) Server() *server.MCPServer { return b.srv }

func (b *Bridge) subscribe(ctx context.Context, uri string, on bool) {
	s := server.ClientSessionFromContext(ctx)
	if s == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.subs[s.SessionID()]
	if set == nil {
		set = map[string]bool{}
		b.subs[s.SessionID()] = set
	}
	if on {
		set[uri] = true
	} else {
		delete(set, uri)
	}
}

// DaemonNotice tells subscribed clients that a resource changed; it is
// called with each notice from npllmd (client.Watch).
func (b *Bridge) DaemonNotice(n client.Notice) {
	switch n.(type) {
	case client.AlertRaised, client.AlertCleared:
		b.notifyUpdated(uriAlerts, uriStatus)
	}
}

func (b *Bridge) notifyUpdated(uris ...string) {
	b.mu.Lock()
	type target struct{ session, uri string }
	var targets []target
	for session, set := range b.subs {
		for _, uri := range uris {
			if set[uri] {
				targets = append(targets, target{session, uri})
			}
		}
	}
	b.mu.Unlock()
	for _, t := range targets {
		if err := b.srv.SendNotificationToSpecificClient(t.session, mcp.MethodNotificationResourceUpdated, map[string]any{"uri": t.uri}); err != nil {
			b.log.Debug("resource update not delivered", "session", t.session, "uri", t.uri, "err", err)
		}
	}
}

// sensitiveArgs are never logged.
var sensitiveArgs = []string{"token", "password", "secret"}

// logCall logs every tool call: tool, arguments, caller, result.
func (b *Bridge) logCall(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		res, err := next(ctx, req)
		args := map[string]any{}
		for k, v := range req.GetArguments() {
			if slices.ContainsFunc(sensitiveArgs, func(s string) bool { return strings.Contains(strings.ToLower(k), s) }) {
				v = "[redacted]"
			}
			args[k] = v
		}
		caller := "unknown"
		if s := server.ClientSessionFromContext(ctx); s != nil {
			caller = s.SessionID()
			if ci, ok := s.(server.SessionWithClientInfo); ok {
				caller = fmt.Sprintf("%s %s (session %s)", ci.GetClientInfo().Name, ci.GetClientInfo().Version, s.SessionID())
			}
		}
		result := "ok"
		switch {
		case err != nil:
			result = "error: " + err.Error()
		case res != nil && res.IsError:
			result = "refused: " + resultText(res)
		}
		b.log.Info("mcp tool call", "tool", req.Params.Name, "args", fmt.Sprint(args), "caller", caller, "result", result, "took", time.Since(start).Round(time.Microsecond))
		return res, err
	}
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}
