package sensors

import "testing"

func TestNetworkAndFUSEFileSystemsAreSkippedUnlessIncluded(t *testing.T) {
	cases := []struct {
		fstype              string
		byDefault, withBoth bool
	}{
		{"ext4", true, true}, {"xfs", true, true}, {"tmpfs", true, true}, {"proc", false, false},
		{"nfs4", false, true}, {"cifs", false, true}, {"9p", false, true}, {"ceph", false, true},
		{"fuse", false, true}, {"fuseblk", false, true}, {"fuse.sshfs", false, true},
		{"fuse.gvfsd-fuse", false, false}, // never a disk a user fills
	}
	both := DiskOptions{IncludeNetwork: true, IncludeFUSE: true}
	for _, c := range cases {
		if got := (DiskOptions{}).Asked(c.fstype); got != c.byDefault {
			t.Errorf("%s asked by default: %v, want %v", c.fstype, got, c.byDefault)
		}
		if got := both.Asked(c.fstype); got != c.withBoth {
			t.Errorf("%s asked when included: %v, want %v", c.fstype, got, c.withBoth)
		}
	}
}
