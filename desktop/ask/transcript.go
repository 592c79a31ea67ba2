package ask

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
)

// ErrBadArguments: a tool call's arguments were not a bounded JSON object.
var ErrBadArguments = errors.New("invalid tool arguments")

// Transcript is a whole conversation, for --json.
type Transcript struct {
	Endpoint string    `json:"endpoint"`
	URL      string    `json:"url"`
	Model    string    `json:"model"`
	ReadOnly bool      `json:"read_only"`
	Tools    []string  `json:"tools"`
	Messages []Message `json:"messages"`
}

// Message is one turn: system, user, assistant (text and tool calls) or
// tool (one call's result).
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Name       string     `json:"name,omitempty"`
	Finish     string     `json:"finish_reason,omitempty"`
	ReplyBytes int64      `json:"reply_bytes,omitempty"`
	Note       string     `json:"note,omitempty"`
	// Error says what went wrong with this turn (nothing was run).
	Error string `json:"error,omitempty"`
}

// ToolCall is one call the model asked for, arguments as it sent them.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	oversized bool
}

// Phase of a ToolReport.
type Phase string

const (
	PhaseCall   Phase = "call"   // validated, about to run (a write may prompt now)
	PhaseResult Phase = "result" // ran, or was refused (Rejected says why)
)

// ToolReport tells the observer about one tool call.
type ToolReport struct {
	Step     int
	Phase    Phase
	Call     ToolCall
	Executed bool
	IsError  bool
	// Rejected is why the call was not run (unknown tool, bad arguments,
	// write in read-only mode); empty when it ran.
	Rejected string
	Result   string // the tool's short text, or the error
}

// Compact is one line for the terminal or the tray:
// "→ process_details {"pid":42}" then "← process_details: pid 42 …".
func (r ToolReport) Compact() string {
	name := printable(clip(r.Call.Name, maxToolName))
	if r.Phase == PhaseCall {
		return fmt.Sprintf("→ %s %s", name, printable(clip(r.Call.Arguments, 120)))
	}
	switch {
	case r.Rejected != "":
		return fmt.Sprintf("✗ %s not run: %s", name, printable(clip(r.Rejected, 200)))
	case r.IsError:
		return fmt.Sprintf("✗ %s: %s", name, printable(clip(r.Result, 200)))
	}
	return fmt.Sprintf("← %s: %s", name, printable(clip(r.Result, 200)))
}

// printable flattens text to one line without control characters.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// toolNameRe is what OpenAI-compatible servers accept as a function name.
var toolNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// param renders a recorded message for the next request. A call's name or
// arguments that servers would choke on (llama-server and ollama parse the
// arguments of earlier calls) are replaced; the transcript keeps them.
func (m Message) param() openai.ChatCompletionMessageParamUnion {
	switch m.Role {
	case "system":
		return openai.SystemMessage(m.Content)
	case "user":
		return openai.UserMessage(m.Content)
	case "tool":
		return openai.ToolMessage(m.Content, m.ToolCallID)
	}
	a := openai.ChatCompletionAssistantMessageParam{}
	if m.Content != "" || len(m.ToolCalls) == 0 {
		a.Content.OfString = openai.String(m.Content)
	}
	for _, c := range m.ToolCalls {
		name, args := c.Name, c.Arguments
		if !toolNameRe.MatchString(name) {
			name = "invalid_tool_name"
		}
		if _, err := checkArgs(c, 1<<30); err != nil {
			args = "{}"
		}
		a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
			OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
				ID: c.ID, Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: name, Arguments: args},
			}})
	}
	return openai.ChatCompletionMessageParamUnion{OfAssistant: &a}
}

// checkArgs accepts a JSON object of at most max bytes with unique keys
// (parsers disagree on which duplicate wins); "" counts as {}.
func checkArgs(c ToolCall, max int) (json.RawMessage, error) {
	raw := strings.TrimSpace(c.Arguments)
	if c.oversized || len(raw) > max {
		return nil, fmt.Errorf("%w: arguments of %s are larger than %d bytes", ErrBadArguments, clip(c.Name, maxToolName), max)
	}
	if raw == "" {
		return json.RawMessage("{}"), nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: arguments must be a JSON object, got %s", ErrBadArguments, clip(raw, 80))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: not valid JSON: %v", ErrBadArguments, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("%w: key %q appears twice", ErrBadArguments, clip(key, 64))
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: not valid JSON: %v", ErrBadArguments, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrBadArguments, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: text after the JSON object", ErrBadArguments)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(raw)); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrBadArguments, err)
	}
	return compact.Bytes(), nil
}

// resultText is what the model reads of a result: the summary, then the
// structured data when there is some.
func resultText(r ToolResult) string {
	if len(r.Structured) == 0 {
		return r.Text
	}
	var b bytes.Buffer
	if json.Compact(&b, r.Structured) != nil {
		return r.Text
	}
	if r.Text == "" {
		return b.String()
	}
	return r.Text + "\n" + b.String()
}

// clip cuts s to at most max bytes on a rune boundary, marking the cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…[cut]"
	end := max - len(mark)
	if end < 0 {
		end = 0
	}
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}

func toolNames(defs []ToolDef) string { return strings.Join(toolNamesList(defs), ", ") }

func toolNamesList(defs []ToolDef) []string {
	names := make([]string, 0, len(defs))
	for _, d := range defs {
		names = append(names, d.Name)
	}
	return names
}
