package sensors

import (
	"errors"

	"golang.org/x/sys/unix"
)

// readProcFile reads a small procfs file into buf (grown when full) with
// plain open/read/close. os.ReadFile costs four more syscalls per file
// here — fstat, and Go's attempt to add the file to its netpoller (an
// epoll_ctl procfs refuses, two fcntls) — a third of ReadIdentity's time,
// which every process action pays (BENCHMARKS.md).
func readProcFile(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
