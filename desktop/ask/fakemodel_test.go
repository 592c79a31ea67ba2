package ask

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeModel is this package's one test double, at the boundary that cannot
// run here: no model weights can be fetched on this machine, so a scripted
// server plays the model. It speaks the wire format as ollama (OpenAI
// compatibility, /v1/chat/completions) and llama-server document it: SSE
// "data: {json}" lines of chat.completion.chunk objects, the role in the
// first delta, tool_calls deltas keyed by "index" with the id and name
// first and "arguments" in fragments after, "finish_reason" on its own
// chunk with an empty delta, and "data: [DONE]". Everything behind the
// HTTP client — the SDK, the loop, the checks — is the real code.
type fakeModel struct {
	t      *testing.T
	srv    *httptest.Server
	models []string
	script []func(w *sse, req modelRequest)

	mu       sync.Mutex
	requests []modelRequest
}

// modelRequest is what the loop sent, decoded for assertions.
type modelRequest struct {
	Model     string           `json:"model"`
	Stream    bool             `json:"stream"`
	MaxTokens int              `json:"max_tokens"`
	Messages  []map[string]any `json:"messages"`
	Tools     []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string         `json:"name"`
			Description string         `json:"description"`
			Parameters  map[string]any `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	Authorization string `json:"-"`
}

func (r modelRequest) toolNames() []string {
	var out []string
	for _, t := range r.Tools {
		out = append(out, t.Function.Name)
	}
	return out
}

// last returns the last message of a role.
func (r modelRequest) last(role string) map[string]any {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i]["role"] == role {
			return r.Messages[i]
		}
	}
	return nil
}

// newFakeModel serves the script: the n-th chat request gets script[n].
func newFakeModel(t *testing.T, script ...func(w *sse, req modelRequest)) *fakeModel {
	m := &fakeModel{t: t, models: []string{"qwen2.5:7b", "llama3.2:3b"}, script: script}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		var data []map[string]any
		for _, id := range m.models {
			data = append(data, map[string]any{"id": id, "object": "model", "created": 1732000000, "owned_by": "library"})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req modelRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
			return
		}
		req.Authorization = r.Header.Get("Authorization")
		m.mu.Lock()
		n := len(m.requests)
		m.requests = append(m.requests, req)
		m.mu.Unlock()
		if n >= len(m.script) {
			t.Errorf("fake model: request %d beyond the script of %d", n+1, len(m.script))
			http.Error(w, `{"error":{"message":"script ended"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		s := &sse{w: w, f: w.(http.Flusher), ctx: r.Context(), id: fmt.Sprintf("chatcmpl-%d", n+1), model: req.Model}
		m.script[n](s, req)
	})
	m.srv = httptest.NewServer(mux)
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeModel) url() string { return m.srv.URL + "/v1" }

func (m *fakeModel) got() []modelRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]modelRequest(nil), m.requests...)
}

// sse writes one streamed reply.
type sse struct {
	w      http.ResponseWriter
	f      http.Flusher
	ctx    context.Context
	id     string
	model  string
	roled  bool
	closed bool
}

func (s *sse) chunk(delta map[string]any, finish any) {
	if !s.roled {
		delta["role"] = "assistant"
		s.roled = true
	}
	data, _ := json.Marshal(map[string]any{
		"id": s.id, "object": "chat.completion.chunk", "created": 1732000000, "model": s.model,
		"system_fingerprint": "fp_ollama",
		"choices":            []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
	})
	s.raw("data: " + string(data))
}

// raw writes one SSE event (a line, then the blank line) and flushes.
func (s *sse) raw(line string) {
	if s.closed {
		return
	}
	if _, err := fmt.Fprintf(s.w, "%s\n\n", line); err != nil {
		s.closed = true
		return
	}
	s.f.Flush()
}

func (s *sse) text(parts ...string) {
	for _, p := range parts {
		s.chunk(map[string]any{"content": p}, nil)
	}
}

// toolCall streams one call: id, type and name first with empty
// arguments, then each fragment of the arguments alone.
func (s *sse) toolCall(index int, id, name string, fragments ...string) {
	s.chunk(map[string]any{"tool_calls": []any{map[string]any{
		"index": index, "id": id, "type": "function", "function": map[string]any{"name": name, "arguments": ""}}}}, nil)
	for _, f := range fragments {
		s.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": index, "function": map[string]any{"arguments": f}}}}, nil)
	}
}

func (s *sse) finish(reason string) { s.chunk(map[string]any{}, reason) }
func (s *sse) done()                { s.raw("data: [DONE]") }

// stall holds the reply open until the client gives up.
func (s *sse) stall() {
	select {
	case <-s.ctx.Done():
	case <-time.After(30 * time.Second):
	}
}

// answer is a whole plain reply.
func answer(parts ...string) func(*sse, modelRequest) {
	return func(w *sse, _ modelRequest) {
		w.text(parts...)
		w.finish("stop")
		w.done()
	}
}

// calls is a reply that only calls one tool, arguments in fragments.
func calls(name string, fragments ...string) func(*sse, modelRequest) {
	return func(w *sse, _ modelRequest) {
		w.toolCall(0, "call_"+strings.ReplaceAll(name, " ", "_"), name, fragments...)
		w.finish("tool_calls")
		w.done()
	}
}

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
