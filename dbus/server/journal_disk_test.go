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
		row := sensorRow(t, c, "event-pipeline")
		reason, _ = row.Details["reason"].Value().(string)
		dropped, _ = row.Details["journal_dropped_disk"].Value().(uint64)
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
