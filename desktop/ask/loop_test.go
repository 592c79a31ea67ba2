package ask

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// observed collects what a session showed its user.
type observed struct {
	mu      sync.Mutex
	text    []string
	reports []ToolReport
}

func (o *observed) all() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.text, "")
}

func newSession(t *testing.T, m *fakeModel, tools Tools, opts Options) (*Session, *observed) {
	t.Helper()
	ep, err := Resolve(context.Background(), ModelConfig{URL: m.URL()}, ResolveOptions{})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	o := &observed{}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.OnText = func(s string) { o.mu.Lock(); o.text = append(o.text, s); o.mu.Unlock() }
	opts.OnTool = func(r ToolReport) { o.mu.Lock(); o.reports = append(o.reports, r); o.mu.Unlock() }
	return NewSession(ep, tools, opts), o
}

func TestAskCallsSystemStatusOnceThenStreamsTheAnswer(t *testing.T) {
	m := newFakeModel(t,
		calls("system_status", "{", "}"),
		answer("Your machine is fine: ", "load is 0.42, ", "CPU 3%."))
	tools := &fakeTools{}
	s, o := newSession(t, m, tools, Options{})
	ans, err := s.Ask(context.Background(), "why is my machine slow?")
	if err != nil {
		t.Fatalf("ask: %v", err)
	}
	if got := tools.executed(); len(got) != 1 || got[0] != "system_status {}" {
		t.Fatalf("tool runs = %q, want one system_status {}", got)
	}
	want := "Your machine is fine: load is 0.42, CPU 3%."
	if ans.Text != want || ans.Steps != 2 || ans.ToolCalls != 1 {
		t.Fatalf("answer = %+v", ans)
	}
	if len(o.text) < 3 || o.all() != want {
		t.Fatalf("streamed text = %q: want the answer in its 3 pieces as they came", o.text)
	}
	reqs := m.Got()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	first := reqs[0]
	if !first.Stream || first.Model != "qwen2.5:7b" || first.MaxTokens != 2048 {
		t.Fatalf("first request: stream %v model %q max_tokens %d", first.Stream, first.Model, first.MaxTokens)
	}
	if names := strings.Join(first.ToolNames(), ","); names != "system_status,process_details,signal_process" {
		t.Fatalf("tools offered = %s", names)
	}
	sys, _ := first.Messages[0]["content"].(string)
	for _, w := range []string{"npllm", "system_status", "signal_process", "consent", "refuse"} {
		if first.Messages[0]["role"] != "system" || !strings.Contains(sys, w) {
			t.Fatalf("system prompt lacks %q:\n%s", w, sys)
		}
	}
	// The second request carries the call and its result, tied by id.
	asst := reqs[1].Last("assistant")
	tcs, _ := asst["tool_calls"].([]any)
	if len(tcs) != 1 {
		t.Fatalf("assistant message = %v", asst)
	}
	tc := tcs[0].(map[string]any)
	fn := tc["function"].(map[string]any)
	if tc["id"] != "call_system_status" || fn["name"] != "system_status" || fn["arguments"] != "{}" {
		t.Fatalf("echoed tool call = %v", tc)
	}
	res := reqs[1].Last("tool")
	content, _ := res["content"].(string)
	if res["tool_call_id"] != "call_system_status" || !strings.Contains(content, "Load 0.42") || !strings.Contains(content, `"health":"ok"`) {
		t.Fatalf("tool result sent = %v", res)
	}
	// The observer saw the call before it ran, then its result.
	if len(o.reports) != 2 || o.reports[0].Phase != PhaseCall || o.reports[1].Phase != PhaseResult || !o.reports[1].Executed {
		t.Fatalf("reports = %+v", o.reports)
	}
	if c := o.reports[1].Compact(); !strings.HasPrefix(c, "← system_status: Health ok") {
		t.Fatalf("compact = %q", c)
	}
	tr, _ := json.Marshal(s.Transcript())
	if !strings.Contains(string(tr), `"tool_call_id":"call_system_status"`) || !strings.Contains(string(tr), `"endpoint":"configured"`) {
		t.Fatalf("transcript = %s", tr)
	}
}

func TestTwoInterleavedToolCallsAreAccumulatedByIndex(t *testing.T) {
	m := newFakeModel(t, func(w *sse, _ modelRequest) {
		w.ToolCall(0, "call_a", "process_details")
		w.ToolCall(1, "call_b", "process_details")
		for _, d := range []struct {
			i    int
			frag string
		}{{1, `{"pi`}, {0, `{"pid"`}, {1, `d": 7`}, {0, `: 42}`}, {1, `}`}} {
			w.Chunk(map[string]any{"tool_calls": []any{map[string]any{"index": d.i, "function": map[string]any{"arguments": d.frag}}}}, nil)
		}
		w.Finish("tool_calls")
		w.Done()
	}, answer("done"))
	tools := &fakeTools{}
	s, _ := newSession(t, m, tools, Options{})
	if _, err := s.Ask(context.Background(), "compare 42 and 7"); err != nil {
		t.Fatal(err)
	}
	got := tools.executed()
	if len(got) != 2 || got[0] != `process_details {"pid":42}` || got[1] != `process_details {"pid":7}` {
		t.Fatalf("runs = %q", got)
	}
}

func TestUnknownToolIsAnErrorResultAndRunsNothing(t *testing.T) {
	m := newFakeModel(t, calls("rm_rf_root", `{"path":"/"}`), answer("Sorry."))
	tools := &fakeTools{}
	s, o := newSession(t, m, tools, Options{})
	ans, err := s.Ask(context.Background(), "clean up")
	if err != nil || ans.Text != "Sorry." {
		t.Fatalf("ask = %+v, %v", ans, err)
	}
	if got := tools.executed(); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
	res, _ := m.Got()[1].Last("tool")["content"].(string)
	if !strings.Contains(res, `unknown tool "rm_rf_root"`) || !strings.Contains(res, "system_status") || !strings.Contains(res, "Nothing was done") {
		t.Fatalf("model was told %q", res)
	}
	if len(o.reports) != 1 || o.reports[0].Executed || o.reports[0].Rejected == "" {
		t.Fatalf("reports = %+v", o.reports)
	}
}

func TestBadArgumentsAreRefusedBeforeAnythingRuns(t *testing.T) {
	for _, tc := range []struct {
		name, args, told string
	}{
		{"invalid JSON", `{"pid": 12`, "not valid JSON"},
		{"not an object", `[1,2]`, "must be a JSON object"},
		{"duplicate key", `{"pid":42,"pid":1}`, "appears twice"},
		{"trailing text", `{"pid":42} {"pid":1}`, "text after"},
		{"too large", `{"pid":42,"pad":"` + strings.Repeat("x", 20000) + `"}`, "larger than 16384 bytes"},
		{"tool's own validation", `{"pid":-5}`, "pid must be an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeModel(t, calls("process_details", tc.args[:len(tc.args)/2], tc.args[len(tc.args)/2:]), answer("ok"))
			tools := &fakeTools{}
			s, o := newSession(t, m, tools, Options{})
			if _, err := s.Ask(context.Background(), "details"); err != nil {
				t.Fatal(err)
			}
			if got := tools.executed(); len(got) != 0 {
				t.Fatalf("ran %q", got)
			}
			req := m.Got()[1]
			res, _ := req.Last("tool")["content"].(string)
			if !strings.HasPrefix(res, "error: ") || !strings.Contains(res, tc.told) {
				t.Fatalf("model was told %q, want %q", res, tc.told)
			}
			// Arguments servers cannot parse are not echoed back to them.
			fn := req.Last("assistant")["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)
			if !json.Valid([]byte(fn["arguments"].(string))) {
				t.Fatalf("echoed invalid arguments %q", fn["arguments"])
			}
			if last := o.reports[len(o.reports)-1]; !last.IsError || !strings.Contains(last.Compact(), "✗ process_details") {
				t.Fatalf("report = %+v", last)
			}
		})
	}
}

func TestTenMegabytesOfTextAreCutAndReported(t *testing.T) {
	var sent atomic.Int64 // written by the server's goroutine
	m := newFakeModel(t, func(w *sse, _ modelRequest) {
		w.ToolCall(0, "call_x", "system_status", "{}")
		piece := strings.Repeat("blah ", 2000) // 10 kB
		for sent.Load() < 10<<20 && !w.Closed() {
			w.Text(piece)
			sent.Add(int64(len(piece)))
		}
		w.Finish("tool_calls")
		w.Done()
	})
	tools := &fakeTools{}
	s, o := newSession(t, m, tools, Options{})
	ans, err := s.Ask(context.Background(), "talk")
	if !errors.Is(err, ErrReplyTooLarge) {
		t.Fatalf("err = %v, want ErrReplyTooLarge", err)
	}
	if len(ans.Text) == 0 || len(ans.Text) > 1<<20 || len(o.all()) != len(ans.Text) {
		t.Fatalf("kept %d bytes of text (shown %d), want some and at most 1 MiB", len(ans.Text), len(o.all()))
	}
	if n := sent.Load(); n >= 10<<20 {
		t.Fatalf("the server could write all %d bytes: the client did not stop reading", n)
	}
	if got := tools.executed(); len(got) != 0 {
		t.Fatalf("a tool call of the cut reply ran: %q", got)
	}
	tr := s.Transcript()
	if last := tr.Messages[len(tr.Messages)-2]; last.Role != "assistant" || !strings.Contains(last.Error, "was cut") || last.ReplyBytes != 1<<20 {
		t.Fatalf("transcript's last message = %+v", last)
	}
}

func TestEndlessToolLoopStopsAtTheStepLimit(t *testing.T) {
	var script []func(*sse, modelRequest)
	for range 9 {
		script = append(script, calls("system_status", "{}"))
	}
	m := newFakeModel(t, script...)
	tools := &fakeTools{}
	s, _ := newSession(t, m, tools, Options{})
	ans, err := s.Ask(context.Background(), "loop")
	if !errors.Is(err, ErrStepLimit) {
		t.Fatalf("err = %v, want ErrStepLimit", err)
	}
	if n := len(m.Got()); n != 8 || ans.Steps != 8 {
		t.Fatalf("%d requests, %d steps; want 8", n, ans.Steps)
	}
	if n := len(tools.executed()); n != 7 {
		t.Fatalf("tool ran %d times, want 7 (the 8th reply's call is not run)", n)
	}
}

func TestStalledServerTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(*sse, modelRequest)
	}{
		{"after some text", func(w *sse, _ modelRequest) { w.Text("Let me th"); w.Stall() }},
		{"mid tool call", func(w *sse, _ modelRequest) {
			w.ToolCall(0, "call_1", "process_details", `{"pid":`)
			w.Stall()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeModel(t, tc.reply)
			tools := &fakeTools{}
			s, _ := newSession(t, m, tools, Options{StallTimeout: 300 * time.Millisecond})
			start := time.Now()
			_, err := s.Ask(context.Background(), "hello")
			if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "nothing received for 300ms") {
				t.Fatalf("err = %v, want ErrStalled", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %s", d)
			}
			if got := tools.executed(); len(got) != 0 {
				t.Fatalf("ran %q", got)
			}
		})
	}
}

func TestTrickleOfKeepAlivesEndsAtTheTimeBudget(t *testing.T) {
	m := newFakeModel(t, func(w *sse, _ modelRequest) {
		for i := 0; i < 300 && !w.Closed(); i++ {
			w.Raw(": keep-alive")
			time.Sleep(20 * time.Millisecond)
		}
	})
	s, _ := newSession(t, m, &fakeTools{}, Options{StallTimeout: time.Second, TimeBudget: 400 * time.Millisecond})
	start := time.Now()
	if _, err := s.Ask(context.Background(), "hello"); !errors.Is(err, ErrTimeBudget) {
		t.Fatalf("err = %v, want ErrTimeBudget", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestToolCallsOfAnUnfinishedReplyAreNotRun(t *testing.T) {
	// The stream ends ([DONE]) with no finish_reason: the arguments may be
	// incomplete, so nothing runs.
	m := newFakeModel(t, func(w *sse, _ modelRequest) {
		w.ToolCall(0, "call_1", "process_details", `{"pid":42}`)
		w.Done()
	})
	tools := &fakeTools{}
	s, _ := newSession(t, m, tools, Options{})
	if _, err := s.Ask(context.Background(), "x"); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	if got := tools.executed(); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

func TestReadOnlyOffersNoWriteAndRefusesOne(t *testing.T) {
	m := newFakeModel(t, calls("signal_process", `{"pid":4242,"start_time":1,"signal":"KILL"}`), answer("I cannot."))
	tools := &fakeTools{}
	s, o := newSession(t, m, tools, Options{ReadOnly: true})
	if _, err := s.Ask(context.Background(), "kill 4242"); err != nil {
		t.Fatal(err)
	}
	reqs := m.Got()
	if names := strings.Join(reqs[0].ToolNames(), ","); names != "system_status,process_details" {
		t.Fatalf("read-only session offered %s", names)
	}
	sys, _ := reqs[0].Messages[0]["content"].(string)
	if !strings.Contains(sys, "read-only") || strings.Contains(sys, "signal_process") {
		t.Fatalf("read-only system prompt:\n%s", sys)
	}
	if got := tools.executed(); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
	res, _ := reqs[1].Last("tool")["content"].(string)
	if !strings.Contains(res, "read-only") || !strings.Contains(res, "Nothing was done") {
		t.Fatalf("model was told %q", res)
	}
	if len(o.reports) != 1 || o.reports[0].Executed {
		t.Fatalf("reports = %+v", o.reports)
	}
}

func TestFollowUpKeepsTheConversation(t *testing.T) {
	m := newFakeModel(t, answer("Load is low."), answer("Yes."))
	s, _ := newSession(t, m, &fakeTools{}, Options{})
	if _, err := s.Ask(context.Background(), "how is the load?"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ask(context.Background(), "sure?"); err != nil {
		t.Fatal(err)
	}
	msgs := m.Got()[1].Messages
	if len(msgs) != 4 || msgs[1]["content"] != "how is the load?" || msgs[2]["content"] != "Load is low." || msgs[3]["content"] != "sure?" {
		t.Fatalf("follow-up request = %v", msgs)
	}
}

func TestEscapeSequencesNeverReachTheTerminal(t *testing.T) {
	// ESC split from its sequence, a C1 CSI (U+009B), BEL.
	m := newFakeModel(t, answer("ok \x1b", "[2J\u009b31m é", "€\x07\n"))
	s, o := newSession(t, m, &fakeTools{}, Options{})
	ans, err := s.Ask(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ok [2J31m é€\n"; ans.Text != want || o.all() != want {
		t.Fatalf("text = %q, shown %q, want %q", ans.Text, o.all(), want)
	}
}

func TestAnswerCutByTheTokenBudgetIsReported(t *testing.T) {
	m := newFakeModel(t, func(w *sse, _ modelRequest) {
		w.Text("The busiest process is")
		w.Finish("length")
		w.Done()
	})
	s, _ := newSession(t, m, &fakeTools{}, Options{MaxTokens: 5})
	ans, err := s.Ask(context.Background(), "x")
	if !errors.Is(err, ErrTokenBudget) || ans.Text != "The busiest process is" {
		t.Fatalf("answer %q, err %v", ans.Text, err)
	}
	if got := m.Got()[0].MaxTokens; got != 5 {
		t.Fatalf("max_tokens sent = %d", got)
	}
}

func TestServerErrorsAndNonStreamedRepliesAreReported(t *testing.T) {
	m := newFakeModel(t,
		func(w *sse, _ modelRequest) {
			// What ollama answers for a model it does not have, mid-stream.
			w.Raw(`data: {"error":{"message":"model \"qwen9\" not found, try pulling it first","type":"api_error"}}`)
		},
		func(w *sse, _ modelRequest) {
			w.Raw(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
		})
	s, _ := newSession(t, m, &fakeTools{}, Options{})
	if _, err := s.Ask(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), `qwen9`) || !strings.Contains(err.Error(), "not found, try pulling it") {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Ask(context.Background(), "x"); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "no streamed reply") {
		t.Fatalf("err = %v", err)
	}
}

func TestFollowUpAfterARefusedReplyIsWellFormed(t *testing.T) {
	// Two calls share one id, and the reply is cut before it finishes.
	m := newFakeModel(t, func(w *sse, _ modelRequest) {
		w.ToolCall(0, "call_1", "system_status", "{}")
		w.ToolCall(1, "call_1", "process_details", `{"pid":1}`)
		w.Done()
	}, answer("ok"))
	tools := &fakeTools{}
	s, _ := newSession(t, m, tools, Options{})
	if _, err := s.Ask(context.Background(), "x"); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Ask(context.Background(), "and now?"); err != nil {
		t.Fatal(err)
	}
	msgs := m.Got()[1].Messages
	calls := msgs[2]["tool_calls"].([]any)
	id0, id1 := calls[0].(map[string]any)["id"], calls[1].(map[string]any)["id"]
	if id0 == id1 || msgs[3]["tool_call_id"] != id0 || msgs[4]["tool_call_id"] != id1 || msgs[5]["content"] != "and now?" {
		t.Fatalf("follow-up request = %v", msgs)
	}
	if got := tools.executed(); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

func TestAToolPanicBecomesAnErrorResult(t *testing.T) {
	m := newFakeModel(t, calls("process_details", `{"pid":1,"x":"crash me"}`), answer("ok"))
	s, o := newSession(t, m, &fakeTools{}, Options{})
	if _, err := s.Ask(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	res, _ := m.Got()[1].Last("tool")["content"].(string)
	if !strings.Contains(res, "internal error in process_details") || !o.reports[len(o.reports)-1].IsError {
		t.Fatalf("model was told %q", res)
	}
}
