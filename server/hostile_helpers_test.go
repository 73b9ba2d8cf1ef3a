package server_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/buyertoken/buyertokentest"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/stripeadapter"
)

// countingStore is the real store counting project lookups by API key.
type countingStore struct {
	*store.DB
	apiKeyLookups atomic.Int64
}

func (s *countingStore) FindProjectByAPIKey(ctx context.Context, key string) (*billing.Project, error) {
	s.apiKeyLookups.Add(1)
	return s.DB.FindProjectByAPIKey(ctx, key)
}

// newApp builds the app over db with the test configuration and opts.
func newApp(t *testing.T, db *store.DB, opts ...envOption) (*echo.Echo, error) {
	t.Helper()
	cfg := server.Config{Store: db, Stripe: stripeadapter.New(stripeadapter.Config{}), AdminToken: adminToken}
	for _, o := range opts {
		o(&cfg)
	}
	return server.New(cfg)
}

func buyertokenSign(t testing.TB, secret string, claims map[string]any) string {
	return buyertokentest.SignHS256(t, secret, claims)
}

// withTrustedProxies makes the app believe X-Forwarded-For from cidr.
func withTrustedProxies(cidr string) envOption {
	return func(c *server.Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(cidr)} }
}

// stripeadapterConfig is the adapter configuration of tests that put a
// stand-in in front of stripe-mock: no retries, short timeouts.
func stripeadapterConfig() stripeadapter.Config {
	return stripeadapter.Config{Timeout: 5 * time.Second, MaxNetworkRetries: -1}
}
