package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/npllm/npllm/desktop/ask"
	"github.com/npllm/npllm/desktop/tools"
)

// askIO is where ask reads follow-ups and reports tool calls (tests swap it).
var askIO = struct {
	In  io.Reader
	Err io.Writer
}{os.Stdin, os.Stderr}

const askLong = `Puts one question to your own local model (any OpenAI-compatible server:
ollama, llama-server, LM Studio) and streams its answer. The model reads the
machine through npllm's tools — the same ones the MCP bridge serves — and each
tool call is shown on stderr as it happens. Writes (signal_process,
set_process_priority, manage_unit) go to npllmd as you, marked as a model's:
polkit asks you for each one, every time (run "pkttyagent --process $$" in a
plain terminal).

The model server is [model] in ~/.config/npllm/agent.toml (url, model,
api_key_file, allow_remote); with none, npllm probes 127.0.0.1 for ollama
(11434), llama-server (8080) and LM Studio (1234).

  --follow-up  after the answer, read more questions from stdin, one a line
               (an empty line or end of input ends the conversation)
  --no-act     offer the model the read tools only
  --json       print the whole transcript as JSON instead of the text`

func askCmd(env *Env) *cobra.Command {
	var followUp, noAct bool
	var config string
	cmd := &cobra.Command{
		Use: "ask [--follow-up] [--no-act] QUESTION", Short: "ask your local model about this machine", Long: askLong,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 || strings.TrimSpace(strings.Join(args, " ")) == "" {
				return usageErr(`usage: npllmctl ask "QUESTION"`)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runAsk(ctx, env, config, strings.Join(args, " "), followUp, noAct)
		},
	}
	cmd.Flags().BoolVar(&followUp, "follow-up", false, "keep the conversation: read more questions from stdin")
	cmd.Flags().BoolVar(&noAct, "no-act", false, "offer the read tools only")
	cmd.Flags().StringVar(&config, "config", ask.ConfigPath(), "agent.toml with the [model] table")
	return cmd
}

func runAsk(ctx context.Context, env *Env, config, question string, followUp, noAct bool) error {
	cfg, err := ask.LoadModelConfig(config)
	if err != nil {
		return usageErr("%v", err)
	}
	// The connection lives as long as the context it was opened with
	// (godbus), so it is ctx's, not a shorter timeout's.
	c, err := env.Connect(ctx)
	if err != nil {
		return &ExitError{Code: 3, Err: err}
	}
	defer c.Close()
	ep, err := ask.Resolve(ctx, cfg, ask.ResolveOptions{})
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	if !env.JSON {
		fmt.Fprintln(askIO.Err, "asking", ep)
	}
	set := tools.New(c, tools.Options{Interactive: true})
	opts := ask.Options{ReadOnly: noAct}
	if !env.JSON {
		opts.OnText = func(t string) { fmt.Fprint(env.Out, t) }
		opts.OnTool = func(r ask.ToolReport) { fmt.Fprintln(askIO.Err, r.Compact()) }
	}
	s := ask.NewSession(ep, tools.AskTools{Set: set, ReadOnly: noAct}, opts)
	in := bufio.NewScanner(askIO.In)
	in.Buffer(make([]byte, 4096), 16<<10)
	var askErr error
	for {
		_, err := s.Ask(ctx, question)
		if !env.JSON {
			fmt.Fprintln(env.Out)
		}
		if err != nil {
			askErr = err
			break
		}
		if !followUp {
			break
		}
		if !env.JSON {
			fmt.Fprint(askIO.Err, "> ")
		}
		if !in.Scan() {
			break
		}
		if question = strings.TrimSpace(in.Text()); question == "" {
			break
		}
	}
	if env.JSON {
		if err := printJSON(env.Out, s.Transcript()); err != nil {
			return err
		}
	}
	if askErr != nil {
		return &ExitError{Code: 1, Err: askErr}
	}
	return nil
}
