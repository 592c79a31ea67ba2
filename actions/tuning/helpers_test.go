package tuning

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const swappiness = "/proc/sys/vm/swappiness"

var quiet = slog.New(slog.DiscardHandler)

func readKnob(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func writeKnob(t testing.TB, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatal(err)
	}
}

// keepSwappiness restores the machine's value whatever the test does, and
// returns it with a neighbouring value to try (small steps: other tests may
// share this machine).
func keepSwappiness(t testing.TB) (orig, other string) {
	t.Helper()
	orig = readKnob(t, swappiness)
	t.Cleanup(func() { writeKnob(t, swappiness, orig) })
	n, _ := strconv.Atoi(orig)
	if n > 0 {
		return orig, strconv.Itoa(n - 1)
	}
	return orig, strconv.Itoa(n + 1)
}

// events collects what the engine reports.
type events struct {
	mu   sync.Mutex
	list []Event
	at   []time.Time
	ch   chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 64)} }

func (e *events) record(ev Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.at = append(e.at, time.Now())
	e.mu.Unlock()
	e.ch <- ev
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Kind)
	}
	return out
}

// wait returns the next event of kind, failing after timeout.
func (e *events) wait(t testing.TB, kind string, timeout time.Duration) Event {
	t.Helper()
	return e.waitID(t, kind, "", timeout)
}

// waitID returns the next event of kind about trial id ("": any trial).
func (e *events) waitID(t testing.TB, kind string, id TrialID, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind && (id == "" || ev.Trial.ID == id) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %v (saw %v)", kind, timeout, e.kinds())
		}
	}
}

func newEngine(t testing.TB, dir string, m Metrics) (*Engine, *events) {
	t.Helper()
	return newEngineEnv(t, dir, m, nil)
}

func newEngineEnv(t testing.TB, dir string, m Metrics, env *Env) (*Engine, *events) {
	t.Helper()
	ev := newEvents()
	e, err := New(Config{StateDir: dir, Metrics: m, Record: ev.record, Log: quiet, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.RecoverAtStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e, ev
}

// fakeMetrics is the boundary the daemon provides (PSI, histograms, unit
// usage); here it is faked so a test can decide when the evidence appears.
// Every value is 1 until bad is set, then 50; firstBad is when a sample
// first returned the bad value.
type fakeMetrics struct {
	mu       sync.Mutex
	bad      bool
	firstBad time.Time
}

func (f *fakeMetrics) Sample(_ context.Context, w Watch) (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.bad {
		return 1, nil
	}
	if f.firstBad.IsZero() {
		f.firstBad = time.Now()
	}
	return 50, nil
}

func (f *fakeMetrics) setBad() {
	f.mu.Lock()
	f.bad = true
	f.mu.Unlock()
}

func (f *fakeMetrics) evidenceAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstBad
}
