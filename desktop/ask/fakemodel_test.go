package ask

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/npllm/npllm/desktop/ask/asktest"
)

type (
	fakeModel    = asktest.Model
	modelRequest = asktest.Request
	sse          = asktest.SSE
)

var (
	newFakeModel = asktest.New
	answer       = asktest.Answer
	calls        = asktest.Calls
)

// fakeTools stands in for desktop/mcp's tool set (the lead wires the real
// one; it needs npllmd on a bus). It validates like the real handlers and
// records what actually ran.
type fakeTools struct {
	mu  sync.Mutex
	ran []string // "name args" of every executed call
}

var fakeDefs = []ToolDef{
	{Name: "system_status", Description: "Health, load, CPU, memory of this machine.", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
	{Name: "process_details", Description: "Everything known about one process.", Parameters: json.RawMessage(`{"type":"object","properties":{"pid":{"type":"integer","minimum":1}},"required":["pid"]}`)},
	{Name: "signal_process", Description: "Send a signal to a process; polkit asks the user.", Write: true,
		Parameters: json.RawMessage(`{"type":"object","properties":{"pid":{"type":"integer"},"start_time":{"type":"integer"},"signal":{"type":"string","enum":["TERM","KILL"]}},"required":["pid","start_time","signal"]}`)},
}

func (f *fakeTools) Definitions(readOnly bool) []ToolDef {
	var out []ToolDef
	for _, d := range fakeDefs {
		if !readOnly || !d.Write {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeTools) Call(_ context.Context, name string, args json.RawMessage) (ToolResult, error) {
	var a struct {
		PID *float64 `json:"pid"`
	}
	if err := json.Unmarshal(args, &a); err != nil {
		return ToolResult{Text: "arguments: " + err.Error(), IsError: true}, nil
	}
	if strings.Contains(string(args), "crash me") { // a tool bug the model's input could hit
		panic("index out of range")
	}
	if name == "process_details" || name == "signal_process" {
		if a.PID == nil || *a.PID < 1 || *a.PID > 4194304 || *a.PID != float64(int(*a.PID)) {
			return ToolResult{Text: "pid must be an integer from 1 to 4194304", IsError: true}, nil
		}
	}
	f.mu.Lock()
	f.ran = append(f.ran, name+" "+string(args))
	f.mu.Unlock()
	switch name {
	case "system_status":
		return ToolResult{Text: "Health ok. Load 0.42 0.30 0.20, CPU 3%.", Structured: json.RawMessage(`{"health":"ok","load":[0.42,0.3,0.2]}`)}, nil
	case "process_details":
		return ToolResult{Text: fmt.Sprintf("pid %d firefox", int(*a.PID))}, nil
	}
	return ToolResult{Text: "sent"}, nil
}

func (f *fakeTools) executed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ran...)
}
