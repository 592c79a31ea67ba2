package server_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// A crash wakes the process ring's reader at once (the exit program forces
// the wake-up) and commits at once (urgent), so its alert does not wait for
// the ring's poll (60 ms, up to 1 s after a quiet spell) nor the journal's
// group commit: from the kernel's exit time to the Alert at a client, the
// median of five crashes is under 30 ms (a poll alone would average 30 ms
// plus the commit's 20) and none takes 250 ms (one fdatasync on a busy
// shared disk included).
func TestCrashAlertArrivesWithoutWaitingForThePoll(t *testing.T) {
	_, _, c := startDaemon(t)
	w := watchAlerts(t, c)
	time.Sleep(2500 * time.Millisecond) // let the readers back off towards their idle poll
	var lats []time.Duration
	for range 5 {
		crash := exec.Command("sh", "-c", "kill -SEGV $$")
		crash.Run()
		pid := uint32(crash.Process.Pid)
		sig := w.next(t, "Alert", func(id string, sig *dbus.Signal) bool {
			d := sig.Body[3].(map[string]dbus.Variant)
			return strings.HasPrefix(id, "process.crash/") && d["pid"].Value() == pid
		})
		got := time.Now()
		seq := sig.Body[3].(map[string]dbus.Variant)["seq"].Value().(uint64)
		_, evs, err := wireEvents(c, seq-1, 1, nil)
		if err != nil || len(evs) != 1 {
			t.Fatalf("event %d: %v %v", seq, err, evs)
		}
		lat := got.Sub(time.Unix(0, int64(evs[0]["time_ns"].Value().(uint64))))
		t.Logf("crash of pid %d: alert %v after the kernel's exit", pid, lat)
		if lat > 250*time.Millisecond {
			t.Errorf("crash alert took %v", lat)
		}
		lats = append(lats, lat)
		time.Sleep(1500 * time.Millisecond)
	}
	if m := p50(lats); m > 30*time.Millisecond {
		t.Errorf("median crash alert latency %v", m)
	}
}
