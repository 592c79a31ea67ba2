// Package ask answers questions about this machine with the user's local
// model (any OpenAI-compatible chat-completions server: ollama,
// llama-server, LM Studio), letting the model call npllm's own tools.
//
// Everything the model sends is untrusted input: tool names are checked
// against the offered set, arguments must be a bounded JSON object before
// the tool's own validation sees them, replies are capped in bytes, steps
// and time, and a write tool is never run in read-only mode. The package
// never talks to npllmd itself: the tools do (see Tools).
package ask

import (
	"context"
	"encoding/json"
)

// ToolDef is one tool as offered to the model.
type ToolDef struct {
	Name        string
	Description string
	// Parameters is the JSON Schema of the arguments (an object schema).
	Parameters json.RawMessage
	// Write tools change the machine (and go through polkit's fresh
	// consent); they are never offered nor run in read-only mode.
	Write bool
}

// ToolResult is what a tool answered.
type ToolResult struct {
	// Text is the short human summary (MCP's text content).
	Text string
	// Structured is the full result as JSON, when the tool has one (MCP's
	// structuredContent); it is what the model gets besides Text.
	Structured json.RawMessage
	// IsError marks a result that explains why the tool did nothing (bad
	// argument, refused by polkit, no such process): the model reads it.
	IsError bool
}

// Tools is the door-neutral tool set the loop calls: the same one that
// desktop/mcp serves, so there is one set of tools behind two doors.
//
// Assumptions the loop makes of an implementation:
//   - Definitions(true) returns only the read tools, Definitions(false)
//     all of them; names are unique and at most 64 bytes of [a-zA-Z0-9_-].
//   - Call validates args itself (ranges, enums, required keys) and reports
//     bad ones as a result with IsError, having done nothing; it is only
//     ever called with a name from Definitions and a JSON object.
//   - A returned error means the call could not be made at all (npllmd
//     unreachable, context cancelled); the loop tells the model so.
//   - Writes ask for the user's consent themselves (interactive polkit).
type Tools interface {
	Definitions(readOnly bool) []ToolDef
	Call(ctx context.Context, name string, args json.RawMessage) (ToolResult, error)
}
