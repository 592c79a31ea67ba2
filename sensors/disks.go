package sensors

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The "disks" sensor reports how full each mounted, writable, real file
// system is (blocks and inodes), for the disk.full alert. It reads the
// mount table and statfs(2)s each mount on every refresh: a few syscalls.
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
	TotalBytes    uint64
	AvailBytes    uint64 // for unprivileged users, as df shows
	UsedPercent   float64
	InodesPercent float64 // 0 when the file system has no inode limit
}

// File systems that are never "full" in a way a user can act on.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true,
	"debugfs": true, "tracefs": true, "securityfs": true, "pstore": true, "bpf": true, "autofs": true,
	"configfs": true, "fusectl": true, "hugetlbfs": true, "binfmt_misc": true, "rpc_pipefs": true,
	"nsfs": true, "ramfs": true, "devtmpfs": true, "squashfs": true, "iso9660": true, "efivarfs": true,
	"selinuxfs": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
}

// disksEvery: file systems fill in minutes, not seconds; reading the mount
// table and statfs-ing every mount once a second showed in the idle
// daemon's CPU.
const disksEvery = 5 * time.Second

type disksSensor struct {
	mounts string
	last   []DiskUsage
	at     time.Time
}

func startDisks(_ context.Context, env *Env) (Running, error) {
	mounts := filepath.Join(env.ProcRoot, "self", "mounts")
	if _, err := os.Stat(mounts); err != nil {
		return nil, &Unavailable{Reason: "no mount table: " + err.Error(), Fix: "mount /proc"}
	}
	return &disksSensor{mounts: mounts}, nil
}

func (d *disksSensor) Sample(snap *Snapshot) error {
	if time.Since(d.at) < disksEvery {
		snap.Disks = d.last
		return nil
	}
	f, err := os.Open(d.mounts)
	if err != nil {
		return err
	}
	defer f.Close()
	mounts, err := readMounts(f)
	seen := map[string]bool{}
	var out []DiskUsage
	for _, m := range mounts {
		if seen[m.mount] {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(m.mount, &st); err != nil || st.Blocks == 0 {
			continue
		}
		seen[m.mount] = true
		bsize := uint64(st.Bsize)
		u := DiskUsage{Mount: m.mount, Device: m.device, FSType: m.fsType,
			TotalBytes: st.Blocks * bsize, AvailBytes: st.Bavail * bsize}
		// As df: used / (used + available to users).
		used := st.Blocks - st.Bfree
		if denom := used + st.Bavail; denom > 0 {
			u.UsedPercent = 100 * float64(used) / float64(denom)
		}
		if st.Files > 0 {
			u.InodesPercent = 100 * float64(st.Files-st.Ffree) / float64(st.Files)
		}
		out = append(out, u)
	}
	snap.Disks, d.last, d.at = out, out, time.Now()
	return err
}

// mountEntry is one line of the mount table worth a statfs.
type mountEntry struct{ device, mount, fsType string }

// readMounts reads a mount table (/proc/self/mounts: device mountpoint
// fstype options dump pass; spaces are \040), leaving out pseudo and
// read-only file systems.
func readMounts(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || pseudoFS[fields[2]] {
			continue
		}
		if opts := strings.Split(fields[3], ","); len(opts) > 0 && opts[0] == "ro" {
			continue
		}
		out = append(out, mountEntry{device: unescapeMount(fields[0]), mount: unescapeMount(fields[1]), fsType: fields[2]})
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func (d *disksSensor) Counters() map[string]uint64 { return nil }
func (d *disksSensor) Close() error                { return nil }
