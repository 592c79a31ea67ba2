package sensors

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/systemd/msgid"
)

// The "disks" sensor reports how full each mounted, writable, real file
// system is (blocks and inodes), for the disk.full alert.
//
// statfs(2) on a FUSE or network mount waits for its server, for ever if
// the server is stopped or gone, in an uninterruptible sleep no timeout can
// break. So statfs runs off the refresh loop, in a goroutine of its own per
// mount, with at most one call outstanding per mount (a hung mount costs
// one blocked thread, not one per scan); a mount that does not answer
// within statfsTimeout shows as Unknown until it does. Network and FUSE
// file systems are not asked at all unless npllmd.toml's [disks] table
// includes them.
func init() {
	Register(Registration{
		Name:        "disks",
		Description: "space and inode use of mounted file systems",
		DefaultOn:   true,
		Variants:    []Variant{{Name: "statfs", Start: startDisks}},
	})
}

// DiskUsage is one mounted file system.
type DiskUsage struct {
	Mount         string
	Device        string
	FSType        string
	Unknown       bool // statfs did not answer in time: nothing below is known
	TotalBytes    uint64
	AvailBytes    uint64 // for unprivileged users, as df shows
	UsedPercent   float64
	InodesPercent float64 // 0 when the file system has no inode limit
}

// DiskOptions is the [disks] table of npllmd.toml. The zero value is the
// safe default: neither network nor FUSE file systems are asked.
type DiskOptions struct {
	IncludeNetwork bool `toml:"include_network"` // nfs, cifs, ceph, 9p, …
	IncludeFUSE    bool `toml:"include_fuse"`    // fuse, fuseblk, fuse.*
}

// File systems that are never "full" in a way a user can act on.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true,
	"debugfs": true, "tracefs": true, "securityfs": true, "pstore": true, "bpf": true, "autofs": true,
	"configfs": true, "fusectl": true, "hugetlbfs": true, "binfmt_misc": true, "rpc_pipefs": true,
	"nsfs": true, "ramfs": true, "devtmpfs": true, "squashfs": true, "iso9660": true, "efivarfs": true,
	"selinuxfs": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
}

// File systems whose statfs goes over the network.
var networkFS = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true, "ncpfs": true, "afs": true,
	"9p": true, "ceph": true, "glusterfs": true, "lustre": true, "coda": true, "gfs2": true, "ocfs2": true,
	"davfs": true, "orangefs": true, "beegfs": true, "gpfs": true,
}

// Asked reports whether the disks sensor statfs-es a file system type.
func (o DiskOptions) Asked(fstype string) bool {
	switch {
	case pseudoFS[fstype]:
		return false
	case fstype == "fuse" || fstype == "fuseblk" || strings.HasPrefix(fstype, "fuse."):
		return o.IncludeFUSE
	case networkFS[fstype]:
		return o.IncludeNetwork
	}
	return true
}

// disksEvery: file systems fill in minutes, not seconds; reading the mount
// table and statfs-ing every mount once a second showed in the idle
// daemon's CPU.
const disksEvery = 5 * time.Second

// statfsTimeout: a local statfs answers in microseconds.
const statfsTimeout = 2 * time.Second

type statfsResult struct {
	st  unix.Statfs_t
	err error
}

type disksSensor struct {
	mounts string
	opts   DiskOptions
	log    *slog.Logger
	stop   context.CancelFunc
	every  time.Duration

	mu   sync.Mutex
	last []DiskUsage // replaced whole, never changed in place
	err  error

	pending  map[string]chan statfsResult // scan goroutine only
	hung     map[string]bool              // scan goroutine only
	timeouts atomic.Uint64
	unknown  atomic.Uint64
}

func startDisks(_ context.Context, env *Env) (Running, error) {
	mounts := filepath.Join(env.ProcRoot, "self", "mounts")
	if _, err := os.Stat(mounts); err != nil {
		return nil, &Unavailable{Reason: "no mount table: " + err.Error(), Fix: "mount /proc"}
	}
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &disksSensor{mounts: mounts, opts: env.Disks, log: log, stop: cancel, every: disksEvery,
		pending: map[string]chan statfsResult{}, hung: map[string]bool{}}
	go d.loop(ctx)
	return d, nil
}

func (d *disksSensor) loop(ctx context.Context) {
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		out, err := d.scan(ctx)
		d.mu.Lock()
		d.last, d.err = out, err
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample hands over the latest scan; it never waits for a file system.
func (d *disksSensor) Sample(snap *Snapshot) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap.Disks = d.last
	return d.err
}

type mountEntry struct{ mount, device, fstype string }

func (d *disksSensor) mountTable() ([]mountEntry, error) {
	f, err := os.Open(d.mounts)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// device mountpoint fstype options dump pass; spaces are \040
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !d.opts.Asked(fields[2]) || seen[fields[1]] {
			continue
		}
		if opts := strings.Split(fields[3], ","); len(opts) > 0 && opts[0] == "ro" {
			continue
		}
		seen[fields[1]] = true
		out = append(out, mountEntry{unescapeMount(fields[1]), unescapeMount(fields[0]), fields[2]})
	}
	return out, sc.Err()
}

func (d *disksSensor) scan(ctx context.Context) ([]DiskUsage, error) {
	entries, err := d.mountTable()
	if err != nil {
		return nil, err
	}
	chans := make([]chan statfsResult, len(entries))
	for i, e := range entries {
		ch, busy := d.pending[e.mount]
		if !busy {
			ch = make(chan statfsResult, 1)
			go func(mount string) {
				var r statfsResult
				r.err = unix.Statfs(mount, &r.st)
				ch <- r
			}(e.mount)
			d.pending[e.mount] = ch
		}
		chans[i] = ch
	}
	deadline := time.NewTimer(statfsTimeout)
	defer deadline.Stop()
	var out []DiskUsage
	unknown := uint64(0)
	timedOut := false
	for i, e := range entries {
		var r statfsResult
		got := false
		if !timedOut {
			select {
			case r = <-chans[i]:
				got = true
			case <-deadline.C:
				timedOut = true
			case <-ctx.Done():
				timedOut = true
			}
		}
		if !got { // the time is up: take only what has already answered
			select {
			case r = <-chans[i]:
				got = true
			default:
			}
		}
		if !got {
			unknown++
			d.timeouts.Add(1)
			if !d.hung[e.mount] {
				d.hung[e.mount] = true
				d.log.Warn("mount does not answer statfs; shown as unknown", msgid.Attr(msgid.MountHung),
					"mount", e.mount, "fstype", e.fstype, "timeout", statfsTimeout)
			}
			out = append(out, DiskUsage{Mount: e.mount, Device: e.device, FSType: e.fstype, Unknown: true})
			continue
		}
		delete(d.pending, e.mount)
		if d.hung[e.mount] {
			delete(d.hung, e.mount)
			d.log.Info("mount answers again", msgid.Attr(msgid.MountHung), "mount", e.mount, "fstype", e.fstype)
		}
		if r.err != nil || r.st.Blocks == 0 {
			continue
		}
		out = append(out, usage(e, &r.st))
	}
	d.unknown.Store(unknown)
	d.forgetUnmounted(entries)
	return out, nil
}

// forgetUnmounted drops the calls of mounts that left the table once they
// have answered (a call still hanging stays: it must not be started twice).
func (d *disksSensor) forgetUnmounted(entries []mountEntry) {
	current := make(map[string]bool, len(entries))
	for _, e := range entries {
		current[e.mount] = true
	}
	for m, ch := range d.pending {
		if current[m] {
			continue
		}
		select {
		case <-ch:
			delete(d.pending, m)
			delete(d.hung, m)
		default:
		}
	}
}

func usage(e mountEntry, st *unix.Statfs_t) DiskUsage {
	bsize := uint64(st.Bsize)
	u := DiskUsage{Mount: e.mount, Device: e.device, FSType: e.fstype,
		TotalBytes: st.Blocks * bsize, AvailBytes: st.Bavail * bsize}
	// As df: used / (used + available to users).
	used := st.Blocks - st.Bfree
	if denom := used + st.Bavail; denom > 0 {
		u.UsedPercent = 100 * float64(used) / float64(denom)
	}
	if st.Files > 0 {
		u.InodesPercent = 100 * float64(st.Files-st.Ffree) / float64(st.Files)
	}
	return u
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func (d *disksSensor) Counters() map[string]uint64 {
	return map[string]uint64{"mounts_unknown": d.unknown.Load(), "statfs_timeouts": d.timeouts.Load()}
}

func (d *disksSensor) Close() error {
	d.stop()
	return nil
}
