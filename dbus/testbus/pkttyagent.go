package testbus

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LockedBuffer collects a process's output for polling.
type LockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartPkttyagent registers a real pkttyagent (under script(1), which gives
// it the terminal it insists on) for the process pid; it returns the
// agent's output and its input (where passwords are typed).
func (b *Bus) StartPkttyagent(t testing.TB, pid int) (*LockedBuffer, io.WriteCloser) {
	t.Helper()
	fifo := t.TempDir() + "/registered"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// polkit-agent-helper-1 is setuid, so GLib ignores
	// DBUS_SYSTEM_BUS_ADDRESS there: in a mount namespace of the agent's
	// own, the standard socket path leads to the private bus.
	sock := strings.TrimPrefix(b.Address, "unix:path=")
	agent := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs npllm-test /run/dbus && ln -s "$1" /run/dbus/system_bus_socket && exec script --quiet --flush --command "$2" /dev/null`,
		"sh", sock, "exec pkttyagent --process "+strconv.Itoa(pid)+" --notify-fd 3 3>"+fifo)
	agent.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.Address)
	out := &LockedBuffer{}
	agent.Stdout, agent.Stderr = out, out
	in, _ := agent.StdinPipe()
	if err := agent.Start(); err != nil {
		t.Fatalf("pkttyagent: %v", err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	registered := make(chan error, 1)
	go func() {
		f, err := os.Open(fifo)
		if err == nil {
			_, err = f.Read(make([]byte, 1)) // EOF once pkttyagent closes it
			f.Close()
		}
		registered <- err
	}()
	select {
	case <-registered:
	case <-time.After(15 * time.Second):
		t.Fatal("pkttyagent did not register within 15 s")
	}
	return out, in
}
