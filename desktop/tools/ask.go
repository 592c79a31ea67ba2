package tools

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/npllm/npllm/desktop/ask"
)

// AskTools is the tool set behind the ask loop's door (ask.Tools).
// ReadOnly is enforced here too, not only by the loop: a read-only session
// (--no-act, "Explain") never reaches a write.
type AskTools struct {
	Set      *Set
	ReadOnly bool
}

var _ ask.Tools = AskTools{}

// Definitions lists the tools with their JSON Schemas.
func (t AskTools) Definitions(readOnly bool) []ask.ToolDef {
	var out []ask.ToolDef
	for _, d := range t.Set.Defs(readOnly || t.ReadOnly) {
		out = append(out, ask.ToolDef{Name: d.Name, Description: d.Description, Parameters: d.InputSchema(), Write: d.Write})
	}
	return out
}

// Call runs one tool with the model's (already bounded) JSON arguments.
func (t AskTools) Call(ctx context.Context, name string, args json.RawMessage) (ask.ToolResult, error) {
	var m map[string]any
	if len(args) > 0 {
		if err := json.Unmarshal(args, &m); err != nil {
			return ask.ToolResult{Text: fmt.Sprintf("arguments are not a JSON object: %v", err), IsError: true}, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return ask.ToolResult{}, err
	}
	r := t.Set.Call(ctx, name, m, t.ReadOnly)
	out := ask.ToolResult{Text: r.Text, IsError: r.IsError}
	if r.Structured != nil {
		data, err := json.Marshal(r.Structured)
		if err != nil {
			return ask.ToolResult{}, fmt.Errorf("render %s: %w", name, err)
		}
		out.Structured = data
	}
	return out, nil
}
