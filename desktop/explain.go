package desktop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/ask"
	"github.com/npllm/npllm/desktop/tools"
)

// Explainer answers the "Explain" button of an alert.
type Explainer interface {
	Explain(ctx context.Context, a api.Alert) (string, error)
	String() string // what answers, for "Asking …"
}

// SetExplainer turns the "Explain" button on (e nil: off).
func (n *Notifier) SetExplainer(e Explainer, onExplained func()) {
	n.mu.Lock()
	n.explainWith, n.onExplained = e, onExplained
	n.mu.Unlock()
}

func (n *Notifier) explainer() Explainer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.explainWith
}

// Explanation is the model's answer about an active alert, if asked.
func (n *Notifier) Explanation(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.explained[id]
}

// explainTimeout covers the ask loop's own budget (3 min) and the reads.
const explainTimeout = 4 * time.Minute

// maxExplanation bounds what a notification body shows of an answer.
const maxExplanation = 2000

// explain asks the model about t's alert and puts the answer in place of
// the notification's body (or in a new one if it is gone). The session
// is read-only: a click on "Explain" never changes anything.
func (n *Notifier) explain(_ context.Context, t target) {
	e := n.explainer()
	if e == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), explainTimeout)
	defer cancel()
	a, err := n.client.GetAlert(ctx, t.alert)
	if err != nil {
		n.inform("Nothing to explain", Escape(api.ErrorMessage(err)))
		return
	}
	n.showExplanation(t.alert, "Asking "+e.String()+" …", false)
	text, err := e.Explain(ctx, a)
	if err != nil {
		text = strings.TrimSpace(text + "\n\n(The model could not finish: " + err.Error() + ")")
	}
	n.log.Info("alert explained", "alert", t.alert, "bytes", len(text), "err", err)
	n.showExplanation(t.alert, text, true)
}

// showExplanation replaces the body of an alert's notification; keep
// remembers it (for updates of the alert and for the tray).
func (n *Notifier) showExplanation(id, text string, keep bool) {
	n.mu.Lock()
	if keep {
		n.explained[id] = text
	}
	s := n.byAlert[id]
	if s != nil {
		s.body = explanationBody(text)
		if !n.markup {
			s.body = unescape(s.body)
		}
		n.send(s)
	}
	done := n.onExplained
	n.mu.Unlock()
	if s == nil && keep {
		n.inform("Explanation", explanationBody(text))
	}
	if keep && done != nil {
		done()
	}
}

// explanationBody is a model's text made safe for a notification body:
// no control characters but newlines, escaped, bounded.
func explanationBody(text string) string {
	return Escape(clipText(strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return -1
		}
		return r
	}, text), maxExplanation))
}

// clipText cuts s to at most n bytes on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ModelExplainer explains alerts with the user's local model over a
// read-only tool set.
type ModelExplainer struct {
	Client   client.API
	Endpoint *ask.Endpoint
	Log      *slog.Logger
}

func (e *ModelExplainer) String() string { return e.Endpoint.String() }

// Explain sends the alert, its event, the program's baseline and recent
// related events, and returns the model's answer.
func (e *ModelExplainer) Explain(ctx context.Context, a api.Alert) (string, error) {
	in := ExplainInputs(ctx, e.Client, a)
	set := tools.New(e.Client, tools.Options{Log: e.Log})
	s := ask.NewSession(e.Endpoint, tools.AskTools{Set: set, ReadOnly: true}, ask.Options{ReadOnly: true, Log: e.Log})
	ans, err := s.Ask(ctx, ask.Explain(in.Alert, in.Event, in.Baseline, in.Related))
	return ans.Text, err
}

// Inputs are what "Explain" sends about an alert.
type Inputs struct {
	Alert    ask.AlertInfo
	Event    *ask.EventInfo
	Baseline *ask.BaselineInfo
	Related  []ask.EventInfo
}

// maxRelated is how many related events are sent.
const maxRelated = 20

// ExplainInputs gathers an alert's event, baseline and related events
// from npllmd. What npllmd withholds from this user (other users' command
// lines, paths, addresses) is absent here too. Missing parts are left out.
func ExplainInputs(ctx context.Context, c client.API, a api.Alert) Inputs {
	in := Inputs{Alert: ask.AlertInfo{ID: a.ID, Kind: a.Kind, Severity: a.Severity, Summary: a.Summary,
		Raised: time.Unix(0, int64(a.RaisedNS)), Details: alertDetails(&a)}}
	var kind string
	owner, ownerKnown := uint32(0), false
	if v, ok := a.Details["uid"].Value().(uint32); ok {
		owner, ownerKnown = v, true
	}
	if a.Seq > 0 {
		if _, evs, err := c.GetEvents(ctx, a.Seq-1, 1, client.EventFilter{}); err == nil && len(evs) == 1 && evs[0].Seq == a.Seq {
			ev := eventInfo(&evs[0])
			in.Event, kind = &ev, evs[0].Kind
			if evs[0].HasUID {
				owner, ownerKnown = evs[0].UID, true
			}
		}
	}
	// GetBaseline answers with the caller's own baseline of that name: it
	// says nothing true about another user's process, so none is sent then.
	if a.Comm != "" && ownerKnown && owner == uint32(os.Getuid()) {
		if bl, err := c.GetBaseline(ctx, a.Comm); err == nil && bl.Runs > 0 {
			in.Baseline = &ask.BaselineInfo{Program: bl.Program, Runs: bl.Runs, Crashes: bl.Crashes,
				PeakRSSP95Bytes: bl.RSSP95Bytes, CPUP95: time.Duration(bl.CPUP95NS)}
		}
	}
	filter := client.EventFilter{}
	switch {
	case a.PID != 0:
		filter.PID = &a.PID
	case kind != "":
		filter.Kinds = []string{kind}
	default:
		return in
	}
	evs, _, err := tools.New(c, tools.Options{}).LastEvents(ctx, filter, maxRelated+1)
	if err != nil {
		return in
	}
	for i := range evs {
		if evs[i].Seq != a.Seq {
			in.Related = append(in.Related, eventInfo(&evs[i]))
		}
	}
	if len(in.Related) > maxRelated {
		in.Related = in.Related[len(in.Related)-maxRelated:]
	}
	return in
}

func alertDetails(a *api.Alert) []ask.Detail {
	var out []ask.Detail
	for k, v := range a.Details {
		if k == "summary" || k == "raised_ns" || k == "top" {
			continue
		}
		out = append(out, ask.Detail{Name: k, Value: formatValue(api.Plain(v.Value()))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func eventInfo(ev *api.Event) ask.EventInfo {
	e := ask.EventInfo{Seq: ev.Seq, Kind: ev.Kind, Time: time.Unix(0, int64(ev.TimeNS)), PID: ev.PID, Comm: ev.Comm}
	ev.EachField(func(k string, v any) {
		switch k {
		case "pid", "comm", "uid":
			return
		}
		e.Details = append(e.Details, ask.Detail{Name: k, Value: formatValue(v)})
	})
	return e
}

// FindModel looks for the user's model until one answers (configured, or
// probed on the usual local ports), then turns "Explain" on. A configured
// URL that is refused as such (bad, or remote without allow_remote) stops
// the search: retrying would not help.
func (a *Agent) FindModel(ctx context.Context, cfg ask.ModelConfig) {
	for {
		ep, err := ask.Resolve(ctx, cfg, ask.ResolveOptions{})
		if err == nil {
			a.log.Info("Explain button on: local model found", "model", ep.String())
			a.Notifier.SetExplainer(&ModelExplainer{Client: a.Client, Endpoint: ep, Log: a.log}, func() {
				if a.Tray != nil {
					a.Tray.Changed()
				}
			})
			return
		}
		if errors.Is(err, ask.ErrBadURL) || errors.Is(err, ask.ErrRemoteURL) || errors.Is(err, ask.ErrKeyFile) ||
			errors.Is(err, ask.ErrKeyFileMode) || errors.Is(err, ask.ErrKeyFileOwner) {
			a.log.Warn("no Explain button: the [model] settings are refused", "err", err)
			return
		}
		a.log.Debug("no local model yet", "err", fmt.Sprint(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}
