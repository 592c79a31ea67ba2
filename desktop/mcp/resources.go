package mcp

import (
	"context"
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/tools"
)

const (
	uriStatus = "npllm://status"
	uriAlerts = "npllm://alerts"
	uriEvents = "npllm://events/recent"
)

func (b *Bridge) addResources() {
	b.srv.AddResource(mcp.NewResource(uriStatus, "status",
		mcp.WithResourceDescription("The machine's health, memory, pressure, alerts and busiest processes (as the system_status tool). Subscribe to hear when alerts change."),
		mcp.WithMIMEType("application/json")),
		func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			st, err := b.tools.Status(ctx)
			if err != nil {
				return nil, err
			}
			return jsonContents(uriStatus, st)
		})
	b.srv.AddResource(mcp.NewResource(uriAlerts, "alerts",
		mcp.WithResourceDescription("Active alerts (memory pressure, OOM kills, crashes, full disks, …). Subscribe to be told when one is raised or cleared."),
		mcp.WithMIMEType("application/json")),
		func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			st, err := b.tools.Status(ctx)
			if err != nil {
				return nil, err
			}
			return jsonContents(uriAlerts, st.ActiveAlerts)
		})
	b.srv.AddResource(mcp.NewResource(uriEvents, "recent events",
		mcp.WithResourceDescription("The last 20 journal events with their seq."),
		mcp.WithMIMEType("application/json")),
		func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			evs, last, err := b.tools.LastEvents(ctx, client.EventFilter{}, tools.DefaultEvents)
			if err != nil {
				return nil, err
			}
			return jsonContents(uriEvents, tools.EventPage{Events: tools.EventMaps(evs), LastSeq: last})
		})
}

func jsonContents(uri string, v any) ([]mcp.ResourceContents, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return []mcp.ResourceContents{mcp.TextResourceContents{URI: uri, MIMEType: "application/json", Text: string(data)}}, nil
}
