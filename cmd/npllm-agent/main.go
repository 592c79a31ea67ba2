// Command npllm-agent is npllm's per-user desktop agent: it turns npllmd's
// alerts into desktop notifications and a tray icon, and serves MCP so local
// models can observe the machine and act through polkit as the user. It
// only wires packages together; see the README's architecture section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/mark3labs/mcp-go/server"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop"
	"github.com/npllm/npllm/desktop/mcp"
)

var version = "0.1.0-dev"

const usage = `Usage: npllm-agent [--config FILE] [--log-level L]
       npllm-agent mcp [--http 127.0.0.1:PORT] [--read-only] [--no-prompt]

npllm-agent runs as the desktop user. Without a command it shows npllmd's
alerts as desktop notifications (with buttons that act through polkit) and
a tray icon; it is started by the npllm-agent.service user unit or XDG
autostart.

Notifications are updated in place, bursts of OOM kills or crashes within
30 s share one, and dismissing the same kind of alert about the same app
three times mutes it (undo: npllmctl unmute KIND APP, or the tray menu).
Settings: $XDG_CONFIG_HOME/npllm/agent.toml (tray = false hides the tray
icon; [mcp] http = "127.0.0.1:PORT" also serves MCP over HTTP; [model]
url = "http://127.0.0.1:11434/v1" names the local model for the "Explain"
button, which otherwise appears once one answers on the usual local ports).

"npllm-agent mcp" serves the Model Context Protocol for local models:
on stdin/stdout (what MCP clients that spawn servers use: mcphost, LM
Studio, Claude-Desktop-style configs), or with --http on a loopback
address at /mcp, where every request needs
"Authorization: Bearer <token>" (the token is read from, or created in,
$XDG_RUNTIME_DIR/npllm/mcp-token, mode 0600) and browser requests from
foreign origins are refused. The bridge talks only to npllmd's D-Bus API,
as you: writes are decided by polkit.

mcp options:
  --http ADDR     serve streamable HTTP on ADDR (loopback only) instead of stdio
  --read-only     offer no tool that changes anything
  --no-prompt     never let polkit ask you to confirm a write (refuse instead)
  --log-level L   debug, info, warn or error (logs go to stderr)

Environment:
  DBUS_SYSTEM_BUS_ADDRESS  the bus to use instead of the system bus
  XDG_RUNTIME_DIR          where the HTTP token is kept

Exit status: 0 on a clean stop, 1 on failure, 2 on bad usage.
`

func main() {
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Print(usage)
		return
	}
	if len(args) > 0 && args[0] == "--version" {
		fmt.Println("npllm-agent", version)
		return
	}
	var err error
	if len(args) > 0 && args[0] == "mcp" {
		err = runMCP(args[1:])
	} else {
		err = runAgent(args)
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "npllm-agent: %v (see npllm-agent --help)\n", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "npllm-agent: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runMCP(args []string) error {
	fs := flag.NewFlagSet("npllm-agent mcp", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	httpAddr := fs.String("http", "", "")
	readOnly := fs.Bool("read-only", false, "")
	noPrompt := fs.Bool("no-prompt", false, "")
	level := fs.String("log-level", "info", "")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	log, err := logger(*level)
	if err != nil {
		return err
	}
	if *httpAddr != "" {
		if err := mcp.CheckLoopback(*httpAddr); err != nil {
			return usageError{err}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()
	npllmd := client.NewClient(conn)
	npllmd.SetLog(log)
	bridge := mcp.New(npllmd, mcp.Options{Version: version, ReadOnly: *readOnly, Interactive: !*noPrompt, Log: log})
	notices, err := npllmd.Watch(ctx)
	if err != nil {
		return fmt.Errorf("follow npllmd's signals: %w", err)
	}
	go func() {
		for n := range notices {
			bridge.DaemonNotice(n)
		}
	}()

	if *httpAddr == "" {
		log.Info("serving MCP on stdio", "read_only", *readOnly)
		return server.NewStdioServer(bridge.Server()).Listen(ctx, os.Stdin, os.Stdout)
	}
	path, err := mcp.TokenPath()
	if err != nil {
		return err
	}
	token, err := mcp.LoadOrCreateToken(path)
	if err != nil {
		return err
	}
	log.Info("MCP token", "file", path)
	return bridge.ServeHTTP(ctx, *httpAddr, token)
}

func runAgent(args []string) error {
	fs := flag.NewFlagSet("npllm-agent", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	level := fs.String("log-level", "info", "")
	configPath := fs.String("config", desktop.AgentConfigPath(), "")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	log, err := logger(*level)
	if err != nil {
		return err
	}
	cfg, err := desktop.LoadAgentConfig(*configPath)
	if err != nil {
		return usageError{err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	agent, err := desktop.NewAgent(cfg, log)
	if err != nil {
		return err
	}
	var extra func(client.Notice)
	if cfg.MCP.HTTP != "" {
		// The long-running agent also serves MCP over HTTP when asked to.
		if err := mcp.CheckLoopback(cfg.MCP.HTTP); err != nil {
			return usageError{fmt.Errorf("%s: [mcp] http: %w", *configPath, err)}
		}
		path, err := mcp.TokenPath()
		if err != nil {
			return err
		}
		token, err := mcp.LoadOrCreateToken(path)
		if err != nil {
			return err
		}
		bridge := mcp.New(agent.Client, mcp.Options{Version: version, ReadOnly: cfg.MCP.ReadOnly, Interactive: true, Log: log})
		extra = bridge.DaemonNotice
		go func() {
			if err := bridge.ServeHTTP(ctx, cfg.MCP.HTTP, token); err != nil {
				log.Error("MCP over HTTP stopped", "err", err)
			}
		}()
	}
	log.Info("npllm-agent running", "version", version)
	return agent.Run(ctx, extra)
}
