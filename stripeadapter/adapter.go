// Package stripeadapter is the service's only door to Stripe. It builds
// stripe-go clients per project and environment, turns the service's requests
// into Stripe calls, translates Stripe's failures into *billing.Error, and
// verifies and parses webhook events into changes of the local mirror.
//
// No stripe-go type leaves this package.
package stripeadapter

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"
	"golang.org/x/time/rate"

	"github.com/stackfordevs/billing"
)

// Defaults of Config. One call, retries included, ends within
// DefaultCallTimeout: well before an HTTP server's write timeout of a
// minute, so that a Stripe that hangs is answered as a 504.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultCallTimeout         = 25 * time.Second
	DefaultMaxNetworkRetries   = 2
	DefaultMaxIdleConnsPerHost = 256
	DefaultListRateLimit       = 20
)

// Config configures an Adapter. Zero fields take their defaults.
type Config struct {
	// BaseURL is the Stripe API base URL, such as a stripe-mock's
	// http://127.0.0.1:12111. Empty means Stripe's API.
	BaseURL string
	// Timeout bounds one HTTP request to Stripe (default 10s). stripe-go
	// retries a request that timed out; CallTimeout bounds the call whole.
	Timeout time.Duration
	// CallTimeout bounds one call of a Client other than a list walk,
	// stripe-go's retries and their waits included (default 25s; negative
	// means no bound but the caller's context). A call that outlasts it is
	// ETIMEOUT.
	CallTimeout time.Duration
	// MaxNetworkRetries is how often stripe-go retries a request that failed
	// for a reason worth retrying (default 2; negative disables retries).
	MaxNetworkRetries int64
	// MaxIdleConnsPerHost sizes the keep-alive pool (default 256).
	MaxIdleConnsPerHost int
	// ListRateLimit caps the page requests per second of each project's and
	// environment's list walks (ListCustomers and the others), so that a sync
	// stays below Stripe's rate limit (default 20; negative means no limit).
	ListRateLimit float64
	// Logger receives stripe-go's error logs (default slog.Default()).
	Logger *slog.Logger
	// Observe, when set, is told of every HTTP request made to Stripe
	// (retries included): the operation ("POST /v1/customers/{id}"), its
	// duration, and the HTTP status (0 when the request failed outright).
	Observe func(operation string, d time.Duration, status int)
}

// Adapter builds and caches Stripe clients. It is safe for concurrent use.
type Adapter struct {
	baseURL     string
	callTimeout time.Duration
	backends    *stripe.Backends
	listRate    rate.Limit

	mu      sync.RWMutex
	clients map[clientKey]*cachedClient
}

type clientKey struct {
	projectID string
	env       billing.Environment
}

type cachedClient struct {
	keyHash [sha256.Size]byte
	client  *Client
}

// New returns an Adapter with one shared HTTP client for all projects.
func New(cfg Config) *Adapter {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxNetworkRetries == 0 {
		cfg.MaxNetworkRetries = DefaultMaxNetworkRetries
	} else if cfg.MaxNetworkRetries < 0 {
		cfg.MaxNetworkRetries = 0
	}
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.ListRateLimit == 0 {
		cfg.ListRateLimit = DefaultListRateLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	listRate := rate.Inf
	if cfg.ListRateLimit > 0 {
		listRate = rate.Limit(cfg.ListRateLimit)
	}

	httpClient := newHTTPClient(cfg.Timeout, cfg.MaxIdleConnsPerHost)
	if cfg.Observe != nil {
		httpClient.Transport = &observingTransport{next: httpClient.Transport, observe: cfg.Observe}
	}
	logger := &leveledLogger{log: cfg.Logger}
	backend := func(t stripe.SupportedBackend) stripe.Backend {
		bc := &stripe.BackendConfig{
			HTTPClient:        httpClient,
			LeveledLogger:     logger,
			MaxNetworkRetries: stripe.Int64(cfg.MaxNetworkRetries),
			// Telemetry would send one project's request ids to Stripe in
			// another project's requests: the backends are shared.
			EnableTelemetry: stripe.Bool(false),
		}
		if cfg.BaseURL != "" {
			bc.URL = stripe.String(cfg.BaseURL)
		}
		return stripe.GetBackendWithConfig(t, bc)
	}

	return &Adapter{
		baseURL:     cfg.BaseURL,
		callTimeout: cfg.CallTimeout,
		backends: &stripe.Backends{
			API:     backend(stripe.APIBackend),
			Connect: backend(stripe.ConnectBackend),
			Uploads: backend(stripe.UploadsBackend),
		},
		listRate: listRate,
		clients:  make(map[clientKey]*cachedClient),
	}
}

// BaseURL returns the Stripe API base URL the adapter calls ("" for Stripe's).
func (a *Adapter) BaseURL() string { return a.baseURL }

// newHTTPClient returns the one HTTP client all Stripe calls share.
func newHTTPClient(timeout time.Duration, idlePerHost int) *http.Client {
	dialTimeout := min(10*time.Second, timeout)
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   dialTimeout,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          4 * idlePerHost,
			MaxIdleConnsPerHost:   idlePerHost,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   dialTimeout,
			ResponseHeaderTimeout: timeout,
			ExpectContinueTimeout: time.Second,
		},
	}
}

// Client returns the Stripe client of a project's environment. Clients are
// cached per project and environment and rebuilt when the secret key changes.
func (a *Adapter) Client(projectID string, env billing.Environment, secretKey string) *Client {
	k := clientKey{projectID: projectID, env: env}
	h := sha256.Sum256([]byte(secretKey))

	a.mu.RLock()
	c, ok := a.clients[k]
	a.mu.RUnlock()
	if ok && c.keyHash == h {
		return c.client
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[k]; ok && c.keyHash == h {
		return c.client
	}
	client := &Client{
		api:         stripeclient.New(secretKey, a.backends),
		projectID:   projectID,
		env:         env,
		callTimeout: a.callTimeout,
		lists:       &limitedBackend{Backend: a.backends.API, limit: rate.NewLimiter(a.listRate, 1)},
	}
	if len(a.clients) >= maxClients {
		// Far more projects than one instance serves at once: start over
		// rather than grow; clients are cheap to build again.
		clear(a.clients)
	}
	a.clients[k] = &cachedClient{keyHash: h, client: client}
	return client
}

// maxClients bounds the cached clients (one per project and environment).
const maxClients = 100_000

// Forget drops the cached client of a project's environment, for example
// after its Stripe settings were removed.
func (a *Adapter) Forget(projectID string, env billing.Environment) {
	a.mu.Lock()
	delete(a.clients, clientKey{projectID: projectID, env: env})
	a.mu.Unlock()
}

// leveledLogger passes stripe-go's error logs to slog, at warning level
// (what Stripe answered is the caller's concern, and is counted in
// metrics) and with keys and emails redacted, and drops the rest:
// stripe-go's debug level logs whole response bodies.
type leveledLogger struct {
	log *slog.Logger
}

func (l *leveledLogger) Debugf(string, ...any) {}
func (l *leveledLogger) Infof(string, ...any)  {}
func (l *leveledLogger) Warnf(string, ...any)  {}

func (l *leveledLogger) Errorf(format string, v ...any) {
	l.log.Warn(redactLog(fmt.Sprintf(format, v...)), slog.String("component", "stripe"))
}

// keyPattern matches Stripe keys and webhook secrets, whole or partly
// masked; emailPattern matches email addresses.
var (
	keyPattern   = regexp.MustCompile(`\b(?:sk|rk|pk)_(?:test|live)_[0-9A-Za-z*]+|\bwhsec_[0-9A-Za-z*]+`)
	emailPattern = regexp.MustCompile(`[0-9A-Za-z._%+-]+@[0-9A-Za-z.-]+\.[A-Za-z]{2,}`)
)

// redact replaces anything that looks like a Stripe key in s.
func redact(s string) string {
	return keyPattern.ReplaceAllString(s, "[redacted]")
}

// redactLog replaces keys and emails in s, for a log line.
func redactLog(s string) string {
	return emailPattern.ReplaceAllString(redact(s), "[redacted]")
}

// observingTransport reports each request to Stripe with its duration.
type observingTransport struct {
	next    http.RoundTripper
	observe func(operation string, d time.Duration, status int)
}

func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	t.observe(req.Method+" "+Operation(req.URL.Path), time.Since(start), status)
	return resp, err
}

// Operation turns a Stripe API path into a label without object ids, such
// as /v1/customers/{id}.
func Operation(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if isObjectID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

// isObjectID reports whether a path segment looks like a Stripe object id
// (prefix_ and a body with digits or capitals), not a resource name such as
// billing_portal.
func isObjectID(s string) bool {
	i := strings.IndexByte(s, '_')
	if i <= 0 || i == len(s)-1 {
		return false
	}
	for _, r := range s[i+1:] {
		if (r >= '0' && r <= '9') || (r >= 'A' && r <= 'Z') {
			return true
		}
	}
	return false
}
