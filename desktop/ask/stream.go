package ask

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Named errors of one model reply.
var (
	ErrStalled    = errors.New("model server stalled")
	ErrTimeBudget = errors.New("time budget spent")
	// ErrIncomplete: the reply ended without a finish reason, or was cut
	// by the token budget, while it carried tool calls; none is run.
	ErrIncomplete = errors.New("incomplete reply")
	// ErrNoToolSupport: the server refused tools for this model.
	ErrNoToolSupport = errors.New("the model cannot call tools")
)

// Limits of one reply: beyond them a call is dropped (and reported).
const (
	maxCallsPerReply = 8
	maxToolName      = 64
)

// streamedCall is one tool call as the deltas built it.
type streamedCall struct {
	index     int64
	id, name  string
	args      strings.Builder
	oversized bool // arguments passed the cap; the rest was not kept
}

// reply is one streamed model answer.
type reply struct {
	parts   []string // text as it came; joined once (a growing builder re-copies ~5× its size)
	calls   []*streamedCall
	dropped int // tool calls beyond maxCallsPerReply
	finish  string
	bytes   int64
}

func (r *reply) text() string { return strings.Join(r.parts, "") }

// step sends the conversation once and reads the streamed reply: text goes
// to onText as it arrives, tool calls are accumulated by index (arguments
// come in fragments). The reply body is cut at MaxReplyBytes and the
// request cancelled when nothing arrives for StallTimeout.
func (s *Session) step(ctx context.Context, params openai.ChatCompletionNewParams) (*reply, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(s.opts.StallTimeout, func() { cancel(ErrStalled) })
	defer stall.Stop()
	r := &reply{}
	alive := func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil && resp.Body != nil {
			resp.Body = &activityBody{rc: resp.Body, on: func(n int) {
				r.bytes += int64(n)
				stall.Reset(s.opts.StallTimeout)
			}}
		}
		return resp, err
	}
	stream := s.chat.NewStreaming(ctx, params, option.WithMiddleware(alive))
	defer stream.Close()
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			if ch.Index != 0 { // only one choice is asked for
				continue
			}
			if t := cleanText(ch.Delta.Content); t != "" {
				r.parts = append(r.parts, t)
				if s.opts.OnText != nil {
					s.opts.OnText(t)
				}
			}
			for _, d := range ch.Delta.ToolCalls {
				r.addDelta(d, s.opts.MaxArgBytes)
			}
			if ch.FinishReason != "" {
				r.finish = ch.FinishReason
			}
		}
	}
	err := stream.Err()
	if err == nil {
		return r, nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	switch {
	case errors.Is(err, ErrStalled):
		return r, fmt.Errorf("%w: nothing received for %s", ErrStalled, s.opts.StallTimeout)
	case errors.Is(err, ErrTimeBudget):
		return r, fmt.Errorf("%w (%s)", ErrTimeBudget, s.opts.TimeBudget)
	case errors.Is(err, ErrReplyTooLarge):
		return r, fmt.Errorf("%w: the model's reply passed %d bytes and was cut; nothing in it was run", ErrReplyTooLarge, s.opts.MaxReplyBytes)
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		// The SDK's text is only the status; the server's message says why.
		msg := printable(clip(apiErr.Message, 300))
		if strings.Contains(msg, "does not support tools") { // ollama, for such models
			return r, fmt.Errorf("%w: %s; name one that can (e.g. qwen2.5 or llama3.1) as model in [model] of agent.toml", ErrNoToolSupport, s.ep.Model)
		}
		return r, fmt.Errorf("model server %s answered %d: %s", s.ep.BaseURL, apiErr.StatusCode, msg)
	}
	return r, fmt.Errorf("model server %s: %w", s.ep.BaseURL, err)
}

// addDelta merges one streamed tool-call fragment. Calls are keyed by
// index; a new id at a known index starts a new call (servers that omit
// the index send each call whole, all at index 0).
func (r *reply) addDelta(d openai.ChatCompletionChunkChoiceDeltaToolCall, maxArgs int) {
	var c *streamedCall
	for i := len(r.calls) - 1; i >= 0; i-- {
		if r.calls[i].index == d.Index {
			c = r.calls[i]
			break
		}
	}
	if c != nil && d.ID != "" && c.id != "" && d.ID != c.id {
		c = nil
	}
	if c == nil {
		if len(r.calls) >= maxCallsPerReply {
			r.dropped++
			return
		}
		c = &streamedCall{index: d.Index}
		r.calls = append(r.calls, c)
	}
	if c.id == "" {
		c.id = d.ID
	}
	// Most servers send the name once; some repeat it whole in every
	// fragment, a few split it.
	if n := d.Function.Name; n != "" && n != c.name && len(c.name)+len(n) <= maxToolName+1 {
		c.name += n
	}
	if c.oversized {
		return
	}
	if c.args.Len()+len(d.Function.Arguments) > maxArgs {
		c.oversized = true
		return
	}
	c.args.WriteString(d.Function.Arguments)
}

// activityBody reports every read, so the stall timer restarts on any
// byte (including SSE keep-alive comments; the time budget bounds those).
type activityBody struct {
	rc io.ReadCloser
	on func(int)
}

func (a *activityBody) Read(p []byte) (int, error) {
	n, err := a.rc.Read(p)
	if n > 0 {
		a.on(n)
	}
	return n, err
}

func (a *activityBody) Close() error { return a.rc.Close() }

// cleanText drops control characters from the model's text before anyone
// prints it: a terminal would obey escape sequences (C0, DEL and C1
// controls go; newline and tab stay). Deltas are decoded JSON strings, so
// always whole runes.
func cleanText(s string) string {
	for i := 0; i < len(s); i++ {
		// 0xc2 leads U+0080–U+00BF, which holds the C1 controls.
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c == 0xc2 {
			return strings.Map(func(r rune) rune {
				if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
					return -1
				}
				return r
			}, s)
		}
	}
	return s
}
