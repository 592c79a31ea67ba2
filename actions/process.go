package actions

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/sensors"
)

// Target is a process pinned by a pidfd. A pid alone can be reused by an
// unrelated process between the caller's look-up and our action, so the
// caller names (pid, start_time); Open pins the pid with a pidfd first and
// only then re-reads /proc/<pid>/stat: if start_time still matches, the
// pidfd refers to the process the caller meant, and signals sent through it
// cannot reach anyone else.
type Target struct {
	PID       uint32
	StartTime uint64
	UID       uint32
	Comm      string
	procRoot  string
	pidfd     int
}

// Open pins the process (pid, startTime). Refused targets — pid 1, kernel
// threads, npllmd itself — are ErrInvalidArgument.
func Open(procRoot string, pid uint32, startTime uint64) (*Target, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	switch {
	case pid == 0:
		return nil, invalid("pid 0 is not a process")
	case pid == 1:
		return nil, invalid("pid 1 (init) is never a target")
	case int(pid) == os.Getpid():
		return nil, invalid("npllmd does not act on itself")
	}
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ESRCH):
			return nil, fmt.Errorf("%w: pid %d", ErrNoSuchProcess, pid)
		case errors.Is(err, unix.EINVAL):
			return nil, invalid("%d is a thread id, not a process id", pid)
		case errors.Is(err, unix.ENOENT): // this kernel (6.18), for a thread id; found by the method-table fuzzer
			return nil, invalid("%d is not a process id (a thread's, or gone)", pid)
		}
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	t := &Target{PID: pid, procRoot: procRoot, pidfd: fd}
	id, err := sensors.ReadIdentity(procRoot, pid)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("%w: pid %d", ErrNoSuchProcess, pid)
	}
	if id.KernelThread {
		t.Close()
		return nil, invalid("pid %d (%s) is a kernel thread", pid, id.Comm)
	}
	if id.StartTime != startTime {
		t.Close()
		return nil, fmt.Errorf("%w: pid %d now belongs to %s started at %d, not the process started at %d", ErrProcessChanged, pid, id.Comm, id.StartTime, startTime)
	}
	t.StartTime, t.UID, t.Comm = id.StartTime, id.UID, id.Comm
	return t, nil
}

// Close releases the pidfd.
func (t *Target) Close() error {
	if t.pidfd < 0 {
		return nil
	}
	err := unix.Close(t.pidfd)
	t.pidfd = -1
	return err
}

// Signal sends sig through the pidfd.
func (t *Target) Signal(sig syscall.Signal) error {
	if err := unix.PidfdSendSignal(t.pidfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%w: pid %d exited", ErrNoSuchProcess, t.PID)
		}
		return fmt.Errorf("pidfd_send_signal %d: %w", t.PID, err)
	}
	return nil
}

// SetNice sets the nice value of every thread (nice is per thread on Linux,
// and renicing only the main thread leaves the workers as they were).
// setpriority(2) takes a tid, not a pidfd; the window between our identity
// check and the call is closed by checking, through the pidfd, that the
// process is still alive before (a live pidfd holder keeps its pid from
// being reused) and after.
func (t *Target) SetNice(nice int32) error {
	return t.eachThread(func(tid int) error {
		return unix.Setpriority(unix.PRIO_PROCESS, tid, int(nice))
	})
}

// SetIOPriority sets the I/O class and level of every thread.
func (t *Target) SetIOPriority(class int, level int32) error {
	prio := uintptr(class<<ioprioClassShift | int(level))
	return t.eachThread(func(tid int) error {
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), prio); e != 0 {
			return e
		}
		return nil
	})
}

func (t *Target) eachThread(fn func(tid int) error) error {
	if err := t.alive(); err != nil {
		return err
	}
	tasks, err := os.ReadDir(filepath.Join(t.procRoot, strconv.Itoa(int(t.PID)), "task"))
	if err != nil {
		return fmt.Errorf("%w: pid %d exited", ErrNoSuchProcess, t.PID)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := fn(tid); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pid %d thread %d: %w", t.PID, tid, err)
		}
	}
	return t.alive()
}

// alive polls the pidfd: it becomes readable when the process exits.
func (t *Target) alive() error {
	fds := []unix.PollFd{{Fd: int32(t.pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		return fmt.Errorf("poll pidfd: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: pid %d exited", ErrNoSuchProcess, t.PID)
	}
	return nil
}

// RaisesNice reports whether setting nice would lower any thread's nice
// value below its current one: the kernel refuses that without
// CAP_SYS_NICE (set_one_prio → can_nice), so a caller asking npllmd to do
// it asks for root's power, not an owner's. RLIMIT_NICE, which the kernel
// also honours, is not: stricter, and a model cannot raise it anyway.
func (t *Target) RaisesNice(nice int32) (bool, error) {
	raises := false
	err := t.eachThread(func(tid int) error {
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			return err
		}
		raises = raises || int(nice) < 20-p // the raw syscall returns 20 - nice
		return nil
	})
	return raises, err
}

// ioRank orders the I/O classes by the service they get.
var ioRank = map[int]int{ioClassIdle: 0, ioClassBestEffort: 1, ioClassRealtime: 2}

const (
	ioClassNone, ioClassRealtime, ioClassBestEffort, ioClassIdle = 0, 1, 2, 3
	ioprioClassShift, ioprioWhoProcess                           = 13, 1
)

// RaisesIOPriority reports whether (class, level) is a better I/O
// priority than any thread's current one: a higher class, or a lower level
// number in the same class. The kernel itself only guards realtime; npllmd
// treats I/O like nice so that no caller gains priority with the owner's
// action alone. A thread without an explicit class runs best-effort at the
// level its nice value implies (ioprio(7)).
func (t *Target) RaisesIOPriority(class int, level int32) (bool, error) {
	raises := false
	err := t.eachThread(func(tid int) error {
		r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if e != 0 {
			return e
		}
		curClass, curLevel := int(r)>>ioprioClassShift, int32(r&(1<<ioprioClassShift-1))
		if curClass == ioClassNone {
			p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
			if err != nil {
				return err
			}
			curClass, curLevel = ioClassBestEffort, int32((20-p+20)/5)
		}
		switch {
		case ioRank[class] > ioRank[curClass]:
			raises = true
		case class == curClass && class != ioClassIdle && level < curLevel:
			raises = true
		}
		return nil
	})
	return raises, err
}
