package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/client"
)

// run runs npllmctl in-process with a daemon that is never reachable, so
// every command that gets as far as connecting exits with status 3: a 3
// proves the line was parsed, a 2 that it was refused as bad usage.
func run(t *testing.T, args ...string) (string, *Env, int) {
	t.Helper()
	var out bytes.Buffer
	env := &Env{Out: &out, Connect: func(context.Context) (*client.Client, error) {
		return nil, client.ErrNotRunning
	}}
	err := Run(context.Background(), env, args)
	code := 0
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("npllmctl %v: error without exit status: %v", args, err)
		}
		code = ee.Code
	}
	return out.String(), env, code
}

func TestCompletionScriptsNameTheCommands(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, code := run(t, "completion", shell)
		if code != 0 || len(out) < 500 || !strings.Contains(out, "npllmctl") {
			t.Fatalf("completion %s: exit %d, %d bytes", shell, code, len(out))
		}
	}
	// The scripts ask the binary; the binary must offer the commands.
	out, _, _ := run(t, "__complete", "")
	for _, sub := range []string{"status", "events", "signal", "unmute", "completion"} {
		if !strings.Contains(out, sub+"\t") && !strings.Contains(out, sub+"\n") {
			t.Errorf("completions of the first word lack %s:\n%s", sub, out)
		}
	}
	out, _, _ = run(t, "__complete", "events", "--kind", "")
	if !strings.Contains(out, "oom.kill") {
		t.Errorf("events --kind completions lack oom.kill:\n%s", out)
	}
}

func TestGlobalFlagsAnywhereOnTheLine(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--json"}, {"--json", "status"}, {"events", "--kind", "oom.kill", "--json"},
		{"--timeout", "5s", "top", "--sort", "memory"}, {"top", "--timeout=5s", "--json", "--limit", "3"},
		{"renice", "1", "-5", "--json"},
	} {
		_, env, code := run(t, args...)
		if code != 3 {
			t.Errorf("npllmctl %v: exit %d, want 3 (parsed, daemon unreachable)", args, code)
		}
		if strings.Contains(strings.Join(args, " "), "json") && !env.JSON {
			t.Errorf("npllmctl %v: --json not seen", args)
		}
	}
}

func TestBadUsageExitsWithTwo(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"}, {"status", "extra"}, {"events", "--bogus"}, {"signal", "1"}, {"--timeout", "soon", "status"},
		{"sensors", "enable"}, {"unmute"},
	} {
		if _, _, code := run(t, args...); code != 2 {
			t.Errorf("npllmctl %v: exit %d, want 2", args, code)
		}
	}
}

func TestHelpPerCommand(t *testing.T) {
	out, _, code := run(t, "events", "--help")
	if code != 0 || !strings.Contains(out, "--follow") || !strings.Contains(out, "--json") {
		t.Errorf("events --help: exit %d:\n%s", code, out)
	}
	out, _, code = run(t, "--help")
	if code != 0 || !strings.Contains(out, "Exit status") || !strings.Contains(out, "unmute") {
		t.Errorf("--help: exit %d:\n%s", code, out)
	}
}
