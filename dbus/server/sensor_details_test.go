package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
)

// The Sensors property carries only what changes rarely; descriptions and
// counters come from GetSensorDetails, for an unprivileged caller too, and
// npllmctl sensors shows them.
func TestSensorCountersComeFromGetSensorDetailsNotTheProperty(t *testing.T) {
	b, _, c := startDaemon(t)
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sensors {
		for k := range s.Details {
			if k != "skipped" && k != "reason" && k != "fix" {
				t.Errorf("Sensors row %s carries %q: counters and descriptions belong in GetSensorDetails", s.Name, k)
			}
		}
	}
	alice, err := testbus.EnsureUser("npllm-alice")
	if err != nil {
		t.Fatal(err)
	}
	out, err := alice.Command(b, bin("npllmctl"), "--json", "sensors").Output()
	if err != nil {
		t.Fatalf("npllmctl sensors as alice: %v\n%s", err, out)
	}
	var rows []struct {
		Name        string            `json:"name"`
		State       string            `json:"state"`
		Description string            `json:"description"`
		Counters    map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("npllmctl sensors --json: %v\n%s", err, out)
	}
	if len(rows) != len(st.Sensors) {
		t.Errorf("npllmctl sensors: %d rows, Sensors has %d", len(rows), len(st.Sensors))
	}
	byName := map[string]int{}
	for i, r := range rows {
		byName[r.Name] = i
		if r.Description == "" {
			t.Errorf("sensor %s has no description", r.Name)
		}
	}
	proc, ok := byName["process"]
	if !ok || rows[proc].State != "running" {
		t.Fatalf("process sensor not running: %s", out)
	}
	if _, ok := rows[proc].Counters["emitted"]; !ok {
		t.Errorf("process sensor's counters lack emitted: %v", rows[proc].Counters)
	}
	pipe, ok := byName["event-pipeline"]
	if !ok {
		t.Fatalf("no event-pipeline row: %s", out)
	}
	for _, k := range []string{"queued", "dropped_queue", "audit_denials_not_logged", "journal_last_seq"} {
		if _, ok := rows[pipe].Counters[k]; !ok {
			t.Errorf("event-pipeline counters lack %s: %v", k, rows[pipe].Counters)
		}
	}
	text, err := alice.Command(b, bin("npllmctl"), "sensors").Output()
	if err != nil || !strings.Contains(string(text), "emitted=") || !strings.Contains(string(text), rows[proc].Description) {
		t.Errorf("npllmctl sensors: %v\n%s", err, text)
	}
}

// With counters out of the property set, an idle daemon's refreshes do not
// re-emit Sensors (nor anything carrying counters) every second.
func TestSensorsIsNotReemittedEveryRefresh(t *testing.T) {
	_, _, c := startDaemon(t)
	conn := c.Conn()
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(api.ObjectPath), dbus.WithMatchInterface("org.freedesktop.DBus.Properties")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 256)
	conn.Signal(sigs)
	time.Sleep(1500 * time.Millisecond) // past start-up (sensors may still change state)
	for len(sigs) > 0 {
		<-sigs
	}
	changes, sensors := 0, 0
	for end := time.After(4 * time.Second); ; {
		select {
		case s := <-sigs:
			if s.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(s.Body) < 2 {
				continue
			}
			changes++
			if _, ok := s.Body[1].(map[string]dbus.Variant)["Sensors"]; ok {
				sensors++
			}
			continue
		case <-end:
		}
		break
	}
	if changes == 0 {
		t.Fatal("no PropertiesChanged in 4 s: is the refresh loop running? (CPUUsage changes every second)")
	}
	if sensors > 0 {
		t.Errorf("Sensors re-emitted in %d of %d PropertiesChanged in 4 s of idling", sensors, changes)
	}
}
