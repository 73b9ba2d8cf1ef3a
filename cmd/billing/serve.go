package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/internal/metrics"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/internal/usage"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/stripeadapter"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	dev := fs.Bool("dev", false, "development mode: create a local master key and admin token when none is set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	c, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	c.Dev = c.Dev || *dev
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

	verifier := buyertoken.NewVerifier(buyertoken.Options{Logger: logger})
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

	app, err := server.New(server.Config{
		Store: db,
		Stripe: stripeadapter.New(stripeadapter.Config{BaseURL: c.StripeAPIBase, Logger: logger,
			Observe: func(op string, d time.Duration, status int) {
				code := ""
				if status == 0 {
					code = "network"
				} else if status >= 400 {
					code = strconv.Itoa(status)
				}
				m.ObserveStripe(op, d, code)
			}}),
		Verifier:       verifier,
		Logger:         logger,
		AdminToken:     c.AdminToken,
		Usage:          recorder,
		Metrics:        m,
		MetricsToken:   c.MetricsToken,
		Limiter:        limiter,
		CreatesPerHour: c.CreatesPerHour,
		QueriesPerHour: c.QueriesPerHour,
		SessionKey:     ring.DeriveKey("setup-session"),
		Bus:            changes,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	logger.Info("listening", "addr", ln.Addr().String(), "startup_ms", time.Since(start).Milliseconds(), "dev", c.Dev)
	if c.Dev {
		fmt.Fprintf(stdout, "Billing service on http://%s\n", displayAddr(ln.Addr()))
		fmt.Fprintf(stdout, "Create a tenant and a project:\n"+
			"  curl -s -X POST http://%[1]s/v1/admin/tenants -H \"Authorization: Bearer $(cat .billing/admin-token)\" -H 'Content-Type: application/json' -d '{\"name\":\"Acme\"}'\n"+
			"  curl -s -X POST http://%[1]s/v1/admin/tenants/TENANT_ID/projects -H \"Authorization: Bearer $(cat .billing/admin-token)\" -H 'Content-Type: application/json' -d '{\"name\":\"My App\"}'\n",
			displayAddr(ln.Addr()))
	}

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
	if ferr := recorder.Close(sctx); ferr != nil {
		logger.Error("usage flush at shutdown failed", "error", ferr.Error())
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

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
