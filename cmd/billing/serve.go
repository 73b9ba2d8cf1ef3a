package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/internal/jobs"
	"github.com/stackfordevs/billing/internal/metrics"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/internal/urlguard"
	"github.com/stackfordevs/billing/internal/usage"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/stripeadapter"
)

func runServe(ctx context.Context, inv *invocation) error {
	dev := inv.flags.Bool("dev", false, "development mode: create a local master key and admin token when none is set")
	if err := inv.parse(); err != nil {
		return err
	}
	start := time.Now()
	stdout, stderr := inv.stdout, inv.stderr
	c, err := loadConfig(inv.getenv)
	if err != nil {
		return err
	}
	c.Dev = c.Dev || *dev
	c.AllowPrivateURLs = c.AllowPrivateURLs || c.Dev
	logger := newLogger(stderr, c.LogLevel)
	if c.Dev && c.AdminToken == "" {
		if c.AdminToken, err = devAdminToken(); err != nil {
			return err
		}
		logger.Info("development mode: admin token is in .billing/admin-token")
	}
	db, err := openStore(ctx, c, logger, c.AutoMigrate)
	if err != nil {
		return err
	}
	defer db.Close()
	if c.EventRetention > 0 {
		stop := startPruner(ctx, db, c.EventRetention, logger)
		defer stop()
	}

	urls := &urlguard.Guard{AllowPrivate: c.AllowPrivateURLs}
	verifier := buyertoken.NewVerifier(buyertoken.Options{Logger: logger, URLs: urls})
	defer verifier.Close()
	recorder := usage.NewRecorder(db, usage.Options{Logger: logger, Interval: c.UsageFlush})
	m := metrics.New()
	m.ObserveUsageLag(recorder.Lag)

	var limiter ratelimit.Limiter = ratelimit.NewLocal(nil)
	rdb, err := redisClient(c)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
		rl := ratelimit.NewRedis(rdb, logger)
		rl.OnError = m.RateLimiterFails.Inc
		limiter = rl
	}
	changes, closeBus := newBus(rdb, c.RedisPrefix, logger)
	defer closeBus()
	ring, err := c.keyring()
	if err != nil {
		return err
	}

	stripe := stripeadapter.New(stripeadapter.Config{BaseURL: c.StripeAPIBase, Logger: logger,
		Observe: func(op string, d time.Duration, status int) {
			code := ""
			if status == 0 {
				code = "network"
			} else if status >= 400 {
				code = strconv.Itoa(status)
			}
			m.ObserveStripe(op, d, code)
		}})
	// Resyncs write through a mirror of their own on the same bus, so that
	// what they change reaches every cache.
	resyncs := mirror.New(mirror.Config{Store: db, Bus: changes, Logger: logger,
		Accounts: mirror.NewAccounts(db.FindStripeSettings, stripe)})
	syncJobs := jobs.New(jobs.Options{Store: db, Resyncer: resyncs, Logger: logger, ReconcileEvery: c.ReconcileInterval})

	app, err := server.New(server.Config{
		Store:          db,
		Stripe:         stripe,
		SyncJobs:       syncJobs,
		Verifier:       verifier,
		Logger:         logger,
		AdminToken:     c.AdminToken,
		Usage:          recorder,
		Metrics:        m,
		MetricsToken:   c.MetricsToken,
		Limiter:        limiter,
		Budgets:        c.Budgets,
		TrustedProxies: c.TrustedProxies,
		URLs:           urls,
		SessionKey:     ring.DeriveKey("setup-session"),
		Bus:            changes,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("BILLING_ADDR: cannot listen on %s: %w", c.Addr, err)
	}
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
	}
	logger.Info("listening", "addr", ln.Addr().String(), "startup_ms", time.Since(start).Milliseconds(), "dev", c.Dev)
	if inv.listening != nil {
		go inv.listening("http://" + displayAddr(ln.Addr()))
	} else if c.Dev {
		fmt.Fprintf(stdout, "Billing service on http://%s\n", displayAddr(ln.Addr()))
		fmt.Fprintf(stdout, "Create a tenant and a project:\n"+
			"  curl -s -X POST http://%[1]s/v1/admin/tenants -H \"Authorization: Bearer $(cat .billing/admin-token)\" -H 'Content-Type: application/json' -d '{\"name\":\"Acme\"}'\n"+
			"  curl -s -X POST http://%[1]s/v1/admin/tenants/TENANT_ID/projects -H \"Authorization: Bearer $(cat .billing/admin-token)\" -H 'Content-Type: application/json' -d '{\"name\":\"My App\"}'\n",
			displayAddr(ln.Addr()))
	}

	// Sync jobs run until shutdown, then go back to the queue for another
	// instance (or the next start) to resume.
	jobsCtx, stopJobs := context.WithCancel(context.Background())
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		syncJobs.Run(jobsCtx)
	}()
	defer func() {
		stopJobs()
		<-jobsDone
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		recorder.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	stopJobs()
	<-jobsDone
	if ferr := recorder.Close(sctx); ferr != nil {
		logger.Error("usage flush at shutdown failed", "error", ferr.Error())
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startPruner deletes expired webhook payloads in the background until
// ctx ends or the returned function is called; that function returns once
// the pruner has stopped, so that the database can be closed after it.
func startPruner(ctx context.Context, db *store.DB, retention time.Duration, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.RunPruner(ctx, store.PrunerConfig{Retention: retention, Logger: logger})
	}()
	return func() {
		cancel()
		<-done
	}
}

// writeTimeout bounds writing a response. A Stripe call ends well within
// it (stripeadapter.DefaultCallTimeout), so that a Stripe that hangs is
// answered 504 rather than a dropped connection.
const writeTimeout = 60 * time.Second

// redisClient returns the client of BILLING_REDIS_URL, or nil without one.
func redisClient(c config) (*redis.Client, error) {
	if c.RedisURL == "" {
		return nil, nil
	}
	rdb, err := ratelimit.NewRedisClient(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("BILLING_REDIS_URL: %w", err)
	}
	return rdb, nil
}

// newBus returns the bus that announces changes to this process's caches
// and, with Redis, to every instance's, on the channel of prefix
// (BILLING_REDIS_PREFIX).
func newBus(rdb *redis.Client, prefix string, logger *slog.Logger) (*bus.Bus, func()) {
	if rdb == nil {
		return bus.New(nil), func() {}
	}
	remote := bus.NewRedis(rdb, bus.RedisOptions{Prefix: prefix, Logger: logger})
	return bus.New(remote), func() { remote.Close() }
}

func displayAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && (t.IP == nil || t.IP.IsUnspecified()) {
		return fmt.Sprintf("localhost:%d", t.Port)
	}
	return a.String()
}
