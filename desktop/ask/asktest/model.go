// Package asktest is test support: a scripted model server speaking the
// OpenAI-compatible streaming wire format as ollama and llama-server do,
// the one double of the ask tests (no model weights can be fetched here).
package asktest

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

// Model is the ask loop's one test double, at the boundary that cannot
// run here: no model weights can be fetched on this machine, so a scripted
// server plays the model. It speaks the wire format as ollama (OpenAI
// compatibility, /v1/chat/completions) and llama-server document it: SSE
// "data: {json}" lines of chat.completion.chunk objects, the role in the
// first delta, tool_calls deltas keyed by "index" with the id and name
// first and "arguments" in fragments after, "finish_reason" on its own
// chunk with an empty delta, and "data: [DONE]". Everything behind the
// HTTP client — the SDK, the loop, the checks — is the real code.
type Model struct {
	t      testing.TB
	Srv    *httptest.Server
	Models []string
	script []func(w *SSE, req Request)

	mu       sync.Mutex
	requests []Request
}

// Request is what the loop sent, decoded for assertions.
type Request struct {
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

func (r Request) ToolNames() []string {
	var out []string
	for _, t := range r.Tools {
		out = append(out, t.Function.Name)
	}
	return out
}

// Last returns the last message of a role.
func (r Request) Last(role string) map[string]any {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i]["role"] == role {
			return r.Messages[i]
		}
	}
	return nil
}

// New serves the script: the n-th chat request gets script[n].
func New(t testing.TB, script ...func(w *SSE, req Request)) *Model {
	m := &Model{t: t, Models: []string{"qwen2.5:7b", "llama3.2:3b"}, script: script}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		var data []map[string]any
		for _, id := range m.Models {
			data = append(data, map[string]any{"id": id, "object": "model", "created": 1732000000, "owned_by": "library"})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req Request
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
		s := &SSE{w: w, f: w.(http.Flusher), ctx: r.Context(), id: fmt.Sprintf("chatcmpl-%d", n+1), model: req.Model}
		m.script[n](s, req)
	})
	m.Srv = httptest.NewServer(mux)
	t.Cleanup(m.Srv.Close)
	return m
}

func (m *Model) URL() string { return m.Srv.URL + "/v1" }

func (m *Model) Got() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Request(nil), m.requests...)
}

// SSE writes one streamed reply.
type SSE struct {
	w      http.ResponseWriter
	f      http.Flusher
	ctx    context.Context
	id     string
	model  string
	roled  bool
	closed bool
}

func (s *SSE) Chunk(delta map[string]any, finish any) {
	if !s.roled {
		delta["role"] = "assistant"
		s.roled = true
	}
	data, _ := json.Marshal(map[string]any{
		"id": s.id, "object": "chat.completion.chunk", "created": 1732000000, "model": s.model,
		"system_fingerprint": "fp_ollama",
		"choices":            []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
	})
	s.Raw("data: " + string(data))
}

// Raw writes one SSE event (a line, then the blank line) and flushes.
func (s *SSE) Raw(line string) {
	if s.closed {
		return
	}
	if _, err := fmt.Fprintf(s.w, "%s\n\n", line); err != nil {
		s.closed = true
		return
	}
	s.f.Flush()
}

func (s *SSE) Text(parts ...string) {
	for _, p := range parts {
		s.Chunk(map[string]any{"content": p}, nil)
	}
}

// ToolCall streams one call: id, type and name first with empty
// arguments, then each fragment of the arguments alone.
func (s *SSE) ToolCall(index int, id, name string, fragments ...string) {
	s.Chunk(map[string]any{"tool_calls": []any{map[string]any{
		"index": index, "id": id, "type": "function", "function": map[string]any{"name": name, "arguments": ""}}}}, nil)
	for _, f := range fragments {
		s.Chunk(map[string]any{"tool_calls": []any{map[string]any{"index": index, "function": map[string]any{"arguments": f}}}}, nil)
	}
}

func (s *SSE) Finish(reason string) { s.Chunk(map[string]any{}, reason) }
func (s *SSE) Done()                { s.Raw("data: [DONE]") }

// Stall holds the reply open until the client gives up.
func (s *SSE) Stall() {
	select {
	case <-s.ctx.Done():
	case <-time.After(30 * time.Second):
	}
}

// Answer is a whole plain reply.
func Answer(parts ...string) func(*SSE, Request) {
	return func(w *SSE, _ Request) {
		w.Text(parts...)
		w.Finish("stop")
		w.Done()
	}
}

// Calls is a reply that only calls one tool, arguments in fragments.
func Calls(name string, fragments ...string) func(*SSE, Request) {
	return func(w *SSE, _ Request) {
		w.ToolCall(0, "call_"+strings.ReplaceAll(name, " ", "_"), name, fragments...)
		w.Finish("tool_calls")
		w.Done()
	}
}

// Closed says the client went away (a write failed or its context ended).
func (s *SSE) Closed() bool { return s.closed || s.ctx.Err() != nil }
