package mcp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// The HTTP transport is for MCP clients that cannot spawn a process. It
// only listens on loopback, needs a bearer token that only this user can
// read, and refuses browser requests from foreign origins (DNS rebinding).

// ErrNotLoopback is returned for a listen address off this machine.
var ErrNotLoopback = errors.New("refusing to listen beyond loopback")

// CheckLoopback accepts host:port where host is a loopback IP or
// "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q (use 127.0.0.1:PORT or [::1]:PORT; the bridge acts as you, so it must not be reachable from the network)", ErrNotLoopback, addr)
	}
	return nil
}

// TokenPath is where the bearer token lives.
func TokenPath() (string, error) {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		return "", errors.New("XDG_RUNTIME_DIR is not set: the MCP token needs the user's private runtime directory (a desktop or systemd --user session sets it)")
	}
	return filepath.Join(dir, "npllm", "mcp-token"), nil
}

// LoadOrCreateToken reads the token, or creates it (mode 0600 in a 0700
// directory). A token file others can read is refused, not used.
func LoadOrCreateToken(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%s is readable by others (mode %o): remove it or chmod 600 it", path, fi.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		if tok := strings.TrimSpace(string(data)); len(tok) >= 32 {
			return tok, nil
		}
		return "", fmt.Errorf("%s holds no usable token: remove it to get a new one", path)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", err
	}
	return tok, f.Close()
}

// Guard wraps an MCP handler: foreign Origin → 403, missing or wrong
// bearer token → 401, checked before the request reaches MCP.
func Guard(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !localOrigin(o) {
			http.Error(w, "Forbidden: requests from origin "+o+" are refused (only localhost pages may call this bridge)", http.StatusForbidden)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="npllm"`)
			http.Error(w, "Unauthorized: send Authorization: Bearer <token> (the token is in $XDG_RUNTIME_DIR/npllm/mcp-token)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func localOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP serves MCP's streamable HTTP transport at /mcp on addr until
// ctx ends.
func (b *Bridge) ServeHTTP(ctx context.Context, addr, token string) error {
	if err := CheckLoopback(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return b.serveListener(ctx, ln, token)
}

func (b *Bridge) serveListener(ctx context.Context, ln net.Listener, token string) error {
	mux := http.NewServeMux()
	mux.Handle("/mcp", Guard(token, server.NewStreamableHTTPServer(b.srv, server.WithEndpointPath("/mcp"))))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(shut)
	}()
	b.log.Info("serving MCP over HTTP", "url", "http://"+ln.Addr().String()+"/mcp")
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
