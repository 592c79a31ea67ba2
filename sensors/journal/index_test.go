package journal

import (
	"bytes"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/systemd/msgid"
)

// capture is a logger whose lines a test can read.
func capture() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// Every filter, seek and page size through the indexes gives what a full
// scan of the same events gives, across many segments, with event times
// that jitter against seq order (sensors stamp their own times).
func TestIndexedQueriesAgreeWithAFullScan(t *testing.T) {
	j, err := Open(t.TempDir(), Options{SegmentEvents: 97, MaxEvents: 1 << 20, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []string{"process.exec", "process.exit", "tcp.connect", "oom.kill"}
	base := uint64(time.Now().Add(-time.Hour).UnixNano())
	var all []sensors.Event
	for i := 0; i < 3000; i++ {
		k := kinds[rng.IntN(3)]
		if i%500 == 7 {
			k = "oom.kill"
		}
		ev := sensors.Event{Kind: k, PID: uint32(rng.IntN(40)), UID: uint32(rng.IntN(3)), HasUID: rng.IntN(4) != 0,
			TimeNS: base + uint64(i)*1000 + uint64(rng.IntN(5000)), StartTime: uint64(i)}
		j.Append(ev)
		if i%211 == 0 {
			j.Sync()
		}
	}
	j.Sync()
	_, all, err = j.Query(0, 5000, Filter{})
	if err != nil || len(all) != 3000 {
		t.Fatalf("full scan: %d events, %v", len(all), err)
	}
	if last, evs, _ := j.Query(math.MaxUint64, 10, Filter{}); len(evs) != 0 || last != 3000 {
		t.Fatalf("after the largest seq: %d events, last %d", len(evs), last)
	}
	u := func(v uint32) *uint32 { return &v }
	filters := []Filter{
		{}, {Kinds: []string{"oom.kill"}}, {Kinds: []string{"process.exit", "tcp.connect", "process.exit"}},
		{PID: u(3)}, {UID: u(2)}, {Kinds: []string{"process.exec"}, PID: u(5)}, {PID: u(7), UID: u(1)},
		{SinceNS: base + 1_500_000}, {Kinds: []string{"tcp.connect"}, SinceNS: base + 2_000_000},
		{Kinds: []string{"no.such.kind"}}, {PID: u(99)},
	}
	for _, f := range filters {
		var want []uint64
		for i := range all {
			if f.match(&all[i]) {
				want = append(want, all[i].Seq)
			}
		}
		for _, page := range []int{1, 7, 1000} {
			for _, after := range []uint64{0, 1234} {
				var got []uint64
				cursor := after
				for calls := 0; calls < 4000; calls++ {
					last, evs, err := j.Query(cursor, page, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						got = append(got, ev.Seq)
					}
					if last == cursor || last >= j.LastSeq() {
						break
					}
					cursor = last
				}
				w := slices.DeleteFunc(slices.Clone(want), func(s uint64) bool { return s <= after })
				if !slices.Equal(got, w) {
					t.Fatalf("filter %+v page %d after %d: got %d events, want %d", f, page, after, len(got), len(w))
				}
			}
		}
	}
}

// A write cut by a power loss leaves half a record (or zeros) at the end
// of the last segment: the next open cuts it, says so, and the lost
// record's seq is not given out again.
func TestTornTailIsCutOnOpenWithALogLineAndItsSeqNotReused(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		j.Append(sensors.Event{Kind: "process.exec", PID: uint32(i), Comm: "x"})
	}
	j.Close()
	seg := filepath.Join(dir, "journal", segmentName(1))
	st, _ := os.Stat(seg)
	if err := os.Truncate(seg, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 4096)) // delayed allocation leaves zero blocks
	f.Close()

	log, buf := capture()
	j, err = Open(dir, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if !strings.Contains(buf.String(), "torn tail cut") {
		t.Errorf("no log line for the cut: %q", buf.String())
	}
	_, evs, _ := j.Query(0, 100, Filter{})
	if len(evs) != 9 || evs[8].Seq != 9 {
		t.Fatalf("after the cut: %d events", len(evs))
	}
	if st2, _ := os.Stat(seg); st2.Size() >= st.Size() {
		t.Errorf("segment not cut: %d bytes, was %d", st2.Size(), st.Size())
	}
	j.Append(sensors.Event{Kind: "process.exit"})
	j.Sync()
	if _, evs, _ = j.Query(9, 10, Filter{}); len(evs) != 1 || evs[0].Seq != 11 {
		t.Fatalf("next event %+v: want seq 11 (10 was shown before the cut)", evs)
	}
	if j.Counters()["journal_torn_cuts"] != 1 {
		t.Errorf("counters %v", j.Counters())
	}
}

// Damage in the middle of the journal (a bad block, a stray write) moves
// that segment aside with a timestamped name and a log line; the daemon
// starts with the good segments. A damaged seq floor is moved aside too.
func TestDamagedSegmentAndFloorAreMovedAsideAndTheRestServed(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{SegmentEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 35; i++ {
		j.Append(sensors.Event{Kind: "process.exec", PID: uint32(i)})
		if i%5 == 0 {
			j.Sync()
		}
	}
	j.Close()
	jdir := filepath.Join(dir, "journal")
	bad := filepath.Join(jdir, segmentName(11))
	f, err := os.OpenFile(bad, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xA5}, 40), 60)
	f.Close()
	os.WriteFile(filepath.Join(jdir, "seq.floor"), []byte("[null]"), 0o600)

	log, buf := capture()
	j, err = Open(dir, Options{SegmentEvents: 10, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	_, evs, err := j.Query(0, 100, Filter{})
	if err != nil || len(evs) != 25 {
		t.Fatalf("served %d events (%v), want the 25 of the good segments", len(evs), err)
	}
	for _, ev := range evs {
		if ev.Seq >= 11 && ev.Seq <= 20 {
			t.Fatalf("event %d of the damaged segment served", ev.Seq)
		}
	}
	aside, _ := filepath.Glob(bad + ".damaged-*")
	floors, _ := filepath.Glob(filepath.Join(jdir, "seq.floor.damaged-*"))
	if len(aside) != 1 || len(floors) != 1 {
		t.Errorf("moved aside: %v %v", aside, floors)
	}
	if n := strings.Count(buf.String(), "message_id="+msgid.StateMovedAside); n != 2 {
		t.Errorf("%d log lines with the MESSAGE_ID, want 2: %s", n, buf.String())
	}
	j.Append(sensors.Event{Kind: "process.exit"})
	j.Sync()
	if last := j.LastSeq(); last != 36 {
		t.Errorf("next seq %d, want 36", last)
	}
}

// Two writers on one journal would interleave seqs: the second one is
// refused with a named reason.
func TestSecondOpenOfTheSameJournalIsRefused(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
}

// Pruning deletes whole segment files from the head.
func TestPruneDeletesWholeSegmentsByCountAndAge(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{MaxEvents: 100, SegmentEvents: 25, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	old := uint64(time.Now().Add(-2 * time.Hour).UnixNano())
	for i := 0; i < 50; i++ {
		j.Append(sensors.Event{Kind: "k", TimeNS: old})
	}
	for i := 0; i < 30; i++ {
		j.Append(sensors.Event{Kind: "k"})
	}
	j.Sync()
	segs, _ := filepath.Glob(filepath.Join(dir, "journal", "*.seg"))
	_, evs, _ := j.Query(0, 1000, Filter{})
	if len(segs) != 2 || len(evs) != 30 || evs[0].Seq != 51 {
		t.Fatalf("after age prune: %d files, %d events from %d", len(segs), len(evs), evs[0].Seq)
	}
	for i := 0; i < 200; i++ {
		j.Append(sensors.Event{Kind: "k"})
	}
	j.Sync()
	_, evs, _ = j.Query(0, 1000, Filter{})
	if len(evs) < 100 || len(evs) > 125 || evs[len(evs)-1].Seq != 280 {
		t.Fatalf("after count prune: %d events up to %d", len(evs), evs[len(evs)-1].Seq)
	}
}

// Readers run while the writer appends, rolls and prunes segments: each
// answer is in seq order, matches its filter, and (run with -race) no
// index is read while it changes.
func TestQueriesDuringAppendsRollsAndPrunes(t *testing.T) {
	j, err := Open(t.TempDir(), Options{MaxEvents: 2000, SegmentEvents: 150, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pid := uint32(3)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := Filter{Kinds: []string{"process.exit"}}
			if r == 1 {
				f = Filter{PID: &pid}
			}
			for after := uint64(0); ; {
				select {
				case <-stop:
					return
				default:
				}
				last, evs, err := j.Query(after, 50, f)
				if err != nil {
					t.Error(err)
					return
				}
				for i, ev := range evs {
					if !f.match(&ev) || ev.Seq <= after || (i > 0 && ev.Seq <= evs[i-1].Seq) {
						t.Errorf("answer after %d out of order or unmatched: %+v", after, ev)
						return
					}
				}
				after = last
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		j.Append(sensors.Event{Kind: []string{"process.exec", "process.exit"}[i%2], PID: uint32(i % 7)})
	}
	j.Sync()
	close(stop)
	wg.Wait()
	if c := j.Counters(); c["journal_pruned_segments"] == 0 || c["journal_events"] > 2150 {
		t.Errorf("no pruning under load: %v", c)
	}
}

// An event too big for a record is dropped and counted; the events around it are kept, also across a
// reopen (nothing is written that the scan at open would call torn).
func TestUnstorableEventIsCountedAndItsNeighboursKept(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	j.Append(sensors.Event{Kind: "a"})
	j.Append(sensors.Event{Kind: "process.exec", Argv: []string{strings.Repeat("x", 2<<20)}})
	j.Append(sensors.Event{Kind: "b"})
	j.Close()
	if j.Counters()["journal_dropped_encode"] != 1 {
		t.Errorf("counters %v", j.Counters())
	}
	j, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	_, evs, _ := j.Query(0, 10, Filter{})
	if len(evs) != 2 || evs[0].Kind != "a" || evs[1].Kind != "b" || evs[1].Seq != 3 {
		t.Fatalf("kept %+v", evs)
	}
}
