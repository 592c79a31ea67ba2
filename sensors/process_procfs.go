package sensors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/npllm/npllm/dbus/api"
)

// procfsPoll is how often the procfs variant diffs /proc. Processes that
// live shorter than this are missed, and exit codes are unknown: this is
// the last rung of the ladder, for machines where eBPF is forbidden.
const procfsPoll = 100 * time.Millisecond

type processProcfs struct {
	env     *Env
	stop    chan struct{}
	wg      sync.WaitGroup
	emitted atomic.Uint64
	scans   atomic.Uint64
}

func startProcessProcfs(_ context.Context, env *Env) (Running, error) {
	if env.Hub == nil {
		return nil, errors.New("no event hub")
	}
	s := &processProcfs{env: env, stop: make(chan struct{})}
	known, err := s.scan()
	if err != nil {
		return nil, &Unavailable{Reason: "cannot read " + env.ProcRoot + ": " + err.Error(), Fix: "mount /proc"}
	}
	s.wg.Add(1)
	go s.loop(known)
	return s, nil
}

func (s *processProcfs) scan() (map[procKey]Identity, error) {
	dirs, err := os.ReadDir(s.env.ProcRoot)
	if err != nil {
		return nil, err
	}
	s.scans.Add(1)
	out := make(map[procKey]Identity, len(dirs))
	self := uint32(os.Getpid())
	for _, d := range dirs {
		pid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil || uint32(pid) == self {
			continue
		}
		id, err := ReadIdentity(s.env.ProcRoot, uint32(pid))
		if err != nil || id.KernelThread {
			continue
		}
		out[procKey{id.PID, id.StartTime}] = id
	}
	return out, nil
}

func (s *processProcfs) loop(known map[procKey]Identity) {
	defer s.wg.Done()
	t := time.NewTicker(procfsPoll)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now, err := s.scan()
		if err != nil {
			continue
		}
		for k, e := range now {
			if _, ok := known[k]; ok {
				continue
			}
			dir := filepath.Join(s.env.ProcRoot, strconv.Itoa(int(e.PID)))
			exe, _ := os.Readlink(filepath.Join(dir, "exe"))
			argv := []string{}
			if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
				argv = splitArgs(b[:min(len(b), MaxCmdline)])
			}
			s.publish(Event{Kind: api.KindProcessExec, PID: e.PID, UID: e.UID, HasUID: true,
				PPID: e.PPID, Comm: e.Comm, Filename: exe, Argv: argv, StartTime: e.StartTime})
		}
		for k, e := range known {
			if _, ok := now[k]; !ok {
				s.publish(Event{Kind: api.KindProcessExit, PID: e.PID, UID: e.UID, HasUID: true,
					Comm: e.Comm, StartTime: e.StartTime})
			}
		}
		known = now
	}
}

func (s *processProcfs) publish(ev Event) {
	s.emitted.Add(1)
	s.env.Hub.Publish(ev)
}

func (s *processProcfs) Counters() map[string]uint64 {
	return map[string]uint64{"emitted": s.emitted.Load(), "scans": s.scans.Load()}
}

func (s *processProcfs) Close() error {
	close(s.stop)
	s.wg.Wait()
	return nil
}
