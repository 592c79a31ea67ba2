package sensors

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/api"
)

// Fixture tests of the OOM sensor's /dev/kmsg fallback (no root):
// testdata/kmsg holds the OOM reports of several kernels, with the lines
// around the kill that must not count as kills.

func readKmsgFixture(t *testing.T, name string) []Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "kmsg", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []Event
	hub := NewHub(16)
	hub.SetSink(func(ev Event) bool { evs = append(evs, ev); return true }, nil)
	s := &oomKmsg{hub: hub}
	s.readFrom(f)
	if got := s.Counters()["decoded"]; got != uint64(len(evs)) {
		t.Errorf("decoded counter %d, %d events", got, len(evs))
	}
	return evs
}

type kmsgKill struct {
	pid, uid uint32
	hasUID   bool
	comm     string
	rss      uint64
	adj      int32
	cgroup   string
}

func kmsgKillOf(ev Event) kmsgKill {
	k := kmsgKill{pid: ev.PID, uid: ev.UID, hasUID: ev.HasUID, comm: ev.Comm}
	if ev.OOM != nil {
		k.rss, k.adj, k.cgroup = ev.OOM.RSSBytes, ev.OOM.OOMScoreAdj, ev.OOM.Cgroup
	}
	return k
}

func TestKmsgOOMReportsOfSeveralKernels(t *testing.T) {
	const kb = 1024
	cases := []struct {
		file string
		want []kmsgKill
	}{
		// 4.9: no oom-kill line, no UID: the owner is unknown.
		{"linux-4.9.txt", []kmsgKill{{pid: 4242, comm: "hog", rss: (524288 + 1024) * kb}}},
		// 4.19: the UID only in the oom-kill line, with the cgroup.
		{"linux-4.19.txt", []kmsgKill{{pid: 4243, uid: 1000, hasUID: true, comm: "hog", rss: (524288 + 2048) * kb, cgroup: "/test"}}},
		// 6.1: a comm with spaces and parentheses, a memcg kill and a global one.
		{"linux-6.1.txt", []kmsgKill{
			{pid: 4244, uid: 1000, hasUID: true, comm: "(a) (b)", rss: (524288 + 4096 + 512) * kb, adj: 500,
				cgroup: "/user.slice/user-1000.slice/user@1000.service/app.slice/hog.scope"},
			{pid: 4245, uid: 110, hasUID: true, comm: "mysqld", rss: 1048576 * kb, adj: -100, cgroup: "/system.slice/mysql.service"},
		}},
		// Records a program wrote (facility ≠ kernel) and continuation
		// lines are not the kernel's report: only the last line counts,
		// without the forged line's cgroup.
		{"forged.txt", []kmsgKill{{pid: 4246, uid: 0, hasUID: true, comm: "x", rss: 1 * kb}}},
	}
	for _, c := range cases {
		evs := readKmsgFixture(t, c.file)
		if len(evs) != len(c.want) {
			t.Errorf("%s: %d events, want %d: %+v", c.file, len(evs), len(c.want), evs)
			continue
		}
		for i, ev := range evs {
			if ev.Kind != api.KindOOMKill || ev.TimeNS == 0 || ev.OOM == nil {
				t.Errorf("%s: %+v", c.file, ev)
			}
			if got := kmsgKillOf(ev); got != c.want[i] {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", c.file, i, got, c.want[i])
			}
		}
	}
}

// oom-kill lines whose "Killed process" line never came are not kept
// without bound.
func TestKmsgVictimsAreBounded(t *testing.T) {
	var b strings.Builder
	for pid := 1; pid <= 3*maxKmsgVictims; pid++ {
		b.WriteString("6,1,1,-;oom-kill:constraint=CONSTRAINT_NONE,task_memcg=/x,task=a,pid=" + strconv.Itoa(pid) + ",uid=0\n")
	}
	b.WriteString("3,2,2,-;Killed process 192 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n")
	var evs []Event
	hub := NewHub(1)
	hub.SetSink(func(ev Event) bool { evs = append(evs, ev); return true }, nil)
	(&oomKmsg{hub: hub}).readFrom(strings.NewReader(b.String()))
	// 192 lines, cleared every 64: the last victim's line is still known.
	if len(evs) != 1 || evs[0].OOM == nil || evs[0].OOM.Cgroup != "/x" {
		t.Errorf("%+v", evs)
	}
}
