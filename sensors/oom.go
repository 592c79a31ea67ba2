package sensors

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/npllm/npllm/bpf"
	"github.com/npllm/npllm/dbus/api"
)

// The "oom" sensor reports OOM kills as oom.kill events. Ladder: tp_btf →
// raw_tp on oom:mark_victim (its ring wakes the reader at once: an OOM kill
// is rare and the alert must follow it closely) → kmsg, which parses the
// kernel's own "Killed process" lines from /dev/kmsg for machines without
// eBPF.
func init() {
	Register(Registration{
		Name:        "oom",
		Description: "OOM kills (oom:mark_victim)",
		DefaultOn:   true,
		Variants:    bpfVariants(startOOMBPF, Variant{Name: "kmsg", Start: startOOMKmsg}),
	})
}

func startOOMBPF(env *Env, btf bool) (Running, error) {
	spec, err := bpf.LoadOOM()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	cgroups := newCgroupPaths()
	return startRingSensor(env, spec, btf, []string{"mark_victim"}, []string{"emitted", "dropped_kernel"}, true,
		func(b []byte) (Event, error) { return decodeOOMEvent(b, cgroups) })
}

// Offsets of struct npllm_oom_event (bpf/events.h).
const (
	oomPID, oomUID, oomStart, oomCgroup, oomKtime, oomRSS, oomScoreAdj, oomComm, oomSize = 0, 4, 8, 16, 24, 32, 40, 48, 64
)

func decodeOOMEvent(b []byte, cgroups *cgroupPaths) (Event, error) {
	if len(b) < oomSize {
		return Event{}, fmt.Errorf("short oom record: %d bytes", len(b))
	}
	le := binary.LittleEndian
	pid, uid := le.Uint32(b[oomPID:]), le.Uint32(b[oomUID:])
	return Event{
		Kind: api.KindOOMKill, TimeNS: bootToUnixNS(le.Uint64(b[oomKtime:])), PID: pid, UID: uid, HasUID: true,
		Comm: cString(b[oomComm : oomComm+16]), StartTime: le.Uint64(b[oomStart:]) / nsPerTick,
		OOM: &api.OOMKill{
			RSSBytes:    le.Uint64(b[oomRSS:]),
			OOMScoreAdj: int32(le.Uint32(b[oomScoreAdj:])),
			Cgroup:      cgroups.path(le.Uint64(b[oomCgroup:])),
		},
	}, nil
}

// cgroupPaths names the memory cgroup of an OOM victim from its id (the
// inode number of the cgroup's directory), walking the memory controller's
// hierarchy: the v1 one when mounted, else the unified (v2) one. The
// victim itself may already be gone, so /proc/<pid>/cgroup cannot be
// trusted. OOM kills are rare: the walk is cheap enough, and cached.
type cgroupPaths struct {
	mu    sync.Mutex
	roots []string
	cache map[uint64]string
}

func newCgroupPaths() *cgroupPaths {
	var roots []string
	for _, r := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(r, "cgroup.procs")); err == nil {
			roots = append(roots, r)
		}
	}
	return &cgroupPaths{roots: roots, cache: map[uint64]string{}}
}

func (c *cgroupPaths) path(id uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.cache[id]; ok {
		return p
	}
	for _, root := range c.roots {
		if p := findCgroup(root, id); p != "" {
			c.cache[id] = p
			return p
		}
	}
	return ""
}

// findCgroup walks one cgroup hierarchy for the directory with inode id.
func findCgroup(root string, id uint64) string {
	st, err := os.Stat(root)
	if err != nil {
		return ""
	}
	rootDev := st.Sys().(*syscall.Stat_t).Dev
	found := ""
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || st.Dev != rootDev {
			return filepath.SkipDir // another hierarchy mounted below this one
		}
		if st.Ino == id {
			rel, _ := filepath.Rel(root, p)
			found = "/" + strings.TrimPrefix(rel, ".")
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// The kmsg variant: the kernel logs each OOM kill as
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,…,task_memcg=/test,task=hog,pid=123,uid=0
//	Memory cgroup out of memory: Killed process 123 (hog) total-vm:…kB, anon-rss:…kB, file-rss:…kB, shmem-rss:…kB, UID:0 pgtables:…kB oom_score_adj:0
//
// Older kernels (4.19) leave ", UID:…" and what follows out of the second
// line; 4.9 has no oom-kill line. testdata/kmsg holds examples.
var (
	kmsgKilled = regexp.MustCompile(`Killed process (\d+) \((.*)\) total-vm:\d+kB, anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB(?:, UID:(\d+))?(?:.*oom_score_adj:(-?\d+))?`)
	kmsgMemcg  = regexp.MustCompile(`oom-kill:.*task_memcg=([^,]*),.*pid=(\d+)(?:,uid=(\d+))?`)
)

// kmsgVictim is what the oom-kill line says about the process killed next.
type kmsgVictim struct{ cgroup, uid string }

// maxKmsgVictims bounds the oom-kill lines kept waiting for their "Killed
// process" line (which may have been overwritten before we read it).
const maxKmsgVictims = 64

type oomKmsg struct {
	f      *os.File
	hub    *Hub
	wg     sync.WaitGroup
	parsed atomic.Uint64
}

func startOOMKmsg(_ context.Context, env *Env) (Running, error) {
	if env.Hub == nil {
		return nil, errors.New("no event hub")
	}
	f, err := os.Open("/dev/kmsg")
	if err != nil {
		return nil, &Unavailable{Reason: "cannot read /dev/kmsg: " + err.Error(), Fix: "run as root, or allow eBPF"}
	}
	// Only kills from now on: the journal already has the earlier ones.
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, &Unavailable{Reason: "seek /dev/kmsg: " + err.Error()}
	}
	s := &oomKmsg{f: f, hub: env.Hub}
	s.wg.Add(1)
	go s.read()
	return s, nil
}

func (s *oomKmsg) read() {
	defer s.wg.Done()
	s.readFrom(s.f)
}

// readFrom parses /dev/kmsg records ("prio,seq,usec,flags;message") until
// the reader ends.
func (s *oomKmsg) readFrom(rd io.Reader) {
	memcg := map[string]kmsgVictim{} // by pid, from the line before
	r := bufio.NewReaderSize(rd, 8192)
	for {
		// Each read of /dev/kmsg returns one record; EPIPE means records
		// were overwritten before we read them, and reading goes on.
		line, err := r.ReadString('\n')
		if errors.Is(err, syscall.EPIPE) {
			continue
		}
		if err != nil {
			return
		}
		head, msg, _ := strings.Cut(line, ";")
		// Only the kernel's own records (facility 0): root's programs can
		// write to /dev/kmsg too, and a continuation line has no prefix.
		prio, _, _ := strings.Cut(head, ",")
		if p, err := strconv.Atoi(prio); err != nil || p>>3 != 0 {
			continue
		}
		if m := kmsgMemcg.FindStringSubmatch(msg); m != nil {
			if len(memcg) >= maxKmsgVictims {
				clear(memcg)
			}
			memcg[m[2]] = kmsgVictim{cgroup: m[1], uid: m[3]}
			continue
		}
		if ev, ok := parseKmsgKill(msg, memcg); ok {
			s.parsed.Add(1)
			s.hub.Publish(ev)
		}
	}
}

func parseKmsgKill(msg string, memcg map[string]kmsgVictim) (Event, bool) {
	m := kmsgKilled.FindStringSubmatch(msg)
	if m == nil {
		return Event{}, false
	}
	kb := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v * 1024 }
	victim := memcg[m[1]]
	delete(memcg, m[1])
	uidText := m[6]
	if uidText == "" {
		uidText = victim.uid // 4.19: only the oom-kill line names it
	}
	pid64, _ := strconv.ParseUint(m[1], 10, 32)
	uid64, uidErr := strconv.ParseUint(uidText, 10, 32)
	adj, _ := strconv.ParseInt(m[7], 10, 32)
	pid, uid := uint32(pid64), uint32(uid64)
	return Event{
		Kind: api.KindOOMKill, TimeNS: uint64(time.Now().UnixNano()), PID: pid, UID: uid, HasUID: uidErr == nil, // 4.9: unknown
		Comm: m[2],
		OOM:  &api.OOMKill{RSSBytes: kb(m[3]) + kb(m[4]) + kb(m[5]), OOMScoreAdj: int32(adj), Cgroup: victim.cgroup},
	}, true
}

func (s *oomKmsg) Counters() map[string]uint64 { return map[string]uint64{"decoded": s.parsed.Load()} }

func (s *oomKmsg) Close() error {
	err := s.f.Close()
	s.wg.Wait()
	return err
}
