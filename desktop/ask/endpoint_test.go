package ask

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func portOf(t *testing.T, m *fakeModel) int {
	return m.Srv.Listener.Addr().(*net.TCPAddr).Port
}

func TestProbeFindsAServerOnALoopbackPort(t *testing.T) {
	m := newFakeModel(t)
	port := portOf(t, m)
	ep, err := Resolve(context.Background(), ModelConfig{}, ResolveOptions{
		Candidates: []Candidate{{"ollama", closedPort(t)}, {"llama-server", port}, {"LM Studio", closedPort(t)}}})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if ep.Name != "llama-server" || ep.Model != "qwen2.5:7b" || len(ep.Models) != 2 {
		t.Fatalf("found %+v", ep)
	}
	if want := "llama-server at " + m.URL() + " (run by " + userName(uint32(os.Getuid())) + "), model qwen2.5:7b"; ep.String() != want {
		t.Fatalf("says %q, want %q", ep.String(), want)
	}
}

func TestProbeWithNothingListeningSaysWhatItTried(t *testing.T) {
	a, b := closedPort(t), closedPort(t)
	_, err := Resolve(context.Background(), ModelConfig{}, ResolveOptions{Candidates: []Candidate{{"ollama", a}, {"LM Studio", b}}})
	if !errors.Is(err, ErrNoModelServer) || !strings.Contains(err.Error(), "ollama (port") || !strings.Contains(err.Error(), "LM Studio (port") {
		t.Fatalf("err = %v", err)
	}
}

func TestServerWithoutModelsIsNamed(t *testing.T) {
	m := newFakeModel(t)
	m.Models = nil
	_, err := Resolve(context.Background(), ModelConfig{}, ResolveOptions{Candidates: []Candidate{{"ollama", portOf(t, m)}}})
	if !errors.Is(err, ErrNoModel) || !strings.Contains(err.Error(), "ollama") {
		t.Fatalf("err = %v", err)
	}
}

func TestNonLoopbackURLRefusedUnlessExplicitlyAllowed(t *testing.T) {
	_, err := Resolve(context.Background(), ModelConfig{URL: "http://192.0.2.10:11434/v1", Model: "m"}, ResolveOptions{})
	if !errors.Is(err, ErrRemoteURL) || !strings.Contains(err.Error(), "allow_remote") {
		t.Fatalf("err = %v, want ErrRemoteURL", err)
	}
	_, err = Resolve(context.Background(), ModelConfig{URL: "http://gpu-box.example:8080", Model: "m"}, ResolveOptions{})
	if !errors.Is(err, ErrRemoteURL) {
		t.Fatalf("a host name is not trusted to be loopback: err = %v", err)
	}
	ep, err := Resolve(context.Background(), ModelConfig{URL: "http://gpu-box.example:8080", Model: "m", AllowRemote: true}, ResolveOptions{})
	if err != nil || ep.BaseURL != "http://gpu-box.example:8080/v1" {
		t.Fatalf("allowed remote: %+v, %v", ep, err)
	}
	for _, bad := range []string{"ftp://127.0.0.1/v1", "http://user:pw@127.0.0.1:11434/v1", "http:///v1", "http://127.0.0.1:1/v1?x=1"} {
		if _, err := Resolve(context.Background(), ModelConfig{URL: bad, Model: "m"}, ResolveOptions{}); !errors.Is(err, ErrBadURL) {
			t.Errorf("%s: err = %v, want ErrBadURL", bad, err)
		}
	}
	for _, ok := range []string{"http://localhost:11434", "http://[::1]:8080/v1", "https://127.0.0.2:1234/v1"} {
		if _, err := Resolve(context.Background(), ModelConfig{URL: ok, Model: "m"}, ResolveOptions{}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestLoopbackClientNeverConnectsElsewhere(t *testing.T) {
	// The dialer checks the address it is about to connect to, so no name
	// resolution or redirect can take a loopback-only client off the host.
	start := time.Now()
	_, err := newHTTPClient(false).Get("http://192.0.2.1:80/v1/models")
	if !errors.Is(err, ErrRemoteURL) {
		t.Fatalf("err = %v, want ErrRemoteURL", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("took %s: it tried to connect", time.Since(start))
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	m := newFakeModel(t)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/models", m.Srv.Config.Handler)
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ep, err := Resolve(context.Background(), ModelConfig{URL: srv.URL + "/v1"}, ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSession(ep, &fakeTools{}, Options{}).Ask(context.Background(), "what runs here?")
	if !errors.Is(err, ErrRedirect) || elsewhere.Load() != 0 {
		t.Fatalf("err = %v, requests elsewhere = %d", err, elsewhere.Load())
	}
}

func TestAPIKeyFileIsSentAndEnvironmentKeysAreNot(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-cloud-secret")
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	t.Setenv("OPENAI_CUSTOM_HEADERS", "X-Leak: yes")
	m := newFakeModel(t, answer("a"), answer("b"))
	s, _ := newSession(t, m, &fakeTools{}, Options{})
	if _, err := s.Ask(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	if got := m.Got()[0].Authorization; got != "" {
		t.Fatalf("without api_key_file the server got Authorization %q", got)
	}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("local-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep, err := Resolve(context.Background(), ModelConfig{URL: m.URL(), APIKeyFile: key}, ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSession(ep, &fakeTools{}, Options{}).Ask(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	if got := m.Got()[1].Authorization; got != "Bearer local-token-1" {
		t.Fatalf("Authorization = %q", got)
	}
}

func TestAPIKeyFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("tok"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := func(p string) ModelConfig {
		return ModelConfig{URL: "http://127.0.0.1:1/v1", Model: "m", APIKeyFile: p}
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{write("world", 0o644), ErrKeyFileMode},
		{write("group", 0o640), ErrKeyFileMode},
		{"relative/key", ErrKeyFile},
		{filepath.Join(dir, "missing"), ErrKeyFile},
		{dir, ErrKeyFile}, // a directory
	} {
		if _, err := Resolve(context.Background(), cfg(tc.path), ResolveOptions{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.path, err, tc.want)
		}
	}
	link := filepath.Join(dir, "link")
	os.Symlink(write("target", 0o600), link)
	if _, err := Resolve(context.Background(), cfg(link), ResolveOptions{}); !errors.Is(err, ErrKeyFile) {
		t.Errorf("symlink: err = %v, want ErrKeyFile", err)
	}
	good := write("good", 0o600)
	if _, err := Resolve(context.Background(), cfg(good), ResolveOptions{}); err != nil {
		t.Errorf("0600 own file: %v", err)
	}
	// Probed ports may be anyone's: no key is sent to them.
	m := newFakeModel(t)
	_, err := Resolve(context.Background(), ModelConfig{APIKeyFile: good}, ResolveOptions{Candidates: []Candidate{{"ollama", portOf(t, m)}}})
	if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), "needs url") {
		t.Errorf("key without url: err = %v", err)
	}
}

func TestAPIKeyFileOfAnotherUserIsRefused(t *testing.T) {
	testbus.Privileged(t) // to give a file to another user
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(context.Background(), ModelConfig{URL: "http://127.0.0.1:1/v1", Model: "m", APIKeyFile: p}, ResolveOptions{})
	if !errors.Is(err, ErrKeyFileOwner) {
		t.Fatalf("err = %v, want ErrKeyFileOwner", err)
	}
}

func TestModelConfigIsTheModelTableOfAgentToml(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.toml")
	os.WriteFile(p, []byte("tray = false\n[mcp]\nhttp = \"127.0.0.1:8765\"\n[model]\nurl = \"http://127.0.0.1:11434/v1\"\nmodel = \"qwen2.5\"\napi_key_file = \"~/.config/npllm/key\"\n"), 0o600)
	c, err := LoadModelConfig(p)
	if err != nil || c.URL != "http://127.0.0.1:11434/v1" || c.Model != "qwen2.5" || c.APIKeyFile != "~/.config/npllm/key" || c.AllowRemote {
		t.Fatalf("config = %+v, %v", c, err)
	}
	os.WriteFile(p, []byte("[model]\nurl = \"http://127.0.0.1:11434/v1\"\napikey = \"x\"\n"), 0o600)
	if _, err := LoadModelConfig(p); !errors.Is(err, ErrConfigUnknown) || !strings.Contains(err.Error(), "apikey") {
		t.Fatalf("unknown key: err = %v", err)
	}
	if c, err := LoadModelConfig(filepath.Join(dir, "none.toml")); err != nil || c != (ModelConfig{}) {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
}

func TestModelWithoutToolSupportIsNamed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		// ollama's answer for a model without tool calling.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":{"message":"registry.ollama.ai/library/gemma:2b does not support tools","type":"api_error","param":null,"code":null}}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ep, err := Resolve(context.Background(), ModelConfig{URL: srv.URL, Model: "gemma:2b"}, ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSession(ep, &fakeTools{}, Options{}).Ask(context.Background(), "x")
	if !errors.Is(err, ErrNoToolSupport) || !strings.Contains(err.Error(), "gemma:2b") {
		t.Fatalf("err = %v", err)
	}
}
