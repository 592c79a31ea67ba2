package tuning

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Persistence of a confirmed change, on request (Options.Persist): a file
// owned by npllm that re-applies it at boot — /etc/sysctl.d for sysctls, a
// systemd drop-in for unit properties — removed when the trial is reverted.
// Only knobs with such a standard home can be persisted.

// persistPrefix starts the name of every file npllm writes; nothing else is
// ever removed.
const persistPrefix = "90-npllm-"

// Persister is a knob whose value can be made to survive a reboot.
type Persister interface {
	// Persist writes the file and returns its path.
	Persist(ctx context.Context, id TrialID, value string) (string, error)
}

const persistHeader = "# Written by npllm when tuning trial %s was confirmed; removed when it is reverted.\n"

func (k *sysctlKnob) Persist(_ context.Context, id TrialID, value string) (string, error) {
	if k.etc == "" {
		return "", unavailable("no /etc configured")
	}
	path := filepath.Join(k.etc, "sysctl.d", persistPrefix+k.spec.name+".conf")
	return path, writePersisted(path, id, fmt.Sprintf("%s = %s\n", k.spec.name, value))
}

func (k *unitKnob) Persist(_ context.Context, id TrialID, value string) (string, error) {
	if k.etc == "" {
		return "", unavailable("no /etc configured")
	}
	path := filepath.Join(k.etc, "systemd", "system", k.unit+".d", persistPrefix+k.spec.prop+".conf")
	return path, writePersisted(path, id, fmt.Sprintf("[%s]\n%s=%s\n", unitType(k.unit), k.spec.prop, value))
}

// persistable refuses, before anything is applied, a trial asking to
// persist a knob that cannot be.
func persistable(k Knob) error {
	if _, ok := k.(Persister); !ok {
		return invalid("%s cannot be persisted (only sysctls and service/slice properties can)", k.Key())
	}
	if u, ok := k.(*unitKnob); ok && strings.HasSuffix(u.unit, ".scope") {
		return invalid("%s: a scope does not outlive its processes; nothing to persist", k.Key())
	}
	return nil
}

func writePersisted(path string, id TrialID, body string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeAtomic(path, []byte(fmt.Sprintf(persistHeader, id)+body), 0o644)
}

// removePersisted deletes a file npllm wrote; a path that is not ours (a
// tampered state file) is refused.
func removePersisted(path string) error {
	if path == "" {
		return nil
	}
	if !strings.HasPrefix(filepath.Base(path), persistPrefix) || filepath.Clean(path) != path || !filepath.IsAbs(path) {
		return fmt.Errorf("refusing to remove %q: not a file npllm wrote", path)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	if dir := filepath.Dir(path); strings.HasSuffix(dir, ".service.d") || strings.HasSuffix(dir, ".slice.d") {
		os.Remove(dir) // the unit's drop-in directory, if now empty
	}
	return nil
}
