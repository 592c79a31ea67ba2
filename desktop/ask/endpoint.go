package ask

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Named errors of finding a model server.
var (
	ErrNoModelServer = errors.New("no local model server found")
	ErrNoModel       = errors.New("the model server lists no model")
	ErrRedirect      = errors.New("model server redirected elsewhere")
)

// Candidate is a local server the probe tries.
type Candidate struct {
	Name string
	Port int
}

// DefaultCandidates are the usual ports of local OpenAI-compatible servers,
// in the order they are tried.
var DefaultCandidates = []Candidate{{"ollama", 11434}, {"llama-server", 8080}, {"LM Studio", 1234}}

const (
	defaultProbeTimeout = 700 * time.Millisecond
	maxModelList        = 1 << 20 // bytes of a /v1/models answer
	maxModelNames       = 64
)

// Endpoint is a model server ready to be asked.
type Endpoint struct {
	// Name says where it came from: "configured", or a Candidate's name.
	Name    string
	BaseURL string
	Model   string
	// Models lists what the server offered, when it was asked.
	Models []string
	// Owner runs a probed server (its listening socket's uid); "" when
	// configured.
	Owner string

	apiKey string
	client *http.Client
}

// String says which server and model will answer, for the user.
func (e *Endpoint) String() string {
	if e.Owner != "" {
		return fmt.Sprintf("%s at %s (run by %s), model %s", e.Name, e.BaseURL, e.Owner, e.Model)
	}
	return fmt.Sprintf("%s at %s, model %s", e.Name, e.BaseURL, e.Model)
}

// ResolveOptions tune Resolve; the zero value probes DefaultCandidates.
type ResolveOptions struct {
	Candidates   []Candidate
	ProbeTimeout time.Duration
	// ProcNet is where the listening sockets' owners are read (default
	// /proc/net).
	ProcNet string
}

// Resolve picks the model server: the configured URL if any (a non-loopback
// host only with allow_remote), else the first local candidate answering
// GET /v1/models. Without a configured model it takes the first listed.
func Resolve(ctx context.Context, cfg ModelConfig, ro ResolveOptions) (*Endpoint, error) {
	if ro.Candidates == nil {
		ro.Candidates = DefaultCandidates
	}
	if ro.ProbeTimeout <= 0 {
		ro.ProbeTimeout = defaultProbeTimeout
	}
	ep := &Endpoint{Name: "configured", Model: strings.TrimSpace(cfg.Model)}
	if cfg.APIKeyFile != "" {
		// A probed port may belong to anyone on this machine: a key goes
		// only to a server the user named.
		if cfg.URL == "" {
			return nil, fmt.Errorf("%w: api_key_file needs url in [model]: the key is sent only to a server you name", ErrKeyFile)
		}
		key, err := readAPIKey(cfg.APIKeyFile)
		if err != nil {
			return nil, err
		}
		ep.apiKey = key
	}
	if cfg.URL != "" {
		u, err := baseURL(cfg.URL, cfg.AllowRemote)
		if err != nil {
			return nil, err
		}
		ep.BaseURL, ep.client = u.String(), newHTTPClient(cfg.AllowRemote)
		if ep.Model == "" {
			if err := ep.listModels(ctx, ro.ProbeTimeout*4); err != nil {
				return nil, err
			}
		}
		return ep, nil
	}
	if ro.ProcNet == "" {
		ro.ProcNet = "/proc/net"
	}
	ep.client = newHTTPClient(false)
	var tried []string
	for _, c := range ro.Candidates {
		owner, err := checkPortOwner(ro.ProcNet, c.Port, uint32(os.Getuid()))
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (port %d: %v)", c.Name, c.Port, err))
			continue
		}
		ep.Owner = userName(owner)
		ep.Name = c.Name
		ep.BaseURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) + "/v1"
		err = ep.listModels(ctx, ro.ProbeTimeout)
		if err == nil {
			return ep, nil
		}
		if errors.Is(err, ErrNoModel) { // found, but useless: say so
			return nil, err
		}
		tried = append(tried, fmt.Sprintf("%s (port %d)", c.Name, c.Port))
	}
	return nil, fmt.Errorf("%w: tried %s on 127.0.0.1; start one (e.g. `ollama serve`) or set url in [model] of agent.toml", ErrNoModelServer, strings.Join(tried, ", "))
}

// listModels asks the server which models it serves and, when none is
// configured, picks the first.
func (e *Endpoint) listModels(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	svc := openai.NewModelService(e.options(maxModelList)...)
	page, err := svc.List(ctx)
	if err != nil {
		return fmt.Errorf("%s: GET models: %w", e.BaseURL, err)
	}
	e.Models = e.Models[:0]
	for _, m := range page.Data {
		if len(e.Models) < maxModelNames && m.ID != "" {
			e.Models = append(e.Models, m.ID)
		}
	}
	if e.Model == "" {
		if len(e.Models) == 0 {
			return fmt.Errorf("%w at %s (%s): load or pull one, e.g. `ollama pull qwen2.5`", ErrNoModel, e.BaseURL, e.Name)
		}
		e.Model = e.Models[0]
	}
	return nil
}

// options configure the SDK for this endpoint alone. The services are
// built without openai.NewClient on purpose: it would read OPENAI_API_KEY,
// OPENAI_BASE_URL and friends from the environment and could send a cloud
// key to a local server. No retries: a retried generation doubles the wait.
func (e *Endpoint) options(maxBody int64, extra ...option.RequestOption) []option.RequestOption {
	opts := []option.RequestOption{
		option.WithBaseURL(e.BaseURL),
		option.WithHTTPClient(e.client),
		option.WithMaxRetries(0),
		option.WithMiddleware(capBody(maxBody)),
	}
	if e.apiKey != "" {
		opts = append(opts, option.WithAPIKey(e.apiKey))
	}
	return append(opts, extra...)
}

// ErrReplyTooLarge is returned by a reply body past its byte budget.
var ErrReplyTooLarge = errors.New("reply too large")

// capBody cuts every response body after max bytes (decompressed: the
// transport has already undone any gzip).
func capBody(max int64) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil && resp.Body != nil {
			resp.Body = &cappedBody{rc: resp.Body, left: max, max: max}
		}
		return resp, err
	}
}

type cappedBody struct {
	rc        io.ReadCloser
	left, max int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: cut at %d bytes", ErrReplyTooLarge, c.max)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// newHTTPClient never follows redirects (a local server could otherwise
// forward the conversation anywhere), uses no proxy, and — unless remote
// hosts are allowed — refuses to connect to any address that is not
// loopback, whatever a name resolved to.
func newHTTPClient(allowRemote bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowRemote {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("%w: refusing to connect to %s", ErrRemoteURL, address)
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            d.DialContext,
			TLSHandshakeTimeout:    10 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConns:           4,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("%w: to %s", ErrRedirect, (&url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: req.URL.Path}).String())
		},
	}
}
