// Package cmd_test checks the dependency rule of the binaries: the clients
// never link the daemon (eBPF, the journal store, sensors, the server,
// actions, polkit), and npllmctl links no tray.
package cmd_test

import (
	"os/exec"
	"strings"
	"testing"
)

var daemonOnly = []string{
	"github.com/cilium/ebpf",
	"go.etcd.io/bbolt",
	"github.com/npllm/npllm/sensors",
	"github.com/npllm/npllm/dbus/server",
	"github.com/npllm/npllm/actions",
	"github.com/npllm/npllm/polkit",
}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestClientsDoNotLinkTheDaemon(t *testing.T) {
	for _, bin := range []string{"./npllmctl", "./npllm-agent", "./npllm-exporter"} {
		forbidden := daemonOnly
		if bin != "./npllm-agent" {
			forbidden = append(forbidden[:len(forbidden):len(forbidden)], "fyne.io/systray")
		}
		list := deps(t, bin)
		if len(list) < 10 {
			t.Fatalf("go list -deps %s listed only %v", bin, list)
		}
		for _, d := range list {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s links %s", bin, d)
				}
			}
		}
	}
}

// The rule must be able to fail: the daemon does link what clients may not.
func TestTheDaemonLinksWhatClientsMayNot(t *testing.T) {
	list := strings.Join(deps(t, "./npllmd"), "\n")
	for _, f := range []string{"github.com/cilium/ebpf", "go.etcd.io/bbolt", "github.com/npllm/npllm/dbus/server"} {
		if !strings.Contains(list, f) {
			t.Errorf("npllmd does not link %s: is the test looking at the right packages?", f)
		}
	}
}

// dbus/api is a leaf (godbus and the standard library), and desktop/mutes
// links no bus, tray or notification library.
func TestLeavesStayLeaves(t *testing.T) {
	std, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatal(err)
	}
	isStd := map[string]bool{}
	for _, p := range strings.Fields(string(std)) {
		isStd[p] = true
	}
	for pkg, allowed := range map[string][]string{
		"../dbus/api":      {"github.com/npllm/npllm/dbus/api", "github.com/godbus/dbus/v5"},
		"../desktop/mutes": {"github.com/npllm/npllm/desktop/mutes"},
	} {
		for _, d := range deps(t, pkg) {
			ok := isStd[d] || strings.HasPrefix(d, "vendor/") || strings.HasPrefix(d, "internal/")
			for _, a := range allowed {
				ok = ok || d == a || strings.HasPrefix(d, a+"/")
			}
			if !ok {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
}
