// Package desktop holds npllm-agent's parts: desktop notifications and the
// tray, fed by npllmd's notices (dbus/client.Watch); the MCP bridge is in
// desktop/mcp and the user's mutes in desktop/mutes.
package desktop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/BurntSushi/toml"
	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/ask"
	"github.com/npllm/npllm/desktop/mutes"
)

// AgentConfig is $XDG_CONFIG_HOME/npllm/agent.toml.
type AgentConfig struct {
	// Tray turns the tray icon on (default) or off.
	Tray *bool `toml:"tray"`
	MCP  struct {
		// HTTP, when set, also serves MCP on this loopback address.
		HTTP     string `toml:"http"`
		ReadOnly bool   `toml:"read_only"`
	} `toml:"mcp"`
	// Model is the local model for "Explain" (and npllmctl ask).
	Model ask.ModelConfig `toml:"model"`
}

// AgentConfigPath is where the agent's settings live.
func AgentConfigPath() string { return ask.ConfigPath() }

// LoadAgentConfig reads path (missing: defaults); unknown keys are errors.
func LoadAgentConfig(path string) (AgentConfig, error) {
	var c AgentConfig
	md, err := toml.DecodeFile(path, &c)
	if errors.Is(err, os.ErrNotExist) {
		return AgentConfig{}, nil
	}
	if err != nil {
		return AgentConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return AgentConfig{}, fmt.Errorf("%s: unknown key %s", path, und[0])
	}
	return c, nil
}

// AgentBusName is owned on the session bus by the one running agent.
const AgentBusName = "org.npllm.Agent"

// Agent is the running desktop agent.
type Agent struct {
	System, Session *dbus.Conn
	Client          *client.Client
	Notifier        *Notifier
	Tray            *Tray
	log             *slog.Logger
	model           ask.ModelConfig
}

// NewAgent connects to both buses and the notification server.
func NewAgent(cfg AgentConfig, log *slog.Logger) (*Agent, error) {
	system, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, fmt.Errorf("connect to the system bus: %w", err)
	}
	session, err := dbus.ConnectSessionBus()
	if err != nil {
		system.Close()
		return nil, fmt.Errorf("connect to the session bus (is this a desktop session?): %w", err)
	}
	// One agent per session: the name says who it is.
	if reply, err := session.RequestName(AgentBusName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		system.Close()
		session.Close()
		if err == nil {
			err = fmt.Errorf("another npllm-agent already runs in this session (it owns %s)", AgentBusName)
		}
		return nil, err
	}
	muted, err := mutes.Open(mutes.Path())
	if err != nil {
		log.Warn("mutes unreadable; starting with none", "file", mutes.Path(), "err", err)
		muted = mutes.Empty(mutes.Path())
	}
	cl := client.NewClient(system)
	cl.SetLog(log)
	notifier, err := NewNotifier(session, cl, muted, log)
	if err != nil {
		system.Close()
		session.Close()
		return nil, err
	}
	a := &Agent{System: system, Session: session, Client: cl, Notifier: notifier, log: log, model: cfg.Model}
	if cfg.Tray == nil || *cfg.Tray {
		a.Tray = NewTray(session, cl, notifier, muted, log)
	}
	return a, nil
}

// Run follows npllmd until ctx ends. extra, if set, also receives each
// notice (the MCP bridge's resource updates).
func (a *Agent) Run(ctx context.Context, extra func(client.Notice)) error {
	defer a.System.Close()
	defer a.Session.Close()
	defer a.Notifier.Close()
	// Catching up starts at the journal's end: earlier events are history.
	if newest, err := a.Client.NewestSeq(ctx); err == nil {
		a.Notifier.StartSeq(newest)
	}
	notices, err := a.Client.Watch(ctx)
	if err != nil {
		return err
	}
	if a.Tray != nil {
		go a.Tray.Run(ctx)
	}
	go a.FindModel(ctx, a.model)
	for n := range notices {
		switch n := n.(type) {
		case client.AlertRaised:
			a.Notifier.Raised(n.Alert)
		case client.AlertCleared:
			a.Notifier.Cleared(n.ID)
		case client.OwnerChanged:
			if n.Owner == "" {
				a.log.Warn("npllmd is gone from the system bus; waiting for it")
				continue
			}
			a.log.Info("following npllmd", "unique_name", n.Owner)
			go a.Notifier.CatchUp(ctx)
		case client.PropertiesChanged:
			continue // the tray re-reads the status when an alert changes
		}
		if a.Tray != nil {
			a.Tray.Changed()
		}
		if extra != nil {
			extra(n)
		}
	}
	return nil
}
