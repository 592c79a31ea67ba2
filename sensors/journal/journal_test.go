package journal

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

func TestSeqSurvivesReopenAndTypesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		j.Append(sensors.Event{Kind: api.KindProcessExit, PID: uint32(100 + i), UID: 1000, HasUID: true, StartTime: 7, Comm: "x",
			Exit: &api.ExitStatus{ExitCode: -1, CoreDumped: true, Signal: 11, CPUNS: 1 << 40}})
	}
	j.Sync()
	last, evs, err := j.Query(0, 100, Filter{})
	if err != nil || last != 5 || len(evs) != 5 {
		t.Fatalf("Query: last %d, %d events, %v", last, len(evs), err)
	}
	want := sensors.Event{Seq: 1, Kind: api.KindProcessExit, PID: 100, UID: 1000, HasUID: true, StartTime: 7, Comm: "x",
		Exit: &api.ExitStatus{ExitCode: -1, CoreDumped: true, Signal: 11, CPUNS: 1 << 40}}
	got := evs[0]
	got.TimeNS = 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event changed in the journal:\n got %+v %+v\nwant %+v %+v", got, got.Exit, want, want.Exit)
	}
	j.Close()

	j, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.Append(sensors.Event{Kind: "process.exit", PID: 1})
	j.Sync()
	last, evs, _ = j.Query(5, 100, Filter{})
	if last != 6 || len(evs) != 1 || evs[0].Seq != 6 {
		t.Fatalf("after reopen: last %d, events %+v", last, evs)
	}
}

func TestQueryFiltersAndPagesWithLastSeq(t *testing.T) {
	j, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 0; i < 10; i++ {
		kind := "process.exec"
		if i%2 == 1 {
			kind = "process.exit"
		}
		j.Append(sensors.Event{Kind: kind, PID: uint32(i)})
	}
	j.Sync()
	last, evs, _ := j.Query(0, 3, Filter{Kinds: []string{"process.exit"}})
	if len(evs) != 3 || last != evs[2].Seq || evs[0].Kind != "process.exit" {
		t.Fatalf("page 1: last %d %+v", last, evs)
	}
	last, evs, _ = j.Query(last, 3, Filter{Kinds: []string{"process.exit"}})
	if len(evs) != 2 || last != 10 {
		t.Fatalf("page 2: last %d, %d events (want 2 and the journal's last seq 10)", last, len(evs))
	}
	pid := uint32(4)
	if _, evs, _ = j.Query(0, 100, Filter{PID: &pid}); len(evs) != 1 || evs[0].PID != 4 {
		t.Fatalf("pid filter: %+v", evs)
	}
}

func TestPruneKeepsTheNewestEvents(t *testing.T) {
	j, err := Open(t.TempDir(), Options{MaxEvents: 100, FlushEvents: 10, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 0; i < 2000; i++ {
		j.Append(sensors.Event{Kind: "k"})
		if i%10 == 9 {
			j.Sync()
		}
	}
	_, evs, _ := j.Query(0, 1000, Filter{})
	if len(evs) > 200 || evs[len(evs)-1].Seq != 2000 {
		t.Fatalf("kept %d events, newest %d", len(evs), evs[len(evs)-1].Seq)
	}
}

func FuzzDecodeNeverPanics(f *testing.F) {
	ev := exampleExec()
	good, _ := encode(&ev)
	f.Add(good)
	f.Add([]byte{1, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		decode(data) // must return, not panic or allocate without bound
		decodeHeader(data)
	})
}

// A segment file of any content is scanned without a panic, and nothing
// past a bad frame is indexed.
func FuzzScanSegmentNeverPanics(f *testing.F) {
	good := binary.LittleEndian.AppendUint64([]byte(segMagic), 1)
	for seq := uint64(1); seq <= 3; seq++ {
		ev := exampleExec()
		ev.Seq = seq
		p, _ := encode(&ev)
		good = binary.LittleEndian.AppendUint32(good, uint32(len(p)))
		good = binary.LittleEndian.AppendUint32(good, crc32.Checksum(p, castagnoli))
		good = append(good, p...)
	}
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(append(slices.Clone(good), 0xff, 0, 0, 0))
	dir, n := f.TempDir(), 0
	f.Fuzz(func(t *testing.T, data []byte) {
		// A new file each time: ext4 flushes a file truncated and rewritten
		// on close (auto_da_alloc), which made this crawl.
		n++
		path := filepath.Join(dir, strconv.Itoa(n))
		os.WriteFile(path, data, 0o600)
		defer os.Remove(path)
		s, err := scanSegment(path, 1, 0, func([]byte) uint16 { return 0 })
		if s == nil {
			return
		}
		defer s.f.Close()
		if err == nil && s.size != int64(len(data)) {
			t.Fatalf("clean scan stopped at %d of %d bytes", s.size, len(data))
		}
		r := &segReader{s: s, span: 1}
		for i := range s.n() {
			if _, perr := r.payload(i); perr != nil {
				t.Fatalf("indexed record %d unreadable: %v", i, perr)
			}
		}
	})
}

// A kicked batch is written at once, in the same burst as the drain, not after
// FlushInterval; a kick with nothing pending changes nothing, and after a
// kicked commit the next event gathers again.
func TestKickWritesTheBatchWithoutGathering(t *testing.T) {
	var mu sync.Mutex
	var commits []int
	j, err := Open(t.TempDir(), Options{FlushInterval: 1500 * time.Millisecond, OnCommit: func(evs []sensors.Event) {
		mu.Lock()
		commits = append(commits, len(evs))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	written := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(commits)
	}
	waitFor := func(n int, within time.Duration) time.Duration {
		start := time.Now()
		for len(written()) < n {
			if time.Since(start) > within {
				t.Fatalf("commits %v after %s, want %d", written(), within, n)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(start)
	}
	j.Kick() // nothing pending: must not make the next event skip its gather
	j.Append(sensors.Event{Kind: api.KindProcessExec, PID: 1})
	time.Sleep(300 * time.Millisecond)
	if c := written(); len(c) != 0 {
		t.Fatalf("an event written after %v without a kick (gather is 1.5 s): an empty kick was remembered", c)
	}
	j.Append(sensors.Event{Kind: api.KindProcessExec, PID: 2})
	j.Kick()
	t.Logf("kick → commit in %s", waitFor(1, time.Second))
	j.Append(sensors.Event{Kind: api.KindProcessExec, PID: 3})
	time.Sleep(300 * time.Millisecond)
	if c := written(); len(c) != 1 {
		t.Fatalf("commits %v 300 ms after an unkicked event: the kick was not reset by its commit", c)
	}
	waitFor(2, 5*time.Second) // the gather's own time
	if c := written(); c[0] != 2 || c[1] != 1 {
		t.Fatalf("commits %v, want [2 1]", c)
	}
	if last, evs, err := j.Query(0, 10, Filter{}); err != nil || last != 3 || len(evs) != 3 {
		t.Fatalf("last %d, %d events, %v", last, len(evs), err)
	}
}
