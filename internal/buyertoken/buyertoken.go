// Package buyertoken verifies the JWTs that identify a project's end users
// (buyers). Each project says how its tokens are verified, with keys from a
// JWKS URL (RS256 or ES256) or with an HS256 shared secret, and optionally
// which issuer and audience it accepts.
package buyertoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/urlguard"
)

// Defaults of Options.
const (
	DefaultHTTPTimeout         = 5 * time.Second
	DefaultLeeway              = 30 * time.Second
	DefaultJWKSRefreshInterval = time.Hour
)

const (
	// unknownKIDRefreshEvery limits how often a token with a key id the
	// cached key set does not hold makes the verifier fetch a JWKS again, so
	// tokens with made-up key ids cannot turn it into a request amplifier.
	unknownKIDRefreshEvery = time.Minute
	// fetchRetryAfter is how long a failed first fetch of a JWKS is
	// remembered before the next token tries again.
	fetchRetryAfter = 10 * time.Second
	// maxJWKSBytes bounds the size of a JWKS document; a real one is a few
	// kilobytes, and the URL is chosen by a project, not by the operator.
	maxJWKSBytes = 1 << 20
	// maxIssuedAhead is how far in the future a token's iat may be.
	maxIssuedAhead = time.Minute
	// idleJWKS is how long a key set no token used is kept (with its
	// refresher) when the project that used it was not seen again.
	idleJWKS = 24 * time.Hour
)

// Signing algorithms accepted in each mode. A JWKS holds public keys, so
// HMAC is never accepted with it (that would be algorithm confusion), and
// "none" is never accepted at all.
var (
	jwksMethods = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}
	hmacMethods = []string{jwt.SigningMethodHS256.Alg()}
)

// Claims are the verified claims of a buyer token the service uses.
type Claims struct {
	// Subject is the buyer's user id, the token's "sub". It is never empty.
	Subject string
	// Email is the token's "email" claim, or "".
	Email string
	// EmailVerified is the token's "email_verified" claim (a boolean, or
	// the string "true" or "false"), or nil when the token has none.
	EmailVerified *bool
}

// EmailOwned reports whether the token's email may establish ownership:
// it has one, and does not say it is unverified.
func (c Claims) EmailOwned() bool {
	return c.Email != "" && (c.EmailVerified == nil || *c.EmailVerified)
}

// Options configure a Verifier. The zero value is usable.
type Options struct {
	// HTTPClient fetches JWKS documents. It defaults to a client of its own
	// with a 5 second timeout whose connections URLs guards. Its Timeout,
	// when set, also bounds each fetch.
	HTTPClient *http.Client
	// URLs guards the default client's connections: a project's JWKS URL
	// may not reach loopback, private, link-local or metadata addresses,
	// after resolution and on redirects. Nil refuses them all.
	URLs *urlguard.Guard
	// Leeway is the clock skew allowed when checking exp and nbf. Zero means
	// 30 seconds; a negative value means none.
	Leeway time.Duration
	// Now returns the current time. It defaults to time.Now.
	Now func() time.Time
	// JWKSRefreshInterval is how often a cached JWKS is fetched again in the
	// background. It defaults to one hour.
	JWKSRefreshInterval time.Duration
	// Logger receives warnings about JWKS fetches. It defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Verifier verifies buyer tokens for any project. It caches one key set per
// JWKS URL in use, fetched on first use and refreshed in the background and
// when a token names a key id the set does not hold; a key set no project
// uses any more (each project uses the URL of its latest token) is dropped
// with its refresher. A Verifier is safe for concurrent use; Close stops its
// background work.
type Verifier struct {
	client          *http.Client
	ownsClient      bool
	fetchTimeout    time.Duration
	leeway          time.Duration
	now             func() time.Time
	refreshInterval time.Duration
	logger          *slog.Logger

	ctx    context.Context // ends background refreshes on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // first fetches in flight

	mu        sync.Mutex
	jwks      map[string]*jwksEntry // by JWKS URL
	byProject map[string]string     // the JWKS URL each project last used
	closed    bool
}

// jwksEntry is the cached key set of one JWKS URL.
type jwksEntry struct {
	// ready is closed when the first fetch has finished; kf, err and
	// failedAt are written before and only read after.
	ready    chan struct{}
	kf       keyfunc.Keyfunc
	err      error
	failedAt time.Time
	// ctx ends the fetch and the background refresh of this key set; stop
	// cancels it.
	ctx  context.Context
	stop context.CancelFunc
	// users are the projects whose latest token named this URL; lastUsed
	// is when a token last did. Both are guarded by the Verifier's mu.
	users    map[string]struct{}
	lastUsed time.Time
}

// NewVerifier returns a Verifier with opts applied over the defaults.
func NewVerifier(opts Options) *Verifier {
	v := &Verifier{
		fetchTimeout:    DefaultHTTPTimeout,
		leeway:          opts.Leeway,
		now:             opts.Now,
		refreshInterval: opts.JWKSRefreshInterval,
		logger:          opts.Logger,
		jwks:            make(map[string]*jwksEntry),
		byProject:       make(map[string]string),
	}
	if opts.HTTPClient == nil {
		guard := opts.URLs
		if guard == nil {
			guard = &urlguard.Guard{}
		}
		v.client = guard.Client(DefaultHTTPTimeout)
		v.ownsClient = true
	} else {
		c := *opts.HTTPClient
		v.client = &c
		if c.Timeout > 0 {
			v.fetchTimeout = c.Timeout
		}
	}
	v.client.Transport = limitedTransport{base: v.client.Transport}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.refreshInterval <= 0 {
		v.refreshInterval = DefaultJWKSRefreshInterval
	}
	if v.logger == nil {
		v.logger = slog.Default()
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	return v
}

// Close stops the background refreshes and any fetch in flight and waits for
// the fetches to end. Verify fails with JWKS settings after Close; HS256
// verification keeps working.
func (v *Verifier) Close() error {
	v.mu.Lock()
	v.closed = true
	entries := v.jwks
	v.jwks = make(map[string]*jwksEntry)
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait() // after which no fetch writes an entry
	for _, e := range entries {
		e.stop()
	}
	if v.ownsClient {
		v.client.CloseIdleConnections()
	}
	return nil
}

// Verify checks token against a project's settings and returns its claims.
// It returns EFORBIDDEN when the project has not configured verification, and
// EUNAUTHORIZED when the token is missing, malformed, badly signed, signed
// with an algorithm the settings do not allow, expired, not yet valid, for
// another issuer or audience, without a subject, or when its keys cannot be
// fetched. A JWKS URL takes precedence over an HS256 secret when both are set.
func (v *Verifier) Verify(ctx context.Context, settings billing.AuthSettings, token string) (Claims, error) {
	if settings.JWKSURL == "" && settings.HS256Secret == "" {
		return Claims{}, billing.Errorf(billing.EFORBIDDEN,
			"Buyer token verification is not configured for this project; configure it with PUT /v1/setup/auth.")
	}
	if token == "" {
		return Claims{}, unauthorized("token is missing")
	}

	var methods []string
	var keyFunc jwt.Keyfunc
	if settings.JWKSURL != "" {
		methods = jwksMethods
		url := settings.JWKSURL
		// The key set is looked up only once the token has parsed and its
		// algorithm is allowed, so garbage never causes a fetch.
		keyFunc = func(t *jwt.Token) (any, error) {
			kf, err := v.keyfunc(ctx, settings.ProjectID, url)
			if err != nil {
				return nil, err
			}
			key, err := kf.KeyfuncCtx(ctx)(t)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errSigningKey, err)
			}
			return key, nil
		}
	} else {
		methods = hmacMethods
		secret := []byte(settings.HS256Secret)
		keyFunc = func(*jwt.Token) (any, error) { return secret, nil }
		v.release(settings.ProjectID)
	}

	opts := make([]jwt.ParserOption, 0, 6)
	opts = append(opts, jwt.WithValidMethods(methods), jwt.WithLeeway(v.leeway), jwt.WithTimeFunc(v.now),
		jwt.WithExpirationRequired())
	if settings.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(settings.Issuer))
	}
	if settings.Audience != "" {
		opts = append(opts, jwt.WithAudience(settings.Audience))
	}

	var claims tokenClaims
	parsed, err := jwt.NewParser(opts...).ParseWithClaims(token, &claims, keyFunc)
	if err != nil {
		return Claims{}, v.translate(ctx, err, parsed, methods, settings, &claims)
	}
	if claims.Subject == "" {
		return Claims{}, unauthorized("token has no subject")
	}
	if claims.IssuedAt != nil && claims.IssuedAt.After(v.now().Add(maxIssuedAhead)) {
		return Claims{}, unauthorized("token is issued in the future")
	}
	out := Claims{Subject: claims.Subject, Email: claims.Email}
	if len(claims.EmailVerified) > 0 && string(claims.EmailVerified) != "null" {
		verified := string(claims.EmailVerified) == "true" || string(claims.EmailVerified) == `"true"`
		out.EmailVerified = &verified
	}
	return out, nil
}

// tokenClaims is the JSON shape of a buyer token's claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	Email string `json:"email,omitempty"`
	// EmailVerified is kept raw: identity providers send a boolean or a
	// string.
	EmailVerified json.RawMessage `json:"email_verified,omitempty"`
}

// keyfunc returns the cached key set of url for a project, fetching it
// first if needed. The fetch runs in the background bounded by the
// verifier's timeout, shared by concurrent callers; each caller waits no
// longer than its ctx.
func (v *Verifier) keyfunc(ctx context.Context, projectID, url string) (keyfunc.Keyfunc, error) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil, billing.Errorf(billing.EUNAVAILABLE, "Buyer token verification is shutting down.")
	}
	now := v.now()
	e := v.jwks[url]
	if e != nil && e.failed() && now.Sub(e.failedAt) >= fetchRetryAfter {
		v.drop(url, e)
		e = nil
	}
	if e == nil {
		v.sweep(now)
		e = &jwksEntry{ready: make(chan struct{}), users: make(map[string]struct{})}
		e.ctx, e.stop = context.WithCancel(v.ctx)
		v.jwks[url] = e
		v.wg.Add(1)
		go v.fetch(url, e)
	}
	v.use(projectID, url, e, now)
	v.mu.Unlock()

	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, keysUnavailable()
	}
	if e.err != nil {
		return nil, keysUnavailable()
	}
	return e.kf, nil
}

// use records that the project's latest token names url, releasing the URL
// it named before. The caller holds v.mu.
func (v *Verifier) use(projectID, url string, e *jwksEntry, now time.Time) {
	e.lastUsed = now
	if old, ok := v.byProject[projectID]; ok && old != url {
		v.releaseLocked(projectID)
	}
	v.byProject[projectID] = url
	e.users[projectID] = struct{}{}
}

// release records that the project no longer uses a JWKS URL.
func (v *Verifier) release(projectID string) {
	v.mu.Lock()
	v.releaseLocked(projectID)
	v.mu.Unlock()
}

// releaseLocked drops the project's use of its URL, and the URL's key set
// when no project uses it. The caller holds v.mu.
func (v *Verifier) releaseLocked(projectID string) {
	url, ok := v.byProject[projectID]
	if !ok {
		return
	}
	delete(v.byProject, projectID)
	if e := v.jwks[url]; e != nil {
		delete(e.users, projectID)
		if len(e.users) == 0 {
			v.drop(url, e)
		}
	}
}

// drop forgets a key set and stops its fetch and refresher. The caller
// holds v.mu.
func (v *Verifier) drop(url string, e *jwksEntry) {
	if v.jwks[url] == e {
		delete(v.jwks, url)
	}
	for p := range e.users {
		if v.byProject[p] == url {
			delete(v.byProject, p)
		}
	}
	e.stop()
}

// sweep drops key sets no token used for idleJWKS, whose projects were
// not seen since. The caller holds v.mu.
func (v *Verifier) sweep(now time.Time) {
	for url, e := range v.jwks {
		if now.Sub(e.lastUsed) > idleJWKS {
			v.drop(url, e)
		}
	}
}

// KeySets returns how many JWKS key sets are cached, each with its
// refresher.
func (v *Verifier) KeySets() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.jwks)
}

// fetch makes the first fetch of url and fills e.
func (v *Verifier) fetch(url string, e *jwksEntry) {
	defer v.wg.Done()
	defer close(e.ready)

	noErrorReturnFirstHTTPReq := false
	kf, err := keyfunc.NewDefaultOverrideCtx(e.ctx, []string{url}, keyfunc.Override{
		Client:                    v.client,
		HTTPTimeout:               v.fetchTimeout,
		NoErrorReturnFirstHTTPReq: &noErrorReturnFirstHTTPReq,
		// RateLimitWaitMax also bounds the refresh made for an unknown kid;
		// when the limiter cannot allow one in time the lookup fails at once.
		RateLimitWaitMax:  v.fetchTimeout,
		RefreshInterval:   v.refreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKIDRefreshEvery), 1),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				v.logger.WarnContext(ctx, "buyer token keys could not be refreshed", "jwks_url", u, "error", err)
			}
		},
	})
	if err != nil {
		e.stop() // ends the refresh goroutine the failed storage started
		v.logger.Warn("buyer token keys could not be fetched", "jwks_url", url, "error", err)
		e.err = err
		e.failedAt = v.now()
		return
	}
	e.kf = kf
}

// failed reports whether the first fetch has finished and failed. The caller
// holds v.mu.
func (e *jwksEntry) failed() bool {
	select {
	case <-e.ready:
		return e.err != nil
	default:
		return false
	}
}

// errSigningKey marks a failure to find the key a JWKS-signed token names.
var errSigningKey = errors.New("signing key lookup failed")

// translate turns a parse failure into an EUNAUTHORIZED *billing.Error with a
// caller-safe message. parsed and claims are what the parser read before it
// failed.
func (v *Verifier) translate(ctx context.Context, err error, parsed *jwt.Token, methods []string,
	settings billing.AuthSettings, claims *tokenClaims,
) error {
	var be *billing.Error
	if errors.As(err, &be) {
		return be
	}
	v.logger.DebugContext(ctx, "buyer token rejected", "error", err)
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized("token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if parsed != nil && parsed.Method != nil && !slices.Contains(methods, parsed.Method.Alg()) {
			return unauthorized("signing algorithm is not accepted")
		}
		return unauthorized("signature is invalid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized("token is expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized("token is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return unauthorized("issuer is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthorized("audience is not accepted")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case claims.ExpiresAt == nil:
			return unauthorized("token has no expiry (exp)")
		case settings.Issuer != "" && claims.Issuer == "":
			return unauthorized("issuer is missing")
		case settings.Audience != "" && len(claims.Audience) == 0:
			return unauthorized("audience is missing")
		}
		return unauthorized("a required claim is missing")
	case errors.Is(err, errSigningKey):
		return unauthorized("signing key is not known")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return unauthorized("token could not be verified")
	default:
		return unauthorized("token is invalid")
	}
}

func unauthorized(reason string) *billing.Error {
	return billing.Errorf(billing.EUNAUTHORIZED, "Invalid buyer token: %s.", reason)
}

func keysUnavailable() *billing.Error {
	return billing.Errorf(billing.EUNAUTHORIZED,
		"Buyer token could not be verified: the project's token signing keys could not be fetched from its JWKS URL.")
}

// limitedTransport cuts every response body at maxJWKSBytes, so a JWKS URL
// cannot make the verifier read an unbounded document.
type limitedTransport struct {
	base http.RoundTripper // nil means http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxJWKSBytes), Closer: resp.Body}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t limitedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type limitedBody struct {
	io.Reader
	io.Closer
}
