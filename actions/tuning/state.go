package tuning

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/npllm/npllm/systemd/statefile"
)

// Files in the state directory. tuning.json holds every trial not yet
// finished, with its undo set; it is written (temporary file, fsync, rename,
// fsync of the directory) before a knob is touched, so after a crash the
// next engine knows what to revert. tuning-history.json keeps finished
// trials per workload.
const (
	stateFile    = "tuning.json"
	historyFile  = "tuning-history.json"
	lockFile     = "tuning.lock"
	stateVersion = 1

	historyPerWorkload = 32
	historyWorkloads   = 256
	machineWorkload    = "(machine)"
)

type stateDoc struct {
	Version int         `json:"version"`
	Trials  []TrialInfo `json:"trials"`
}

type historyDoc struct {
	Version   int                       `json:"version"`
	Workloads map[string][]HistoryEntry `json:"workloads"`
}

// HistoryEntry is a finished trial as remembered for its workload.
type HistoryEntry struct {
	ID      TrialID      `json:"id"`
	Changes []ChangeInfo `json:"changes"`
	Outcome string       `json:"outcome"` // confirmed, reverted, ended
	Reason  string       `json:"reason,omitempty"`
	Before  []Figure     `json:"before,omitempty"`
	After   []Figure     `json:"after,omitempty"`
	Started time.Time    `json:"started"`
	Ended   time.Time    `json:"ended"`
}

// writeAtomic replaces path with data so that a crash leaves the old file
// or the new one, never a mix.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readJSON loads path into v. A file that does not parse is moved aside
// (path.damaged-<UTC time>, as the daemon's other state) and reported as
// ErrDamagedState, never fatal; a missing file is empty.
func readJSON(path string, v any, versionOK func() bool) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = json.Unmarshal(data, v)
	if err == nil && versionOK() {
		return nil
	}
	reason := "unknown version"
	if err != nil {
		reason = err.Error()
	}
	aside, rerr := statefile.MoveAside(path, "damaged")
	if rerr != nil {
		return fmt.Errorf("%s is damaged (%s) and cannot be moved aside: %w", path, reason, rerr)
	}
	return fmt.Errorf("%w: %s was damaged (%s); moved to %s", ErrDamagedState, path, reason, aside)
}

func (e *Engine) saveStateLocked() error {
	doc := stateDoc{Version: stateVersion, Trials: []TrialInfo{}}
	for _, t := range e.trials {
		if !t.info.final() {
			doc.Trials = append(doc.Trials, t.info)
		}
	}
	sort.Slice(doc.Trials, func(i, j int) bool { return doc.Trials[i].Started.Before(doc.Trials[j].Started) })
	data, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(e.dir, stateFile), data, 0o600)
}

func (e *Engine) loadState() ([]TrialInfo, error) {
	var doc stateDoc
	if err := readJSON(filepath.Join(e.dir, stateFile), &doc, func() bool { return doc.Version == stateVersion }); err != nil {
		return nil, err
	}
	return doc.Trials, nil
}

// appendHistoryLocked remembers a finished trial under its workload,
// bounded per workload and in workloads (the least recent goes).
func (e *Engine) appendHistoryLocked(info TrialInfo) error {
	if e.history == nil {
		e.history = &historyDoc{}
		err := readJSON(filepath.Join(e.dir, historyFile), e.history, func() bool { return e.history.Version == stateVersion })
		if err != nil {
			e.log.Warn("tuning history", "err", err)
			e.history = &historyDoc{} // a damaged file may have half-filled it
		}
		e.history.Version = stateVersion
		if e.history.Workloads == nil {
			e.history.Workloads = map[string][]HistoryEntry{}
		}
	}
	w := info.Options.Workload
	if w == "" {
		w = machineWorkload
	}
	list := append(e.history.Workloads[w], HistoryEntry{ID: info.ID, Changes: info.Changes, Outcome: info.State,
		Reason: info.Reason, Before: info.Before, After: info.After, Started: info.Started, Ended: info.Ended})
	if len(list) > historyPerWorkload {
		list = list[len(list)-historyPerWorkload:]
	}
	e.history.Workloads[w] = list
	for len(e.history.Workloads) > historyWorkloads {
		oldest, at := "", time.Time{}
		for k, l := range e.history.Workloads {
			if last := l[len(l)-1].Ended; oldest == "" || last.Before(at) {
				oldest, at = k, last
			}
		}
		delete(e.history.Workloads, oldest)
	}
	data, err := json.Marshal(e.history)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(e.dir, historyFile), data, 0o600)
}

// lockDir takes an exclusive lock on the state directory: two engines
// reverting each other's trials would be worse than either alone. The
// kernel drops the lock when the process dies.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrBusy, dir, err)
	}
	return f, nil
}
