package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/sensors"
)

// The child side of the kill -9 test: append as fast as possible, and
// after each commit read the journal back and print the last seq read.
func TestHelperStormChild(t *testing.T) {
	dir := os.Getenv("NPLLM_JOURNAL_STORM_DIR")
	if dir == "" {
		t.Skip("helper process for TestKill9MidStormLosesNoEventAReaderSawAndReusesNoSeq")
	}
	j, err := Open(dir, Options{FlushInterval: time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var seen uint64
	for i := 0; ; i++ {
		j.Append(sensors.Event{Kind: api.KindProcessExec, PID: uint32(i), Comm: "storm", Argv: []string{"a", "b"}})
		if i%100 == 99 {
			last, evs, err := j.Query(seen, 1000, Filter{})
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			if len(evs) > 0 {
				seen = evs[len(evs)-1].Seq
				fmt.Println("seen", seen)
			} else {
				_ = last
			}
		}
	}
}

// kill -9 in the middle of a storm of appends loses no event a reader
// saw (write(2) returned: the kernel has it), and the next run reuses no
// seq (the floor is persisted ahead of use).
func TestKill9MidStormLosesNoEventAReaderSawAndReusesNoSeq(t *testing.T) {
	dir := t.TempDir()
	var maxSeen uint64
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStormChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "NPLLM_JOURNAL_STORM_DIR="+dir)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines := 0
		var seenThisRound uint64
		for sc.Scan() && lines < 50+round*37 {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == "seen" {
				s, _ := strconv.ParseUint(f[1], 10, 64)
				seenThisRound = s
				lines++
			} else if len(f) > 0 && f[0] == "error" {
				t.Fatal(sc.Text())
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if seenThisRound <= maxSeen {
			t.Fatalf("round %d: child saw seq %d, not above the previous run's %d (seq reused)", round, seenThisRound, maxSeen)
		}
		j, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Every seq the child read is there.
		have := map[uint64]bool{}
		for after := maxSeen; after < seenThisRound; {
			_, evs, err := j.Query(after, 1000, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				have[ev.Seq] = true
			}
			after = evs[len(evs)-1].Seq
		}
		first := seenThisRound
		for s := seenThisRound; s > maxSeen && have[s]; s-- {
			first = s
		}
		_, evs, _ := j.Query(maxSeen, 1, Filter{})
		if len(evs) == 0 || evs[0].Seq != first {
			t.Fatalf("round %d: events up to %d read by the child are not all there after kill -9 (contiguous from %d)", round, seenThisRound, first)
		}
		j.Append(sensors.Event{Kind: "marker"})
		j.Sync()
		if j.LastSeq() <= seenThisRound {
			t.Fatalf("round %d: new event got seq %d, not above %d", round, j.LastSeq(), seenThisRound)
		}
		maxSeen = j.LastSeq()
		j.Close()
		t.Logf("round %d: child saw up to %d; after restart the next seq was %d", round, seenThisRound, maxSeen)
	}
}

// An urgent event (an OOM kill, a crash, a failed unit) is handed to
// subscribers without waiting for the group commit, and fsynced at once
// without waiting for the sync interval; an ordinary one waits for both.
func TestUrgentEventIsDeliveredAndFsyncedAtOnce(t *testing.T) {
	got := make(chan sensors.Event, 16)
	j, err := Open(t.TempDir(), Options{FlushInterval: 500 * time.Millisecond, SyncInterval: time.Hour,
		OnCommit: func(evs []sensors.Event) {
			for _, ev := range evs {
				got <- ev
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.Append(sensors.Event{Kind: api.KindProcessExit, Exit: &api.ExitStatus{Signal: 15}})
	j.Sync()
	<-got
	if c := j.Counters(); c["journal_syncs"] != 0 {
		t.Fatalf("an ordinary event was fsynced before the interval: %v", c)
	}
	for _, ev := range []sensors.Event{
		{Kind: "oom.kill", PID: 42},
		{Kind: api.KindProcessExit, Exit: &api.ExitStatus{Signal: 11}},
		{Kind: "unit.failed"},
	} {
		before := j.Counters()["journal_urgent_syncs"]
		start := time.Now()
		j.Append(ev)
		select {
		case e := <-got:
			if e.Kind != ev.Kind {
				t.Fatalf("delivered %s, want %s", e.Kind, ev.Kind)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("%s delivered after %s: it waited for the group commit", ev.Kind, took)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s never delivered", ev.Kind)
		}
		deadline := time.Now().Add(2 * time.Second)
		for j.Counters()["journal_urgent_syncs"] == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if j.Counters()["journal_urgent_syncs"] != before+1 {
			t.Errorf("%s not fsynced at once: %v", ev.Kind, j.Counters())
		}
	}
}

// A full disk (a 1 MiB tmpfs filled up): writes are retried with backoff,
// subscribers still get every event (alerts do not depend on the disk),
// events are dropped and counted after RetryFor, Health says why; once
// space is freed writes resume and no seq is reused.
func TestFullDiskRetriesCountsDropsDegradesHealthAndResumes(t *testing.T) {
	testbus.Privileged(t)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	var mu sync.Mutex
	var delivered []uint64
	j, err := Open(mnt, Options{FlushInterval: 5 * time.Millisecond, RetryFor: 400 * time.Millisecond,
		OnCommit: func(evs []sensors.Event) {
			mu.Lock()
			for _, ev := range evs {
				delivered = append(delivered, ev.Seq)
			}
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.Append(sensors.Event{Kind: "process.exec"})
	j.Sync()
	filler := filepath.Join(mnt, "filler")
	f, _ := os.Create(filler)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	big := strings.Repeat("x", 2000)
	for i := 0; i < 300; i++ {
		ev := sensors.Event{Kind: api.KindProcessExec, PID: uint32(i), Argv: []string{big}}
		if i == 150 {
			ev = sensors.Event{Kind: "oom.kill", PID: 4242}
		}
		j.Append(ev)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	ok, reason := j.Health()
	c := j.Counters()
	if ok || !strings.Contains(reason, "no space") {
		t.Errorf("Health on a full disk: %v %q", ok, reason)
	}
	if c["journal_write_errors"] < 2 || c["journal_dropped_disk"] == 0 {
		t.Errorf("no retries or no drops counted: %v", c)
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("a full disk is not a stuck pipeline (the watchdog would restart npllmd): %v", err)
	}
	mu.Lock()
	n := len(delivered)
	mu.Unlock()
	if n != 301 {
		t.Errorf("subscribers got %d of 301 events while the disk was full", n)
	}
	lastBefore := j.LastSeq()
	os.Remove(filler)
	for i := 0; i < 5; i++ {
		j.Append(sensors.Event{Kind: "process.exit", PID: uint32(i)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for j.LastSeq() < 306 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if ok, reason := j.Health(); !ok {
		t.Errorf("Health after space was freed: %q", reason)
	}
	_, evs, _ := j.Query(lastBefore, 1000, Filter{Kinds: []string{"process.exit"}})
	if len(evs) != 5 || evs[0].Seq <= 301 {
		t.Fatalf("after space was freed: %d new events from %v (last before %d)", len(evs), evs, lastBefore)
	}
	mu.Lock()
	seen := map[uint64]bool{}
	for _, s := range delivered {
		if seen[s] {
			t.Errorf("seq %d delivered twice", s)
		}
		seen[s] = true
	}
	mu.Unlock()
	t.Logf("counters %v; reason while full: %q", c, reason)
}

// A bbolt journal.db of earlier versions is migrated (events and next
// seq) and moved aside; one bbolt cannot read is moved aside as damaged.
func TestBboltJournalIsMigratedOrMovedAside(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "journal.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("events"))
		for seq := uint64(7); seq <= 9; seq++ {
			ev := sensors.Event{Seq: seq, TimeNS: 1, Kind: "process.exec", PID: uint32(seq)}
			v, _ := encode(&ev)
			b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
		}
		m, _ := tx.CreateBucket([]byte("meta"))
		return m.Put([]byte("next_seq"), binary.BigEndian.AppendUint64(nil, 42))
	})
	db.Close()
	log, buf := capture()
	j, err := Open(dir, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	_, evs, _ := j.Query(0, 10, Filter{PID: ptr(uint32(8))})
	j.Append(sensors.Event{Kind: "k"})
	j.Sync()
	if len(evs) != 1 || evs[0].Seq != 8 || j.LastSeq() != 42 {
		t.Errorf("migrated: %+v, next seq %d (want event 8 and seq 42)", evs, j.LastSeq())
	}
	j.Close()
	moved, _ := filepath.Glob(filepath.Join(dir, "journal.db.migrated-*"))
	if _, err := os.Stat(filepath.Join(dir, "journal.db")); err == nil || len(moved) != 1 || !strings.Contains(buf.String(), "moved aside") {
		t.Errorf("journal.db not moved aside: %v %s", moved, buf.String())
	}

	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "journal.db"), []byte(strings.Repeat("garbage ", 2000)), 0o600)
	j, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("a damaged journal.db stopped the journal: %v", err)
	}
	defer j.Close()
	if moved, _ := filepath.Glob(filepath.Join(dir, "journal.db.damaged-*")); len(moved) != 1 {
		t.Errorf("damaged journal.db not moved aside: %v", moved)
	}
}

func ptr[T any](v T) *T { return &v }
