package ask_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/npllm/npllm/desktop/ask"
)

// What `npllmctl ask` wires (compiled, not run: it needs a model server).
// tools is desktop/mcp's tool set behind the ask.Tools interface.
func Example() {
	var tools ask.Tools
	cfg, err := ask.LoadModelConfig(os.ExpandEnv("$HOME/.config/npllm/agent.toml"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	ep, err := ask.Resolve(context.Background(), cfg, ask.ResolveOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // names what was tried and how to fix it
		return
	}
	fmt.Fprintln(os.Stderr, "asking", ep) // "ollama at http://127.0.0.1:11434/v1, model qwen2.5:7b"
	s := ask.NewSession(ep, tools, ask.Options{
		ReadOnly: false, // --no-act
		OnText:   func(t string) { fmt.Print(t) },
		OnTool:   func(r ask.ToolReport) { fmt.Fprintln(os.Stderr, r.Compact()) },
	})
	if _, err := s.Ask(context.Background(), "why is my machine slow?"); err != nil {
		fmt.Fprintln(os.Stderr, "\n"+err.Error())
	}
	json.NewEncoder(os.Stdout).Encode(s.Transcript()) // --json
}
