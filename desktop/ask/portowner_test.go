package ask

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/npllm/npllm/dbus/testbus"
)

// listenAs opens a loopback listener whose socket belongs to uid (the
// kernel takes a socket's owner from the creating thread's fsuid).
func listenAs(t *testing.T, uid int) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.Setfsuid(uid); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	syscall.Setfsuid(0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Another user listening first on a model server's port (issue 12
// follow-up) gets no question: the probe skips it and says whose it is;
// the same server named in url is used (the user chose it).
func TestProbeSkipsAnotherUsersServer(t *testing.T) {
	testbus.Privileged(t)
	bob, err := testbus.EnsureUser("npllm-bob")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"object":"list","data":[{"id":"evil","object":"model"}]}`))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = listenAs(t, int(bob.UID))
	srv.Start()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	if owner, err := checkPortOwner("/proc/net", port, 0); !errors.Is(err, ErrForeignServer) || owner != bob.UID {
		t.Fatalf("owner of port %d = %d, %v; want uid %d's, refused", port, owner, err, bob.UID)
	}
	_, err = Resolve(context.Background(), ModelConfig{}, ResolveOptions{Candidates: []Candidate{{"ollama", port}}})
	if !errors.Is(err, ErrNoModelServer) || !strings.Contains(err.Error(), "npllm-bob") || asked.Load() != 0 {
		t.Fatalf("probe of bob's server: %v (asked %d times)", err, asked.Load())
	}
	ep, err := Resolve(context.Background(), ModelConfig{URL: srv.URL + "/v1"}, ResolveOptions{})
	if err != nil || ep.Model != "evil" {
		t.Fatalf("configured url: %+v %v", ep, err)
	}
}
