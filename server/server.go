// Package server implements the generated OpenAPI interface as a thin
// service layer over the store and the Stripe adapter.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/admin"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/internal/intents"
	"github.com/stackfordevs/billing/internal/metrics"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/internal/routes"
	"github.com/stackfordevs/billing/internal/urlguard"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/setuppage"
	"github.com/stackfordevs/billing/stripeadapter"
)

// MinAdminTokenLength is the shortest admin token the service accepts.
const MinAdminTokenLength = 32

// Config holds the dependencies and settings of the HTTP app.
type Config struct {
	Store      Store
	Stripe     *stripeadapter.Adapter
	Verifier   *buyertoken.Verifier
	Logger     *slog.Logger
	AdminToken string
	// CacheTTL bounds how long credentials and settings read from the
	// database are reused (default 30s). Changes made through this instance
	// take effect at once.
	CacheTTL time.Duration
	// SubscriptionCacheTTL bounds how long a subscription-status answer is
	// reused (default 30s): the mirror's Config.AnswerTTL. A change to the
	// mirror invalidates it at once on this instance, and through Bus on the
	// others.
	SubscriptionCacheTTL time.Duration
	// WebhookTolerance is the largest accepted age of a Stripe signature
	// (default 5 minutes).
	WebhookTolerance time.Duration
	Now              func() time.Time
	// Bus announces changes to every cache of this instance and, when it
	// has a Redis remote, of the others; nil means a bus of this instance
	// alone.
	Bus *bus.Bus
	// Mirror, when set, is the mirror the server writes and answers
	// through; it must share Bus. Nil builds one from Store, Stripe and Bus.
	Mirror *mirror.Mirror
	// Usage counts calls per project; nil counts nothing.
	Usage UsageRecorder
	// Metrics, when set, are kept and served at /metrics.
	Metrics *metrics.Metrics
	// MetricsToken, when set, protects /metrics with a bearer token.
	MetricsToken string
	// Limiter enforces the hourly budgets; nil means an in-process limiter.
	Limiter ratelimit.Limiter
	// Budgets sets each project's and environment's calls per hour of the
	// budget classes (see BudgetClasses); a class left out keeps its
	// default.
	Budgets map[string]int
	// TrustedProxies are the addresses of the proxies whose
	// X-Forwarded-For names the client; without them the client is the
	// peer address. The failed-authentication throttle counts per client.
	TrustedProxies []netip.Prefix
	// URLs checks the URLs projects configure (JWKS); nil refuses private
	// and loopback addresses.
	URLs *urlguard.Guard
	// SessionKey derives the setup page's form tokens (32 bytes); when
	// empty the setup page is not served.
	SessionKey []byte
	// SyncJobs starts and reads the jobs that resync a project's mirror.
	SyncJobs SyncJobs
	// Routes lets the composition root add routes (docs, metrics, setup page)
	// to the same Echo instance.
	Routes []func(e *echo.Echo)
}

// Server implements gen.StrictServerInterface.
type Server struct {
	store      Store
	stripe     *stripeadapter.Adapter
	verifier   *buyertoken.Verifier
	admin      *admin.Service
	logger     *slog.Logger
	adminToken string
	now        func() time.Time
	metrics    *metrics.Metrics
	bus        *bus.Bus
	mirror     *mirror.Mirror
	jobs       SyncJobs
	routes     routes.Table
	budgets    budgetTable
	failures   *failureThrottle
	intents    *intents.Recorder
	urls       *urlguard.Guard

	projects     *ttlCache[string, *billing.Project]
	unknownKeys  *ttlCache[string, struct{}]
	projectsByID *ttlCache[string, *billing.Project]
	stripeCfg    *ttlCache[envKey, *billing.StripeSettings]
	authCfg      *ttlCache[string, *billing.AuthSettings]
}

type envKey struct {
	project string
	env     billing.Environment
}

var _ gen.StrictServerInterface = (*Server)(nil)

// New builds the HTTP app: the spec, the route table read from it (which
// credentials and budget each operation needs), the request validator, the
// authentication and the strict handlers, with the one error handler. It
// fails when an operation of the spec does not declare its security and
// budget class.
func New(cfg Config) (*echo.Echo, error) {
	if cfg.Store == nil || cfg.Stripe == nil || cfg.SyncJobs == nil {
		return nil, errors.New("server: Store, Stripe and SyncJobs are required")
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < MinAdminTokenLength {
		return nil, fmt.Errorf("server: the admin token must be at least %d characters", MinAdminTokenLength)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	if cfg.SubscriptionCacheTTL <= 0 {
		cfg.SubscriptionCacheTTL = 30 * time.Second
	}
	if cfg.WebhookTolerance <= 0 {
		cfg.WebhookTolerance = 5 * time.Minute
	}
	if cfg.Limiter == nil {
		cfg.Limiter = ratelimit.NewLocal(cfg.Now)
	}
	if cfg.URLs == nil {
		cfg.URLs = &urlguard.Guard{}
	}
	if cfg.Verifier == nil {
		cfg.Verifier = buyertoken.NewVerifier(buyertoken.Options{Now: cfg.Now, Logger: cfg.Logger, URLs: cfg.URLs})
	}
	if cfg.Bus == nil {
		cfg.Bus = bus.New(nil)
	}
	spec, err := LoadSpec()
	if err != nil {
		return nil, err
	}
	budgets := newBudgetTable(cfg.Budgets)
	table, err := routes.FromSpec(spec, budgets.names())
	if err != nil {
		return nil, err
	}

	s := &Server{
		store:        cfg.Store,
		stripe:       cfg.Stripe,
		verifier:     cfg.Verifier,
		admin:        &admin.Service{Store: cfg.Store},
		logger:       cfg.Logger,
		adminToken:   cfg.AdminToken,
		now:          cfg.Now,
		metrics:      cfg.Metrics,
		bus:          cfg.Bus,
		jobs:         cfg.SyncJobs,
		routes:       table,
		budgets:      budgets,
		failures:     newFailureThrottle(cfg.Now),
		urls:         cfg.URLs,
		projects:     newTTLCache[string, *billing.Project](cfg.CacheTTL, 100_000, cfg.Now),
		unknownKeys:  newTTLCache[string, struct{}](cfg.CacheTTL, 100_000, cfg.Now),
		projectsByID: newTTLCache[string, *billing.Project](cfg.CacheTTL, 100_000, cfg.Now),
		stripeCfg:    newTTLCache[envKey, *billing.StripeSettings](cfg.CacheTTL, 100_000, cfg.Now),
		authCfg:      newTTLCache[string, *billing.AuthSettings](cfg.CacheTTL, 100_000, cfg.Now),
		mirror:       cfg.Mirror,
	}
	s.bus.Subscribe(s.invalidate)
	if s.mirror == nil {
		s.mirror = mirror.New(mirror.Config{
			Store:            cfg.Store,
			Accounts:         mirror.NewAccounts(s.stripeSettings, cfg.Stripe),
			Bus:              cfg.Bus,
			Logger:           cfg.Logger,
			Now:              cfg.Now,
			AnswerTTL:        cfg.SubscriptionCacheTTL,
			WebhookTolerance: cfg.WebhookTolerance,
			Observe:          s.countEvent,
		})
	}
	s.intents = &intents.Recorder{Store: intentStore{Store: cfg.Store, mirror: s.mirror}, Logger: cfg.Logger}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Binder = exactBinder{}
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.Pre(requestIDMiddleware, logMiddleware(cfg.Logger, cfg.Now, cfg.Metrics), recoverMiddleware(cfg.Logger), requestLineMiddleware)
	e.Use(bodyLimitMiddleware, s.authMiddleware)
	if cfg.Usage != nil {
		e.Use(usageMiddleware(cfg.Usage))
	}
	e.Use(s.rateLimitMiddleware(cfg.Limiter))
	e.Use(newValidator(spec, table).middleware)
	gen.RegisterHandlers(e, gen.NewStrictHandler(s, nil))
	var metricsHandler http.Handler
	if cfg.Metrics != nil {
		metricsHandler = cfg.Metrics.Handler("")
	}
	if err := s.opsRoutes(e, spec, metricsHandler, cfg.MetricsToken); err != nil {
		return nil, err
	}
	if len(cfg.SessionKey) > 0 {
		err := setuppage.Register(e, setuppage.Config{
			Service: setupService{s}, Sessions: cfg.Store, Key: cfg.SessionKey, Now: cfg.Now,
		})
		if err != nil {
			return nil, err
		}
	}
	for _, add := range cfg.Routes {
		add(e)
	}
	return e, nil
}

// LoadSpec returns openapi.yaml as the service serves and enforces it,
// without its servers (requests are matched on the path alone).
func LoadSpec() (*openapi3.T, error) {
	spec, err := openapi3.NewLoader().LoadFromData(billing.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("server: load openapi.yaml: %w", err)
	}
	spec.Servers = nil
	return spec, nil
}

// ipExtractor returns how a request's client address is found: the peer
// address, or, when it is one of the trusted proxies, the address they
// name in X-Forwarded-For (the nearest one that is not a trusted proxy).
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		_, n, err := net.ParseCIDR(p.Masked().String())
		if err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func envOf(p *gen.Environment) billing.Environment {
	if p == nil || *p == "" {
		return billing.EnvTest
	}
	return billing.Environment(*p)
}

// project returns the authenticated project of the request.
func project(ctx context.Context) (*billing.Project, error) {
	p := projectFromContext(ctx)
	if p == nil {
		return nil, errBadCredentials
	}
	return p, nil
}

// stripeSettings returns the project's Stripe settings for env, cached.
// A missing configuration is EFORBIDDEN, as the seed documents.
func (s *Server) stripeSettings(ctx context.Context, projectID string, env billing.Environment) (*billing.StripeSettings, error) {
	k := envKey{projectID, env}
	if st, ok := s.stripeCfg.get(k); ok {
		return st, nil
	}
	st, err := s.store.FindStripeSettings(ctx, projectID, env)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil, billing.Errorf(billing.EFORBIDDEN, "Stripe is not configured for %s.", env)
	} else if err != nil {
		return nil, err
	}
	s.stripeCfg.put(k, st)
	return st, nil
}

// stripeClient returns the Stripe client of the project for env.
func (s *Server) stripeClient(ctx context.Context, p *billing.Project, env billing.Environment) (*stripeadapter.Client, *billing.StripeSettings, error) {
	st, err := s.stripeSettings(ctx, p.ID, env)
	if err != nil {
		return nil, nil, err
	}
	return s.stripe.Client(p.ID, env, st.SecretKey), st, nil
}

// findProject returns a project by id, cached (webhook receiver).
func (s *Server) findProject(ctx context.Context, id string) (*billing.Project, error) {
	if p, ok := s.projectsByID.get(id); ok {
		return p, nil
	}
	p, err := s.store.FindProjectByID(ctx, id)
	if err != nil {
		return nil, err
	}
	s.projectsByID.put(id, p)
	return p, nil
}

// GetHealth answers while the process is up.
func (s *Server) GetHealth(ctx context.Context, _ gen.GetHealthRequestObject) (gen.GetHealthResponseObject, error) {
	return gen.GetHealth200JSONResponse{Status: "ok"}, nil
}

// GetReady answers 200 when the database does.
func (s *Server) GetReady(ctx context.Context, _ gen.GetReadyRequestObject) (gen.GetReadyResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.Warn("readiness check failed", "error", err.Error())
		return nil, billing.Errorf(billing.EUNAVAILABLE, "Database is unreachable.")
	}
	return gen.GetReady200JSONResponse{Status: "ok"}, nil
}
