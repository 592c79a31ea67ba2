package mcp

import (
	"context"
	"encoding/json"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/desktop/tools"
)

// addTools serves desktop/tools' table: the same definitions, checks and
// rendering the ask loop uses. Only the MCP shapes are made here.
func (b *Bridge) addTools() {
	for _, d := range b.tools.Defs(b.opts.ReadOnly) {
		tool := mcp.NewToolWithRawSchema(d.Name, d.Description, d.InputSchema())
		// Every annotation is set explicitly: mcp-go's defaults claim
		// tools are destructive and open-world.
		for _, opt := range []mcp.ToolOption{
			mcp.WithReadOnlyHintAnnotation(d.Hints.ReadOnly), mcp.WithDestructiveHintAnnotation(d.Hints.Destructive),
			mcp.WithIdempotentHintAnnotation(d.Hints.Idempotent), mcp.WithOpenWorldHintAnnotation(d.Hints.OpenWorld),
			mcp.WithRawOutputSchema(outputSchema(d)),
		} {
			opt(&tool)
		}
		name := d.Name
		b.srv.AddTool(tool, func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return toMCP(b.tools.Call(ctx, name, req.GetArguments(), b.opts.ReadOnly)), nil
		})
	}
}

// outputSchema derives a tool's output schema from its result type (MCP
// requires type "object").
func outputSchema(d *tools.Def) json.RawMessage {
	s, err := jsonschema.ForType(d.OutputType(), &jsonschema.ForOptions{IgnoreInvalidTypes: true})
	if err != nil {
		return json.RawMessage(`{"type":"object"}`)
	}
	s.Type = "object"
	data, err := json.Marshal(s)
	if err != nil {
		return json.RawMessage(`{"type":"object"}`)
	}
	return data
}

func toMCP(r tools.Result) *mcp.CallToolResult {
	if r.IsError {
		return mcp.NewToolResultError(r.Text)
	}
	return mcp.NewToolResultStructured(r.Structured, r.Text)
}
