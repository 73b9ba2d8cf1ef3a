package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stackfordevs/billing/stripeadapter"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigHardening(t *testing.T) {
	t.Run("ErrShortAdminToken", func(t *testing.T) {
		_, err := loadConfig(env(map[string]string{"BILLING_ADMIN_TOKEN": "short-token"}))
		if err == nil || !strings.Contains(err.Error(), "BILLING_ADMIN_TOKEN") {
			t.Errorf("got %v, want an error naming BILLING_ADMIN_TOKEN", err)
		}
	})
	t.Run("TrustedProxies", func(t *testing.T) {
		c, err := loadConfig(env(map[string]string{"BILLING_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,2001:db8::/32"}))
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("2001:db8::/32")}
		if len(c.TrustedProxies) != len(want) {
			t.Fatalf("got %v, want %v", c.TrustedProxies, want)
		}
		for i := range want {
			if c.TrustedProxies[i] != want[i] {
				t.Errorf("got %v, want %v", c.TrustedProxies, want)
			}
		}
	})
	t.Run("ErrTrustedProxies", func(t *testing.T) {
		_, err := loadConfig(env(map[string]string{"BILLING_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}))
		if err == nil || !strings.Contains(err.Error(), "BILLING_TRUSTED_PROXIES") {
			t.Errorf("got %v, want an error naming BILLING_TRUSTED_PROXIES", err)
		}
	})
	t.Run("PrivateURLs", func(t *testing.T) {
		c, _ := loadConfig(env(nil))
		if c.AllowPrivateURLs {
			t.Error("private URLs allowed by default")
		}
		c, _ = loadConfig(env(map[string]string{"BILLING_ALLOW_PRIVATE_URLS": "true"}))
		if !c.AllowPrivateURLs {
			t.Error("BILLING_ALLOW_PRIVATE_URLS=true not read")
		}
	})
	t.Run("Budgets", func(t *testing.T) {
		c, err := loadConfig(env(map[string]string{"BILLING_RATE_LIMIT_CREATES_PER_HOUR": "7"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Budgets["create"] != 7 || c.Budgets["query"] != 5000 {
			t.Errorf("got %v, want create 7 and query 5000", c.Budgets)
		}
	})
}

// TestStripeCallsEndBeforeTheWriteTimeout checks that a Stripe call, all
// retries included, is bounded well within the server's write timeout, so
// that a Stripe that hangs is answered 504 rather than a dropped connection.
func TestStripeCallsEndBeforeTheWriteTimeout(t *testing.T) {
	if margin := writeTimeout - stripeadapter.DefaultCallTimeout; margin < 20*time.Second {
		t.Errorf("a Stripe call may take %v of the %v write timeout", stripeadapter.DefaultCallTimeout, writeTimeout)
	}
}
