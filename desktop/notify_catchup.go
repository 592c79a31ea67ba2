package desktop

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// CatchUp runs when npllmd (re)appears: alerts raised while the agent was
// not listening are shown, those already shown are not shown again, and
// OOM kills and crashes journaled meanwhile are reported.
func (n *Notifier) CatchUp(ctx context.Context) {
	st, err := n.client.Status(ctx)
	if err != nil {
		n.log.Warn("catch up: status", "err", err)
		return
	}
	for _, a := range st.ActiveAlerts {
		n.mu.Lock()
		known := n.seen[a.ID]
		n.mu.Unlock()
		if !known {
			n.Raised(a)
		}
	}
	n.mu.Lock()
	after := n.lastSeq
	n.mu.Unlock()
	if after == 0 {
		return // first start: history is not news
	}
	_, evs, err := n.client.GetEvents(ctx, after, 200, client.EventFilter{Kinds: []string{api.KindOOMKill}})
	if err != nil {
		return
	}
	for _, ev := range evs {
		// The id the engine gave the alert this event raised.
		id := fmt.Sprintf("%s/%d", api.KindOOMKill, ev.Seq)
		n.mu.Lock()
		known := n.seen[id]
		n.mu.Unlock()
		if !known {
			summary := fmt.Sprintf("%s (pid %d) was killed for lack of memory", ev.Comm, ev.PID)
			details := ev.Encode()
			details["summary"] = dbus.MakeVariant(summary)
			n.Raised(api.Alert{ID: id, Severity: api.SeverityCritical, Kind: api.KindOOMKill, Summary: summary,
				Seq: ev.Seq, PID: ev.PID, StartTime: ev.StartTime, Comm: ev.Comm, Details: details})
		}
	}
}

// StartSeq sets where catching up starts (the journal's newest seq when
// the agent starts).
func (n *Notifier) StartSeq(seq uint64) {
	n.mu.Lock()
	n.lastSeq = max(n.lastSeq, seq)
	n.mu.Unlock()
}
