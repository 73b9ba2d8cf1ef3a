// Package server implements the generated OpenAPI interface as a thin
// service layer over the store and the Stripe adapter.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/admin"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/internal/metrics"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/stripeadapter"
)

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
	// CreatesPerHour and QueriesPerHour are each project's and environment's
	// budgets (defaults 1000 and 5000).
	CreatesPerHour int
	QueriesPerHour int
	// SessionKey signs the setup page's session cookies (32 bytes); when
	// empty the setup page is not served.
	SessionKey []byte
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

	projects     *ttlCache[string, *billing.Project]
	projectsByID *ttlCache[string, *billing.Project]
	stripeCfg    *ttlCache[envKey, *billing.StripeSettings]
	authCfg      *ttlCache[string, *billing.AuthSettings]
}

type envKey struct {
	project string
	env     billing.Environment
}

var _ gen.StrictServerInterface = (*Server)(nil)

// New builds the HTTP app: the embedded spec, the request validator, the
// authentication and the strict handlers, with the one error handler.
func New(cfg Config) (*echo.Echo, error) {
	if cfg.Store == nil || cfg.Stripe == nil {
		return nil, errors.New("server: Store and Stripe are required")
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
	if cfg.CreatesPerHour <= 0 {
		cfg.CreatesPerHour = 1000
	}
	if cfg.QueriesPerHour <= 0 {
		cfg.QueriesPerHour = 5000
	}
	if cfg.Limiter == nil {
		cfg.Limiter = ratelimit.NewLocal(cfg.Now)
	}
	if cfg.Verifier == nil {
		cfg.Verifier = buyertoken.NewVerifier(buyertoken.Options{Now: cfg.Now, Logger: cfg.Logger})
	}
	if cfg.Bus == nil {
		cfg.Bus = bus.New(nil)
	}
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, err
	}
	spec.Servers = nil

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
		projects:     newTTLCache[string, *billing.Project](cfg.CacheTTL, 100_000, cfg.Now),
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

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(requestIDMiddleware, logMiddleware(cfg.Logger, cfg.Now, cfg.Metrics), recoverMiddleware(cfg.Logger), bodyLimitMiddleware, s.authMiddleware)
	if cfg.Usage != nil {
		e.Use(usageMiddleware(cfg.Usage))
	}
	e.Use(s.rateLimitMiddleware(cfg.Limiter, cfg.CreatesPerHour, cfg.QueriesPerHour))
	e.Use(newValidator(spec).middleware)
	gen.RegisterHandlers(e, gen.NewStrictHandler(s, nil))
	var metricsHandler http.Handler
	if cfg.Metrics != nil {
		metricsHandler = cfg.Metrics.Handler(cfg.MetricsToken)
	}
	if err := s.opsRoutes(e, spec, metricsHandler); err != nil {
		return nil, err
	}
	if len(cfg.SessionKey) > 0 {
		if err := s.setupRoutes(e, cfg.SessionKey); err != nil {
			return nil, err
		}
	}
	for _, add := range cfg.Routes {
		add(e)
	}
	return e, nil
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
