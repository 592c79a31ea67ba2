package actions

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/npllm/npllm/sensors"
)

func TestUnitNamesFollowSystemdRules(t *testing.T) {
	valid := []string{"cups.service", "getty@tty1.service", "a.socket", "x-y_z:1.timer", "user@1000.service",
		"dev-sda1.device", "systemd-fsck@dev-disk-by\\x2duuid-1.service", "-.mount", "foo@bar@baz.service"}
	invalid := []string{"", "cups", ".service", "cups.servic", "getty@.service", "a b.service", "../x.service",
		"x/y.service", "é.service", "@foo.service", strings.Repeat("a", 250) + ".service", "cups.service\n", "cups.service;rm"}
	for _, n := range valid {
		if err := ValidateUnitName(n); err != nil {
			t.Errorf("ValidateUnitName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range invalid {
		if err := ValidateUnitName(n); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ValidateUnitName(%q) = %v, want ErrInvalidArgument", n, err)
		}
	}
}

func TestSignalNiceIOAndVerbValidation(t *testing.T) {
	for _, s := range []string{"TERM", "sigterm", "SIGKILL", "cont"} {
		if _, _, err := ParseSignal(s); err != nil {
			t.Errorf("ParseSignal(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "9", "USR1", "SIGSEGV", "TERM ", "SIGSIGTERM"} {
		if _, _, err := ParseSignal(s); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseSignal(%q) accepted", s)
		}
	}
	for _, n := range []int32{-21, 20, 1 << 30} {
		if ValidateNice(n) == nil {
			t.Errorf("nice %d accepted", n)
		}
	}
	if ValidateNice(-20) != nil || ValidateNice(19) != nil {
		t.Error("nice bounds refused")
	}
	if _, err := ValidateIOPriority("best-effort", 7); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		class string
		level int32
	}{{"best-effort", 8}, {"idle", -1}, {"rt", 0}, {"", 0}} {
		if _, err := ValidateIOPriority(c.class, c.level); err == nil {
			t.Errorf("ionice %q %d accepted", c.class, c.level)
		}
	}
	if ValidateVerb("enable") == nil || ValidateVerb("restart") != nil {
		t.Error("verb validation")
	}
}

func FuzzValidateUnitName(f *testing.F) {
	for _, s := range []string{"cups.service", "getty@tty1.service", "getty@.service", "", "a/b.service", "\x00.service"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateUnitName(name)
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("unnamed error %v", err)
		}
		if err == nil {
			// Whatever passes is something systemd could accept: bounded,
			// ASCII, no path separators or whitespace.
			if len(name) > 255 || !utf8.ValidString(name) || strings.ContainsAny(name, "/ \t\n\x00") {
				t.Fatalf("accepted %q", name)
			}
		}
	})
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"TERM", "SIGKILL", "9", "", "sigcont"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		sig, n, err := ParseSignal(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		if Signals[n] != sig {
			t.Fatalf("%q → %v %q", name, sig, n)
		}
	})
}

func FuzzValidateIOPriority(f *testing.F) {
	f.Add("idle", int32(0))
	f.Add("realtime", int32(7))
	f.Add("x", int32(-1))
	f.Fuzz(func(t *testing.T, class string, level int32) {
		c, err := ValidateIOPriority(class, level)
		if err == nil && (c < 1 || c > 3 || level < 0 || level > 7) {
			t.Fatalf("accepted %q %d", class, level)
		}
	})
}

func TestOpenRefusesReusedPidAndSpecialTargets(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := uint32(cmd.Process.Pid)
	id, err := sensors.ReadIdentity("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	start := id.StartTime
	if _, err := Open("/proc", pid, start+1); !errors.Is(err, ErrProcessChanged) {
		t.Errorf("wrong start time: %v", err)
	}
	target, err := Open("/proc", pid, start)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if _, err := Open("/proc", 1, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("pid 1: %v", err)
	}
	if _, err := Open("/proc", uint32(os.Getpid()), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("self: %v", err)
	}
	// Once the process is gone, the pinned target says so instead of
	// hitting whoever gets the pid next.
	cmd.Process.Kill()
	cmd.Wait()
	if err := target.SetNice(5); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("renice after exit: %v", err)
	}
	if err := target.Signal(15); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("signal after exit: %v", err)
	}
}
