package desktop

// These tests run without root. npllmd is an in-process fake of OUR
// bus-client interface (desktop/internal/fakenpllmd) and the notification
// server a fake of esiqveland/notify's Notifier interface: the real
// daemon, polkit and dunst are in agent_test.go (privileged).

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/desktop/ask"
	"github.com/npllm/npllm/desktop/internal/fakenpllmd"
)

type fakeNotes struct {
	mu    sync.Mutex
	sent  []notify.Notification
	ids   []uint32
	next  uint32
	caps  []string
	close []uint32
}

func (f *fakeNotes) SendNotification(n notify.Notification) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := n.ReplacesID
	if id == 0 {
		f.next++
		id = f.next
	}
	f.sent, f.ids = append(f.sent, n), append(f.ids, id)
	return id, nil
}
func (f *fakeNotes) GetCapabilities() ([]string, error) { return f.caps, nil }
func (f *fakeNotes) GetServerInformation() (notify.ServerInformation, error) {
	return notify.ServerInformation{}, nil
}
func (f *fakeNotes) CloseNotification(id uint32) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.close = append(f.close, id)
	return true, nil
}
func (f *fakeNotes) Close() error { return nil }

func (f *fakeNotes) last() (notify.Notification, uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[len(f.sent)-1], f.ids[len(f.ids)-1]
}

func newTestNotifier(t *testing.T) (*Notifier, *fakenpllmd.Fake, *fakeNotes) {
	t.Helper()
	d := fakenpllmd.New()
	notes := &fakeNotes{caps: []string{"body-markup", "actions"}}
	n := newNotifier(d, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.attach(notes)
	return n, d, notes
}

func details(kv ...any) map[string]dbus.Variant {
	m := map[string]dbus.Variant{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = dbus.MakeVariant(kv[i+1])
	}
	return m
}

func keys(acts []notify.Action) []string {
	var out []string
	for _, a := range acts {
		out = append(out, a.Key+"="+a.Label)
	}
	return out
}

func TestTextsAndButtonsPerAlertKind(t *testing.T) {
	cases := []struct {
		alert   api.Alert
		summary string
		buttons []string
	}{
		{api.Alert{ID: "m", Kind: api.KindMemoryPressure, Severity: "warning", PID: 7, StartTime: 70, Comm: "hog", Details: details("summary", "memory <b>pressure</b> 40%")},
			"The system is short of memory", []string{"default=Terminate hog", "terminate=Terminate hog", "lower=Lower its priority", "details=Details"}},
		{api.Alert{ID: "l", Kind: api.KindMemoryLow, Severity: "critical"},
			"Memory is running out", []string{"default=Details", "details=Details"}},
		{api.Alert{ID: "c", Kind: api.KindCPURunaway, PID: 8, Comm: "spin"},
			"spin keeps a CPU busy", []string{"default=Terminate spin", "terminate=Terminate spin", "lower=Lower its priority", "mute=Don't warn about this app"}},
		{api.Alert{ID: "a", Kind: api.KindAnomaly, PID: 9, Comm: "fat"},
			"fat uses far more memory than usual", []string{"default=Terminate fat", "terminate=Terminate fat", "lower=Lower its priority", "mute=Don't warn about this app"}},
		{api.Alert{ID: "o", Kind: api.KindOOMKill, PID: 10, Comm: "leaky"},
			"Out of memory: leaky was killed", []string{"default=Details", "details=Details", "mute=Don't warn about this app"}},
		{api.Alert{ID: "p", Kind: api.KindProcessCrash, PID: 11, Comm: "crashy\x1b[31m"},
			"crashy[31m crashed", []string{"default=Details", "details=Details", "mute=Don't warn about this app"}},
		{api.Alert{ID: "u", Kind: api.KindUnitFailed, Unit: "cups.service", Details: details("unit", "cups.service")},
			"cups.service failed", []string{"default=Restart unit", "restart=Restart unit", "details=Details"}},
		{api.Alert{ID: "d", Kind: api.KindDiskFull, Details: details("mount", "/home")},
			"Disk almost full: /home", []string{"default=Details", "details=Details"}},
	}
	for _, explain := range []bool{false, true} {
		n, _, notes := newTestNotifier(t)
		if explain {
			n.SetExplainer(&fakeExplainer{}, nil)
		}
		for _, c := range cases {
			n.Raised(c.alert)
			note, _ := notes.last()
			want := c.buttons
			if explain {
				want = append(slices.Clone(want), "explain=Explain")
			}
			if note.Summary != c.summary || !slices.Equal(keys(note.Actions), want) {
				t.Errorf("%s (explain %v): %q %v, want %q %v", c.alert.Kind, explain, note.Summary, keys(note.Actions), c.summary, want)
			}
			if c.alert.Kind == api.KindMemoryPressure && note.Body != "memory &lt;b&gt;pressure&lt;/b&gt; 40%" {
				t.Errorf("body not escaped: %q", note.Body)
			}
		}
	}
}

func TestButtonsDispatchToTheRightCall(t *testing.T) {
	n, d, notes := newTestNotifier(t)
	d.Processes = []api.Process{{PID: 7, StartTime: 70, Comm: "hog", Nice: 0}, {PID: 8, StartTime: 80, Comm: "nicer", Nice: 15}}
	n.Raised(api.Alert{ID: "m", Kind: api.KindMemoryPressure, PID: 7, StartTime: 70, Comm: "hog"})
	_, mid := notes.last()
	n.Raised(api.Alert{ID: "c", Kind: api.KindCPURunaway, PID: 8, StartTime: 80, Comm: "nicer"})
	_, cid := notes.last()
	n.Raised(api.Alert{ID: "u", Kind: api.KindUnitFailed, Unit: "cups.service"})
	_, uid := notes.last()
	n.onAction(mid, "default") // the first button: Terminate hog
	n.onAction(mid, "lower")
	n.onAction(cid, "lower")
	n.onAction(uid, "restart")
	n.onAction(999, "terminate")                  // no such notification: nothing
	user := client.CallOptions{Interactive: true} // a click is the user's own request: not automated
	want := []fakenpllmd.Call{
		{Method: "SignalProcess", PID: 7, Start: 70, Arg: "TERM", Opts: user},
		{Method: "SetProcessPriority", PID: 7, Start: 70, Nice: 10, Opts: user},
		{Method: "SetProcessPriority", PID: 8, Start: 80, Nice: 15, Opts: user}, // never raise priority
		{Method: "ManageUnit", Arg: "cups.service restart", Opts: user},
	}
	if got := d.Writes(); !slices.Equal(got, want) {
		t.Errorf("calls\n%+v\nwant\n%+v", got, want)
	}
	if note, _ := notes.last(); note.Summary != "Restarting cups.service" {
		t.Errorf("result notification %q", note.Summary)
	}
}

type fakeExplainer struct {
	mu    sync.Mutex
	asked []api.Alert
}

func (f *fakeExplainer) String() string { return "the test's model" }
func (f *fakeExplainer) Explain(_ context.Context, a api.Alert) (string, error) {
	f.mu.Lock()
	f.asked = append(f.asked, a)
	f.mu.Unlock()
	return "leaky ran out of memory <script>\x1b[2J\nTry closing tabs.", nil
}

func TestExplainReplacesTheBodyAndWritesNothing(t *testing.T) {
	n, d, notes := newTestNotifier(t)
	e := &fakeExplainer{}
	redrawn := 0
	n.SetExplainer(e, func() { redrawn++ })
	a := api.Alert{ID: "oom.kill/5", Kind: api.KindOOMKill, Severity: "critical", PID: 10, Comm: "leaky", Seq: 5, Summary: "leaky was killed"}
	d.Alerts[a.ID] = a
	n.Raised(a)
	_, id := notes.last()
	n.onAction(id, "explain")
	note, nid := notes.last()
	if nid != id || note.ReplacesID != id {
		t.Errorf("explanation in notification %d, not in place of %d", nid, id)
	}
	if note.Body != "leaky ran out of memory &lt;script&gt;[2J\nTry closing tabs." {
		t.Errorf("body %q", note.Body)
	}
	if len(e.asked) != 1 || e.asked[0].ID != a.ID {
		t.Errorf("explainer asked %+v", e.asked)
	}
	if !strings.Contains(n.Explanation(a.ID), "Try closing tabs") || redrawn != 1 {
		t.Errorf("explanation for the tray %q, redrawn %d", n.Explanation(a.ID), redrawn)
	}
	// An update of the alert keeps the answer.
	n.Raised(a)
	if note, _ := notes.last(); !strings.Contains(note.Body, "Try closing tabs") {
		t.Errorf("after an update: %q", note.Body)
	}
	if len(d.Writes()) != 0 {
		t.Errorf("Explain wrote: %+v", d.Writes())
	}
	n.Cleared(a.ID)
	if n.Explanation(a.ID) != "" {
		t.Error("explanation kept after the alert cleared")
	}
}

func TestExplainInputsCarryTheEventBaselineAndRelatedEvents(t *testing.T) {
	d := fakenpllmd.New()
	d.Events = []api.Event{
		{Seq: 3, Kind: api.KindProcessExec, PID: 10, Comm: "leaky"},
		{Seq: 4, Kind: api.KindProcessExec, PID: 11, Comm: "other"},
		{Seq: 5, Kind: api.KindOOMKill, PID: 10, Comm: "leaky", UID: uint32(os.Getuid()), HasUID: true, OOM: &api.OOMKill{RSSBytes: 3 << 30, OOMScoreAdj: 200}},
	}
	d.Baselines["leaky"] = api.Baseline{Program: "leaky", Runs: 12, Crashes: 1, RSSP95Bytes: 512 << 20, CPUP95NS: 2e9}
	a := api.Alert{ID: "oom.kill/5", Kind: api.KindOOMKill, Severity: "critical", Seq: 5, PID: 10, Comm: "leaky",
		Summary: "leaky was killed", Details: details("summary", "x", "rss_bytes", uint64(3<<30))}
	in := ExplainInputs(context.Background(), d, a)
	if in.Alert.ID != a.ID || len(in.Alert.Details) != 1 || in.Alert.Details[0].Name != "rss_bytes" || in.Alert.Details[0].Value != "3221225472" {
		t.Errorf("alert %+v", in.Alert)
	}
	if in.Event == nil || in.Event.Seq != 5 || in.Event.Kind != api.KindOOMKill {
		t.Fatalf("event %+v", in.Event)
	}
	if !slices.Contains(in.Event.Details, ask.Detail{Name: "rss_bytes", Value: "3221225472"}) {
		t.Errorf("event details %+v lack the victim's rss", in.Event.Details)
	}
	if in.Baseline == nil || in.Baseline.Runs != 12 || in.Baseline.PeakRSSP95Bytes != 512<<20 {
		t.Errorf("baseline %+v", in.Baseline)
	}
	if len(in.Related) != 1 || in.Related[0].Seq != 3 {
		t.Errorf("related %+v (want the exec of pid 10, not the event itself or another pid's)", in.Related)
	}
}

// The baseline npllmd answers with is the caller's own program of that
// name: for another user's process (or one whose owner is unknown) it
// would mislead the model, so none is sent.
func TestExplainInputsSendNoBaselineForAnotherUsersProcess(t *testing.T) {
	d := fakenpllmd.New()
	d.Baselines["leaky"] = api.Baseline{Program: "leaky", Runs: 12, Crashes: 1, RSSP95Bytes: 512 << 20, CPUP95NS: 2e9}
	for _, ev := range []api.Event{
		{Seq: 5, Kind: api.KindOOMKill, PID: 10, Comm: "leaky", UID: uint32(os.Getuid()) + 4242, HasUID: true, OOM: &api.OOMKill{}},
		{Seq: 5, Kind: api.KindOOMKill, PID: 10, Comm: "leaky", OOM: &api.OOMKill{}},
	} {
		d.Events = []api.Event{ev}
		a := api.Alert{ID: "oom.kill/5", Kind: api.KindOOMKill, Severity: "critical", Seq: 5, PID: 10, Comm: "leaky", Details: details("summary", "x")}
		if in := ExplainInputs(context.Background(), d, a); in.Baseline != nil {
			t.Errorf("owner uid %d (known %v): baseline %+v sent", ev.UID, ev.HasUID, in.Baseline)
		}
	}
}
