package alerts

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"github.com/npllm/npllm/dbus/api"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/systemd/msgid"
)

func exitEvent(seq uint64, uid uint32, comm string, rss uint64) sensors.Event {
	return sensors.Event{Seq: seq, Kind: api.KindProcessExit, UID: uid, HasUID: true, Comm: comm,
		Exit: &api.ExitStatus{MaxRSSBytes: rss, CPUNS: uint64(1e6), RuntimeNS: uint64(1e8)}}
}

func TestDamagedBaselinesAreMovedAsideLoggedAndLearningStartsAfresh(t *testing.T) {
	good, _ := os.ReadFile(writeGoodBaselines(t))
	junk := make([]byte, 4096)
	rand.Read(junk)
	for _, tc := range []struct {
		name string
		data []byte
		tag  string // the moved-aside file's suffix
	}{
		{"[null]", []byte("[null]"), "damaged"},
		{"truncated", good[:len(good)/2], "damaged"},
		{"random bytes", junk, "damaged"},
		{"null entry", []byte(`{"version":2,"baselines":[null]}`), "damaged"},
		{"empty", []byte{}, "damaged"},
		{"future version", []byte(`{"version":3,"baselines":[]}`), "damaged"},
		{"negative EWMA", []byte(`{"version":2,"baselines":[{"uid":0,"program":"x","ewma_rss_bytes":-1}]}`), "damaged"},
		{"twice", []byte(`{"version":2,"baselines":[{"uid":0,"program":"x"},{"uid":0,"program":"x"}]}`), "damaged"},
		{"v1 keyed by comm", []byte(`[{"program":"postgres","runs":9,"rss_bytes":[1]}]`), "v1"},
	} {
		name, data := tc.name, tc.data
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "baselines.json")
			os.WriteFile(path, data, 0o600)
			var logs bytes.Buffer
			b := OpenBaselines(path, slog.New(slog.NewJSONHandler(&logs, nil)))
			if k := b.Keys(); len(k) != 0 {
				t.Errorf("loaded %v from a file that cannot be trusted", k)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the damaged file is still in place: %v", err)
			}
			aside, _ := filepath.Glob(path + "." + tc.tag + "-*")
			if len(aside) != 1 {
				t.Fatalf("moved-aside files %v, want one", aside)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, data) {
				t.Error("the moved-aside file lost its content")
			}
			if !strings.Contains(logs.String(), `"message_id":"`+msgid.StateMovedAside+`"`) || !strings.Contains(logs.String(), aside[0]) {
				t.Errorf("log %s", logs.String())
			}
			b.Observe(0, "sshd", 5<<20, 1, 1, false, time.Now())
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			if again := OpenBaselines(path, nil); len(again.Keys()) != 1 {
				t.Errorf("fresh baselines after a save: %v", again.Keys())
			}
		})
	}
}

func writeGoodBaselines(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "baselines.json")
	b := OpenBaselines(path, nil)
	for i := range 20 {
		b.Observe(uint32(i%3), fmt.Sprintf("prog%d", i), 1<<20, 1, 1, false, time.Now())
	}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	return path
}

// A user running 5,000 differently named programs — and one named like
// root's database with a huge footprint — through the engine's real input.
func TestOneUsersProgramsNeverChangeOrFlushOtherUsersBaselines(t *testing.T) {
	b := OpenBaselines(filepath.Join(t.TempDir(), "baselines.json"), nil)
	e := New(DefaultConfig(), b, nil, nil)
	now := time.Unix(1000, 0)
	seq := uint64(0)
	run := func(uid uint32, comm string, rss uint64) {
		seq++
		e.Event(exitEvent(seq, uid, comm, rss), now)
	}
	for i := range 100 {
		run(0, fmt.Sprintf("rootprog%d", i), 10<<20)
		run(1001, fmt.Sprintf("bobprog%d", i), 20<<20)
	}
	run(0, "postgres", 200<<20)
	rootBefore, _ := b.Get(0, "postgres")
	now = now.Add(time.Hour) // the attacker's runs are the most recent
	for i := range 5000 {
		now = now.Add(time.Millisecond)
		run(1000, fmt.Sprintf("x%d", i), 1<<20)
		run(1000, "postgres", 8<<30)
	}
	rootAfter, ok := b.Get(0, "postgres")
	if !ok || rootAfter.Runs != rootBefore.Runs || rootAfter.EWMARSS != rootBefore.EWMARSS {
		t.Errorf("root's postgres baseline changed: %+v → %+v", rootBefore, rootAfter)
	}
	for i := range 100 {
		if _, ok := b.Get(0, fmt.Sprintf("rootprog%d", i)); !ok {
			t.Fatalf("root's rootprog%d was evicted by another user's programs", i)
		}
		if _, ok := b.Get(1001, fmt.Sprintf("bobprog%d", i)); !ok {
			t.Fatalf("uid 1001's bobprog%d was evicted by another user's programs", i)
		}
	}
	if n := countUID(b, 1000); n > maxPerUser {
		t.Errorf("uid 1000 holds %d baselines, more than %d", n, maxPerUser)
	}
	if bl, ok := b.Get(1000, "postgres"); !ok || bl.Runs != 5000 {
		t.Errorf("uid 1000's own postgres: %+v", bl)
	}
	// A process without a known owner teaches nothing.
	e.Event(sensors.Event{Seq: seq + 1, Kind: api.KindProcessExit, Comm: "postgres", Exit: &api.ExitStatus{MaxRSSBytes: 1 << 40}}, now)
	if bl, _ := b.Get(0, "postgres"); bl.Runs != rootBefore.Runs {
		t.Errorf("an exit without a uid changed root's baseline: %+v", bl)
	}
}

// Many uids (one user's subordinate ids in a user namespace) filling the
// whole set evict from the biggest user, never from root or a small user.
func TestAFullSetEvictsFromTheUserWithTheMostPrograms(t *testing.T) {
	b := OpenBaselines(filepath.Join(t.TempDir(), "baselines.json"), nil)
	now := time.Unix(1000, 0)
	for i := range 50 {
		b.Observe(0, fmt.Sprintf("r%d", i), 1<<20, 1, 1, false, now)
		b.Observe(1001, fmt.Sprintf("b%d", i), 1<<20, 1, 1, false, now)
	}
	for uid := uint32(100000); uid < 100010; uid++ {
		for i := range maxPerUser {
			b.Observe(uid, fmt.Sprintf("p%d", i), 1<<20, 1, 1, false, now.Add(time.Hour))
		}
	}
	if n := len(b.Keys()); n > maxPrograms {
		t.Errorf("%d baselines, more than %d", n, maxPrograms)
	}
	if countUID(b, 0) != 50 || countUID(b, 1001) != 50 {
		t.Errorf("root has %d and uid 1001 %d baselines left, want 50 each", countUID(b, 0), countUID(b, 1001))
	}
}

func countUID(b *Baselines, uid uint32) int {
	n := 0
	for _, k := range b.Keys() {
		if k.UID == uid {
			n++
		}
	}
	return n
}

// Eviction follows recency across a save and a reload, and a tie for the
// biggest user never picks root.
func TestEvictionOrderSurvivesAReloadAndSparesRootOnATie(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baselines.json")
	b := OpenBaselines(path, nil)
	now := time.Unix(1000, 0)
	for i := range maxPerUser {
		b.Observe(1000, fmt.Sprintf("p%d", i), 1<<20, 1, 1, false, now.Add(time.Duration(i)*time.Second))
	}
	b.Observe(1000, "p0", 1<<20, 1, 1, false, now.Add(time.Hour)) // p0 is now the most recent, p1 the oldest
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	again := OpenBaselines(path, nil)
	again.Observe(1000, "new", 1<<20, 1, 1, false, now.Add(2*time.Hour))
	if _, ok := again.Get(1000, "p1"); ok {
		t.Error("the least recently seen program (p1) was kept")
	}
	if _, ok := again.Get(1000, "p0"); !ok {
		t.Error("the most recently seen program (p0) was evicted")
	}
	tie := OpenBaselines(filepath.Join(t.TempDir(), "baselines.json"), nil)
	tie.Observe(0, "a", 1<<20, 1, 1, false, now)
	tie.Observe(1000, "b", 1<<20, 1, 1, false, now)
	if got := tie.biggestUser(); got != 1000 {
		t.Errorf("biggest user on a tie: %d, want 1000 (never root)", got)
	}
}
