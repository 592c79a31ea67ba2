//go:build !amd64

package sensors

// syscallNames is only generated for x86-64; elsewhere syscalls are shown
// by number.
var syscallNames = map[uint32]string{}
