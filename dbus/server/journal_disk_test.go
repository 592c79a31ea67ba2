package server_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// The state directory on a 1 MiB tmpfs, filled up: a crash and an OOM kill
// still raise their alerts (alerts do not depend on the disk), the
// event-pipeline row says why and counts the events it had to drop; once
// space is freed, events are stored again with seqs above every one shown.
func TestFullStateDiskStillRaisesAlertsSaysWhyAndResumes(t *testing.T) {
	state := t.TempDir()
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
	_, _, c := startDaemon(t, "--state-dir="+state)
	w := watchAlerts(t, c)
	filler, err := os.Create(filepath.Join(state, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()
	// Enough events to need new pages of the segment file.
	for i := 0; i < 100; i++ {
		exec.Command("true").Run()
	}

	segv := exec.Command("sh", "-c", "kill -SEGV $$")
	segv.Run()
	var maxSeq uint64
	seqOf := func(sig *godbus.Signal) uint64 {
		s, _ := sig.Body[3].(map[string]godbus.Variant)["seq"].Value().(uint64)
		maxSeq = max(maxSeq, s)
		return s
	}
	w.next(t, "Alert", func(id string, sig *godbus.Signal) bool {
		return sig.Body[2] == api.KindProcessCrash && sig.Body[3].(map[string]godbus.Variant)["pid"].Value() == uint32(segv.Process.Pid) && seqOf(sig) > 0
	})
	hog := startHog(t, memoryCgroup(t, 48<<20))
	w.next(t, "Alert", func(id string, sig *godbus.Signal) bool {
		return sig.Body[2] == api.KindOOMKill && sig.Body[3].(map[string]godbus.Variant)["pid"].Value() == uint32(hog.Process.Pid) && seqOf(sig) > 0
	})

	// The journal retries for 30 s before it drops and counts.
	var reason string
	var dropped uint64
	for deadline := time.Now().Add(50 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		reason, _ = sensorRow(t, c, "event-pipeline").Details["reason"].Value().(string)
		dropped = sensorCounters(t, c, "event-pipeline")["journal_dropped_disk"]
		if dropped > 0 {
			break
		}
	}
	if !strings.Contains(reason, "no space left") || dropped == 0 {
		t.Fatalf("event-pipeline on a full disk: reason %q, dropped %d", reason, dropped)
	}

	os.Remove(filepath.Join(state, "filler"))
	marker := exec.Command("sh", "-c", "exit 7")
	marker.Run()
	var found *api.Event
	pid := uint32(marker.Process.Pid)
	for deadline := time.Now().Add(15 * time.Second); found == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, evs, err := c.GetEvents(context.Background(), maxSeq, 1000, client.EventFilter{PID: &pid})
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			if evs[i].Kind == api.KindProcessExit {
				found = &evs[i]
			}
		}
	}
	if found == nil {
		t.Fatal("no event stored after space was freed")
	}
	if found.Seq <= maxSeq {
		t.Errorf("seq %d after the outage is not above %d shown in alerts during it", found.Seq, maxSeq)
	}
	waitForRefresh()
	if r, ok := sensorRow(t, c, "event-pipeline").Details["reason"]; ok {
		t.Errorf("still degraded after space was freed: %v", r)
	}
	t.Logf("while full: %q, %d dropped", reason, dropped)
}

// Damaged journal state never stops npllmd: after kill -9 twice (each
// restart starts a new segment), the oldest segment gets random bytes over
// its middle and the seq floor is truncated; the restarted daemon moves
// both aside, serves the events of the good segments and continues the
// seqs above them.
func TestDamagedJournalIsMovedAsideAndNpllmdStartsWithTheGoodPart(t *testing.T) {
	b := testbus.ForTest(t)
	state := filepath.Join(t.TempDir(), "state")
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.NewClient(conn)
	var markers []int
	var lastSeq uint64
	for round := 0; round < 3; round++ {
		d := b.DaemonForTest(t, bin("npllmd"), "--state-dir="+state)
		m := exec.Command("sh", "-c", "exit 3")
		m.Run()
		markers = append(markers, m.Process.Pid)
		evs := allEvents(t, c, nil, func(evs []map[string]godbus.Variant) bool { return exitOf(evs, m.Process.Pid) != nil })
		if exitOf(evs, m.Process.Pid) == nil {
			t.Fatalf("round %d: marker not journaled", round)
		}
		lastSeq = evs[len(evs)-1]["seq"].Value().(uint64)
		if round < 2 {
			d.Cmd.Process.Signal(syscall.SIGKILL)
			d.Wait(5 * time.Second)
		} else {
			d.Cmd.Process.Signal(syscall.SIGTERM)
			d.Wait(10 * time.Second)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(state, "journal", "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("segments %v", segs)
	}
	first := segs[0] // names sort by first seq
	st, _ := os.Stat(first)
	junk := make([]byte, 64)
	for i := range junk {
		junk[i] = byte(i*37 + 11)
	}
	f, _ := os.OpenFile(first, os.O_WRONLY, 0)
	f.WriteAt(junk, st.Size()/2)
	f.Close()
	os.Truncate(filepath.Join(state, "journal", "seq.floor"), 5)

	b.DaemonForTest(t, bin("npllmd"), "--state-dir="+state)
	exec.Command("true").Run()
	after := allEvents(t, c, nil, func(evs []map[string]godbus.Variant) bool {
		return len(evs) > 0 && evs[len(evs)-1]["seq"].Value().(uint64) > lastSeq
	})
	if exitOf(after, markers[0]) != nil {
		t.Error("an event of the damaged segment is still served")
	}
	if exitOf(after, markers[1]) == nil || exitOf(after, markers[2]) == nil {
		t.Error("events of the good segments are gone")
	}
	if len(after) == 0 || after[len(after)-1]["seq"].Value().(uint64) <= lastSeq {
		t.Fatal("no new events above the old seqs after the restart")
	}
	moved, _ := filepath.Glob(filepath.Join(state, "journal", "*.damaged-*"))
	if len(moved) != 2 {
		t.Errorf("moved aside: %v (want the segment and the seq floor)", moved)
	}
	if n := sensorCounters(t, c, "event-pipeline")["journal_moved_aside"]; n != 2 {
		t.Errorf("journal_moved_aside %v", n)
	}
}
