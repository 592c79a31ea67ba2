package ask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// Named errors of a question's budgets.
var (
	// ErrStepLimit: the model kept calling tools past the step limit.
	ErrStepLimit = errors.New("step limit reached")
	// ErrTokenBudget: the answer was cut at MaxTokens (Answer has the text).
	ErrTokenBudget = errors.New("token budget reached")
)

// Options bound and observe a session; zero fields take the defaults.
type Options struct {
	// ReadOnly (--no-act) offers read tools only; a write call is refused.
	ReadOnly bool
	// MaxSteps is how many model replies one question may take (8).
	MaxSteps int
	// TimeBudget bounds one question, tools included (3 min).
	TimeBudget time.Duration
	// StallTimeout cancels a reply when nothing arrives for this long
	// (60 s: a CPU-only model may think a while before its first token).
	StallTimeout time.Duration
	// MaxReplyBytes cuts one reply on the wire (1 MiB).
	MaxReplyBytes int64
	// MaxTokens is the completion budget asked of the server per reply (2048).
	MaxTokens int64
	// MaxArgBytes bounds one tool call's arguments (16 KiB).
	MaxArgBytes int
	// MaxResultBytes bounds what one tool result gives the model (16 KiB).
	MaxResultBytes int

	// OnText gets the model's text as it streams (controls removed).
	OnText func(string)
	// OnTool gets every tool call: before it runs, and with its outcome.
	OnTool func(ToolReport)
	Log    *slog.Logger
}

func (o *Options) defaults() {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = 8
	}
	if o.TimeBudget <= 0 {
		o.TimeBudget = 3 * time.Minute
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 60 * time.Second
	}
	def(&o.MaxReplyBytes, 1<<20)
	def(&o.MaxTokens, 2048)
	if o.MaxArgBytes <= 0 {
		o.MaxArgBytes = 16 << 10
	}
	if o.MaxResultBytes <= 0 {
		o.MaxResultBytes = 16 << 10
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Session is a conversation with the model: Ask once for one question,
// again for a follow-up. One Ask at a time.
type Session struct {
	ep     *Endpoint
	tools  Tools
	opts   Options
	chat   openai.ChatCompletionService
	defs   []ToolDef
	offer  []openai.ChatCompletionToolUnionParam
	all    map[string]ToolDef // every tool, to name a refused write
	ids    map[string]bool    // tool-call ids used so far
	record []Message
}

// NewSession prepares a conversation with ep using tools.
func NewSession(ep *Endpoint, tools Tools, opts Options) *Session {
	opts.defaults()
	s := &Session{ep: ep, tools: tools, opts: opts, all: map[string]ToolDef{}, ids: map[string]bool{}}
	s.chat = openai.NewChatCompletionService(ep.options(opts.MaxReplyBytes)...)
	for _, d := range tools.Definitions(false) {
		s.all[d.Name] = d
	}
	for _, d := range tools.Definitions(opts.ReadOnly) {
		if opts.ReadOnly && d.Write { // do not trust the filter alone
			continue
		}
		s.defs = append(s.defs, d)
		var params shared.FunctionParameters
		if len(d.Parameters) > 0 {
			_ = json.Unmarshal(d.Parameters, &params)
		}
		s.offer = append(s.offer, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: d.Name, Description: openai.String(d.Description), Parameters: params,
		}))
	}
	s.record = []Message{{Role: "system", Content: systemPrompt(s.defs, opts.ReadOnly)}}
	return s
}

// Answer is the outcome of one question.
type Answer struct {
	Text      string `json:"text"`
	Steps     int    `json:"steps"`
	ToolCalls int    `json:"tool_calls"`
}

// Ask puts a question (or a follow-up) to the model and runs the tool
// calls it makes until it answers. On error, Answer holds what was said.
func (s *Session) Ask(ctx context.Context, question string) (Answer, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.TimeBudget, ErrTimeBudget)
	defer cancel()
	s.record = append(s.record, Message{Role: "user", Content: question})
	var ans Answer
	for {
		ans.Steps++
		r, err := s.step(ctx, s.params())
		ans.Text = r.text()
		msg := Message{Role: "assistant", Content: ans.Text, Finish: r.finish, ReplyBytes: r.bytes}
		for i, c := range r.calls {
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: s.callID(c, ans.Steps, i), Name: c.name, Arguments: c.args.String(), oversized: c.oversized})
		}
		if r.dropped > 0 {
			msg.Note = fmt.Sprintf("%d tool calls beyond %d in one reply were dropped", r.dropped, maxCallsPerReply)
		}
		if err == nil && r.finish == "" && ans.Text == "" && len(msg.ToolCalls) == 0 {
			err = fmt.Errorf("%w: the server sent no streamed reply (is %s an OpenAI-compatible endpoint?)", ErrIncomplete, s.ep.BaseURL)
		}
		if err == nil && len(msg.ToolCalls) > 0 {
			switch {
			case r.finish != "tool_calls" && r.finish != "stop":
				err = fmt.Errorf("%w: the reply ended (finish reason %q) before its tool calls were complete; none was run", ErrIncomplete, r.finish)
			case ans.Steps >= s.opts.MaxSteps:
				err = fmt.Errorf("%w: the model still called tools after %d replies; the last calls were not run", ErrStepLimit, s.opts.MaxSteps)
			}
		}
		if err != nil {
			msg.Error = err.Error()
			s.record = append(s.record, msg)
			// Every call gets an answer, so a follow-up is still a
			// well-formed conversation.
			for _, c := range msg.ToolCalls {
				s.record = append(s.record, Message{Role: "tool", ToolCallID: c.ID, Name: c.Name, Content: "error: not run: " + err.Error(), Error: "not run"})
			}
			return ans, err
		}
		s.record = append(s.record, msg)
		if len(msg.ToolCalls) == 0 {
			if r.finish == "length" {
				return ans, fmt.Errorf("%w: the answer reached the budget of %d tokens and was cut", ErrTokenBudget, s.opts.MaxTokens)
			}
			return ans, nil
		}
		for _, c := range msg.ToolCalls {
			ans.ToolCalls++
			s.record = append(s.record, s.run(ctx, ans.Steps, c))
		}
		if cause := context.Cause(ctx); errors.Is(cause, ErrTimeBudget) {
			return ans, fmt.Errorf("%w (%s)", ErrTimeBudget, s.opts.TimeBudget)
		} else if cause != nil {
			return ans, cause
		}
	}
}

// callID keeps the server's id, or makes one when it sent none, an odd
// one, or one already used in this conversation (results are matched to
// calls by id).
func (s *Session) callID(c *streamedCall, step, i int) string {
	id := c.id
	if id == "" || len(id) > 128 || s.ids[id] {
		id = fmt.Sprintf("npllm_%d_%d_%d", len(s.record), step, i)
	}
	s.ids[id] = true
	return id
}

// run checks one tool call like any untrusted request — offered name, JSON
// object of bounded size — then lets the tool validate and run it. Every
// outcome becomes the tool message the model reads next.
func (s *Session) run(ctx context.Context, step int, c ToolCall) Message {
	rep := ToolReport{Step: step, Call: c}
	reject := func(why string) Message {
		rep.Phase, rep.Rejected, rep.IsError, rep.Result = PhaseResult, why, true, why
		s.opts.Log.Info("model's tool call refused", "tool", clip(c.Name, maxToolName), "reason", why)
		s.report(rep)
		return Message{Role: "tool", ToolCallID: c.ID, Name: c.Name, Content: "error: " + why + " Nothing was done.", Error: why}
	}
	def, offered := s.find(c.Name)
	switch {
	case !offered && s.opts.ReadOnly && s.all[c.Name].Write:
		return reject(fmt.Sprintf("%s changes the system and this session is read-only (no-act): it is not available.", c.Name))
	case !offered:
		return reject(fmt.Sprintf("unknown tool %q; the tools are: %s.", clip(c.Name, maxToolName), toolNames(s.defs)))
	}
	args, err := checkArgs(c, s.opts.MaxArgBytes)
	if err != nil {
		return reject(err.Error())
	}
	rep.Phase = PhaseCall
	s.report(rep)
	res, err := s.call(ctx, def.Name, args)
	s.opts.Log.Debug("model's tool call", "tool", def.Name, "write", def.Write, "tool_error", res.IsError, "err", err)
	rep.Phase, rep.Executed = PhaseResult, true
	if err != nil {
		rep.IsError, rep.Result = true, "the tool could not run: "+err.Error()
		s.report(rep)
		return Message{Role: "tool", ToolCallID: c.ID, Name: c.Name, Content: "error: " + rep.Result, Error: err.Error()}
	}
	content := clip(resultText(res), s.opts.MaxResultBytes)
	if res.IsError {
		content = "error: " + content
	}
	rep.IsError, rep.Result = res.IsError, res.Text
	s.report(rep)
	return Message{Role: "tool", ToolCallID: c.ID, Name: c.Name, Content: content}
}

// call runs a tool; a panic on the model's input becomes an error result
// rather than the end of the agent.
func (s *Session) call(ctx context.Context, name string, args json.RawMessage) (res ToolResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.opts.Log.Error("tool panicked", "tool", name, "panic", fmt.Sprint(p))
			res, err = ToolResult{}, fmt.Errorf("internal error in %s", name)
		}
	}()
	return s.tools.Call(ctx, name, args)
}

func (s *Session) find(name string) (ToolDef, bool) {
	for _, d := range s.defs {
		if d.Name == name {
			return d, true
		}
	}
	return ToolDef{}, false
}

func (s *Session) report(r ToolReport) {
	if s.opts.OnTool != nil {
		s.opts.OnTool(r)
	}
}

// params is the request for the next step: the whole conversation.
func (s *Session) params() openai.ChatCompletionNewParams {
	msgs := make([]openai.ChatCompletionMessageParamUnion, 0, len(s.record))
	for _, m := range s.record {
		msgs = append(msgs, m.param())
	}
	return openai.ChatCompletionNewParams{
		Model:     shared.ChatModel(s.ep.Model),
		Messages:  msgs,
		Tools:     s.offer,
		MaxTokens: openai.Int(s.opts.MaxTokens),
	}
}

// Transcript is everything said so far, as JSON (--json).
func (s *Session) Transcript() Transcript {
	return Transcript{Endpoint: s.ep.Name, URL: s.ep.BaseURL, Model: s.ep.Model, ReadOnly: s.opts.ReadOnly,
		Tools: toolNamesList(s.defs), Messages: append([]Message(nil), s.record...)}
}
