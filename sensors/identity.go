package sensors

import (
	"bytes"
	"fmt"
	"strconv"
)

// Identity is what names a process beyond its pid.
type Identity struct {
	PID, PPID    uint32
	UID          uint32 // real uid
	StartTime    uint64 // field 22 of /proc/pid/stat
	Comm         string
	KernelThread bool
}

// ReadIdentity reads /proc/<pid>/stat and the Uid line of status, once
// each, with a hand parser: it sits on the path of every privileged call
// (actions/ uses it after pinning a pid with a pidfd, to make sure the pid
// still names the process the caller meant) and the procfs fallback of the
// process sensor calls it per new pid. The procfs library parsed all of
// status and stat through fmt and opened the mount first.
func ReadIdentity(procRoot string, pid uint32) (Identity, error) {
	dir := procRoot + "/" + strconv.FormatUint(uint64(pid), 10)
	var buf [2048]byte // stat and status of a typical process fit
	stat, err := readProcFile(dir+"/stat", buf[:0])
	if err != nil {
		return Identity{}, fmt.Errorf("pid %d: %w", pid, ErrNoSuchProcess)
	}
	id, err := parseStatIdentity(stat)
	if err != nil { // as the procfs library did: unreadable is gone
		return Identity{}, fmt.Errorf("pid %d: %w (%v)", pid, ErrNoSuchProcess, err)
	}
	status, err := readProcFile(dir+"/status", buf[:0])
	if err != nil {
		return Identity{}, fmt.Errorf("pid %d: %w", pid, ErrNoSuchProcess)
	}
	uid, ok := statusUID(status)
	if !ok {
		return Identity{}, fmt.Errorf("pid %d: %w (no Uid line in status)", pid, ErrNoSuchProcess)
	}
	id.PID, id.UID = pid, uid
	id.KernelThread = isKernelThread(int(pid), int(id.PPID))
	return id, nil
}

// parseStatIdentity reads comm (between the first '(' and the last ')': a
// comm may hold both), ppid (field 4) and starttime (field 22).
func parseStatIdentity(b []byte) (Identity, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Identity{}, fmt.Errorf("malformed stat")
	}
	id := Identity{Comm: string(b[open+1 : end])}
	rest := b[end+1:] // " S ppid ..." : field 3 onwards
	field := 2
	for len(rest) > 0 && field < 22 {
		rest = bytes.TrimLeft(rest, " ")
		n := bytes.IndexByte(rest, ' ')
		if n < 0 {
			n = len(rest)
		}
		field++
		switch field {
		case 4:
			v, err := strconv.ParseUint(string(rest[:n]), 10, 32)
			if err != nil {
				return Identity{}, fmt.Errorf("malformed stat ppid: %w", err)
			}
			id.PPID = uint32(v)
		case 22:
			v, err := strconv.ParseUint(string(rest[:n]), 10, 64)
			if err != nil {
				return Identity{}, fmt.Errorf("malformed stat starttime: %w", err)
			}
			id.StartTime = v
		}
		rest = rest[n:]
	}
	if field < 22 {
		return Identity{}, fmt.Errorf("stat has %d fields", field)
	}
	return id, nil
}

// statusUID is the real uid: the first number of status's "Uid:" line.
func statusUID(b []byte) (uint32, bool) {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return 0, false
	}
	line := bytes.TrimLeft(b[i+5:], " \t")
	n := bytes.IndexAny(line, " \t\n")
	if n < 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(line[:n]), 10, 32)
	return uint32(v), err == nil
}
