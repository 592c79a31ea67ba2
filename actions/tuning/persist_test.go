package tuning

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

func TestPersistedTrialSurvivesRestartAndRevertRemovesItsFile(t *testing.T) {
	testbus.Privileged(t)
	orig, other := keepSwappiness(t)
	env := DefaultEnv()
	env.Etc = t.TempDir() // not the machine's /etc
	dir := t.TempDir()
	e, _ := newEngineEnv(t, dir, nil, env)
	if _, err := e.Start(bg, []Change{{Knob: "block.read_ahead_kb", Target: "loop0", Value: "512"}},
		Options{Persist: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("persisting a block knob: %v, want ErrInvalidArgument", err)
	}
	id, err := e.Start(bg, swapChange(other), Options{Canary: 100 * time.Millisecond, Lease: 400 * time.Millisecond,
		Every: 20 * time.Millisecond, Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e, id, StateAwaiting, time.Second)
	info, err := e.Confirm(id)
	if err != nil || !info.Persisted {
		t.Fatalf("Confirm: %+v %v", info, err)
	}
	file := filepath.Join(env.Etc, "sysctl.d", "90-npllm-vm.swappiness.conf")
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), "vm.swappiness = "+other+"\n") || !strings.Contains(string(data), string(id)) {
		t.Fatalf("%s: %q %v", file, data, err)
	}
	time.Sleep(500 * time.Millisecond) // past the lease
	e.Close()                          // a persisted change outlives the daemon
	if got := readKnob(t, swappiness); got != other {
		t.Fatalf("persisted swappiness %s became %s", other, got)
	}

	e2, ev2 := newEngineEnv(t, dir, nil, env)
	if got := readKnob(t, swappiness); got != other || len(ev2.kinds()) != 0 {
		t.Fatalf("restart touched a persisted trial: %s, %v", got, ev2.kinds())
	}
	if _, err := e2.Start(bg, swapChange(orig), Options{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("new trial on a persisted knob: %v, want ErrConflict", err)
	}
	if _, err := e2.Revert(id); err != nil {
		t.Fatal(err)
	}
	if got := readKnob(t, swappiness); got != orig {
		t.Fatalf("swappiness %s after reverting the persisted trial, want %s", got, orig)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("%s still there after the revert: %v", file, err)
	}
	if left := stateTrials(t, dir); len(left) != 0 {
		t.Fatalf("state after the revert: %+v", left)
	}
}

func TestRemovePersistedRefusesFilesNotOurs(t *testing.T) {
	for _, p := range []string{"/etc/passwd", "/etc/sysctl.d/../passwd", "relative/90-npllm-x.conf", "/etc/sysctl.d/99-other.conf"} {
		if err := removePersisted(p); err == nil {
			t.Errorf("removePersisted(%q) accepted", p)
		}
	}
}
