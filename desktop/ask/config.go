package ask

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// Named errors of the endpoint configuration.
var (
	ErrBadURL        = errors.New("invalid model url")
	ErrRemoteURL     = errors.New("model server is not on this machine")
	ErrKeyFileOwner  = errors.New("api_key_file is not owned by you")
	ErrKeyFileMode   = errors.New("api_key_file is readable by others")
	ErrKeyFile       = errors.New("api_key_file is unusable")
	ErrConfigUnknown = errors.New("unknown key in [model]")
)

// maxKeyFile bounds what is read from api_key_file.
const maxKeyFile = 4096

// ModelConfig is the [model] table of ~/.config/npllm/agent.toml. The
// lead's AgentConfig can embed it as `Model ask.ModelConfig toml:"model"`.
type ModelConfig struct {
	// URL is the OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1
	// (a URL without a path gets /v1). Empty: probe the usual local ports.
	URL string `toml:"url"`
	// Model is the model name; empty: the first one the server lists.
	Model string `toml:"model"`
	// APIKeyFile holds a bearer token (most local servers need none).
	APIKeyFile string `toml:"api_key_file"`
	// AllowRemote must be set for a URL whose host is not this machine:
	// questions and tool results (process names, figures) go to it.
	AllowRemote bool `toml:"allow_remote"`
}

// LoadModelConfig reads the [model] table of agent.toml at path (missing
// file or table: zero config, i.e. probe). Other tables are the agent's
// business; unknown keys inside [model] are errors.
func LoadModelConfig(path string) (ModelConfig, error) {
	var doc struct {
		Model ModelConfig `toml:"model"`
	}
	md, err := toml.DecodeFile(path, &doc)
	if errors.Is(err, os.ErrNotExist) {
		return ModelConfig{}, nil
	}
	if err != nil {
		return ModelConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "model" {
			return ModelConfig{}, fmt.Errorf("%s: %w: %s", path, ErrConfigUnknown, k)
		}
	}
	return doc.Model, nil
}

// baseURL checks a configured URL and returns it normalized: http(s), a
// host, no credentials in it (they belong in api_key_file), and a loopback
// host unless remote hosts are allowed.
func baseURL(raw string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadURL, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w %q: scheme must be http or https", ErrBadURL, raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w %q: no host", ErrBadURL, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w %q: put credentials in api_key_file, not in the url", ErrBadURL, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w %q: no query or fragment", ErrBadURL, raw)
	}
	if !allowRemote && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: %s; what you ask and what npllm's tools answer would be sent there — set allow_remote = true in [model] of agent.toml if you trust it", ErrRemoteURL, u.Host)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1"
	}
	return u, nil
}

// loopbackHost: "localhost" or a loopback IP literal. Other names are not
// trusted to resolve to this machine (and the dialer checks every address
// it connects to anyway).
func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// readAPIKey reads a bearer token from path, which must be a regular file
// owned by the current user with no permissions for group or others (as
// ssh demands of private keys). Checks are made on the opened file.
func readAPIKey(path string) (string, error) {
	if strings.HasPrefix(path, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrKeyFile, path, err)
		}
		path = filepath.Join(home, path[2:])
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%w: %s: give an absolute path or one starting with ~/", ErrKeyFile, path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("%w: %s: no owner information", ErrKeyFile, path)
	}
	if int(st.Uid) != os.Getuid() {
		return "", fmt.Errorf("%w: %s belongs to uid %d, you are %d", ErrKeyFileOwner, path, st.Uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrKeyFileMode, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if len(data) > maxKeyFile {
		return "", fmt.Errorf("%w: %s is larger than %d bytes", ErrKeyFile, path, maxKeyFile)
	}
	key := strings.TrimSpace(string(data))
	if key == "" || strings.ContainsAny(key, "\r\n\x00") {
		return "", fmt.Errorf("%w: %s must hold one token on one line", ErrKeyFile, path)
	}
	return key, nil
}

// ConfigPath is ~/.config/npllm/agent.toml ($XDG_CONFIG_HOME honoured),
// shared by npllm-agent and npllmctl ask.
func ConfigPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "npllm", "agent.toml")
}
