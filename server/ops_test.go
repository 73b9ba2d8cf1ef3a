package server_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/metrics"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/internal/usage"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// countingStripe is a proxy in front of stripe-mock that counts requests.
type countingStripe struct {
	URL string
	n   atomic.Int64
}

func newCountingStripe(t *testing.T, target string) *countingStripe {
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	cs := &countingStripe{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.n.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cs.URL = srv.URL
	return cs
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func createCustomer(t *testing.T, e *testEnv, p *testProject, env string) (*http.Response, []byte) {
	t.Helper()
	return e.do(t, "POST", "/v1/stripe/customers?environment="+env, p.headers(), strings.NewReader(`{"email":"rl@example.com"}`))
}

func TestRateLimit(t *testing.T) {
	clk := &clock{t: time.Now()}
	var stripe *countingStripe
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		other := e.newProject(t, "")
		before := stripe.n.Load()
		for i := 0; i < 3; i++ {
			resp, b := createCustomer(t, e, p, "test")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("call %d: got %d %s, want 200", i+1, resp.StatusCode, b)
			}
			if got, want := resp.Header.Get("X-RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
				t.Errorf("call %d: got remaining %q, want %q", i+1, got, want)
			}
			if resp.Header.Get("X-RateLimit-Limit") != "3" || resp.Header.Get("X-RateLimit-Reset") == "" {
				t.Errorf("got limit headers %v", resp.Header)
			}
		}
		sent := stripe.n.Load() - before
		resp, b := createCustomer(t, e, p, "test")
		eb := wantError(t, resp, b, http.StatusTooManyRequests, "")
		if eb.Code != gen.ErrorBodyCodeRateLimited || resp.Header.Get("Retry-After") == "" {
			t.Errorf("got %+v Retry-After=%q, want rate_limited with Retry-After", eb, resp.Header.Get("Retry-After"))
		}
		if got := stripe.n.Load() - before; got != sent {
			t.Errorf("a rejected call reached Stripe: %d requests, want %d", got, sent)
		}
		t.Run("QueriesHaveTheirOwnBudget", func(t *testing.T) {
			resp, _ := e.do(t, "GET", "/v1/stripe/customers", p.headers(), nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Limit") != "5" {
				t.Errorf("got %d limit %q, want 200 with limit 5", resp.StatusCode, resp.Header.Get("X-RateLimit-Limit"))
			}
		})
		t.Run("PerEnvironmentAndProject", func(t *testing.T) {
			if resp, b := createCustomer(t, e, other, "test"); resp.StatusCode != http.StatusOK {
				t.Errorf("other project: got %d %s, want 200", resp.StatusCode, b)
			}
			if resp, _ := createCustomer(t, e, p, "live"); resp.StatusCode == http.StatusTooManyRequests {
				t.Error("live shares the test budget")
			}
		})
		t.Run("NotLimited", func(t *testing.T) {
			for _, path := range []string{"/healthz", "/readyz"} {
				resp, _ := e.do(t, "GET", path, p.headers(), nil)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Limit") != "" {
					t.Errorf("%s: got %d with limit header %q, want 200 without", path, resp.StatusCode, resp.Header.Get("X-RateLimit-Limit"))
				}
			}
		})
		t.Run("Refills", func(t *testing.T) {
			clk.Add(21 * time.Minute) // one create per 20 minutes at 3 per hour
			if resp, b := createCustomer(t, e, p, "test"); resp.StatusCode != http.StatusOK {
				t.Errorf("after refill: got %d %s, want 200", resp.StatusCode, b)
			}
		})
	}, func(c *serverConfig) {
		stripe = newCountingStripe(t, stripeURLOf(c))
		c.Stripe = stripeadapter.New(stripeadapter.Config{BaseURL: stripe.URL})
		c.Budgets = map[string]int{"create": 3, "query": 5}
		c.Limiter = ratelimit.NewLocal(clk.Now)
	})
}

// stripeURLOf returns the stripe-mock the harness started for this env.
func stripeURLOf(c *serverConfig) string { return c.Stripe.BaseURL() }

// redisURL returns BILLING_TEST_REDIS_URL, skipping when it is unset. When it
// is set and the server is down, the test fails.
func redisURL(t *testing.T) string {
	u := os.Getenv("BILLING_TEST_REDIS_URL")
	if u == "" {
		t.Skip("BILLING_TEST_REDIS_URL is not set")
	}
	rdb, err := ratelimit.NewRedisClient(u)
	if err != nil {
		t.Fatalf("BILLING_TEST_REDIS_URL: %v", err)
	}
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at BILLING_TEST_REDIS_URL is unreachable: %v", err)
	}
	return u
}

func TestRateLimitSharedThroughRedis(t *testing.T) {
	u := redisURL(t)
	rdb, _ := ratelimit.NewRedisClient(u)
	t.Cleanup(func() { rdb.Close() })
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		// A second instance on the same database and Redis.
		e2 := newTestEnv(t, e.DB, func(c *serverConfig) {
			c.Budgets = map[string]int{"create": 4}
			c.Limiter = ratelimit.NewRedis(rdb, nil)
		})
		var ok, limited int
		for i := 0; i < 6; i++ {
			inst := e
			if i%2 == 1 {
				inst = e2
			}
			resp, _ := createCustomer(t, inst, p, "test")
			switch resp.StatusCode {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				limited++
			default:
				t.Fatalf("got %d", resp.StatusCode)
			}
		}
		if ok != 4 || limited != 2 {
			t.Errorf("got %d served and %d limited across two instances, want 4 and 2", ok, limited)
		}
	}, func(c *serverConfig) {
		c.Budgets = map[string]int{"create": 4}
		c.Limiter = ratelimit.NewRedis(rdb, nil)
	})
}

func TestRateLimitRedisDownFailsOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb, _ := ratelimit.NewRedisClient("redis://" + addr + "/0")
	t.Cleanup(func() { rdb.Close() })
	m := metrics.New()
	rl := ratelimit.NewRedis(rdb, nil)
	rl.OnError = m.RateLimiterFails.Inc
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		for i := 0; i < 3; i++ {
			if resp, b := createCustomer(t, e, p, "test"); resp.StatusCode != http.StatusOK {
				t.Fatalf("with Redis down: got %d %s, want 200", resp.StatusCode, b)
			}
		}
		if rl.Failures.Load() == 0 {
			t.Error("the Redis failure was not counted")
		}
		resp, b := e.do(t, "GET", "/metrics", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "billing_rate_limiter_errors_total") {
			t.Errorf("metrics do not show the limiter failure: %d", resp.StatusCode)
		}
	}, func(c *serverConfig) {
		c.Limiter = rl
		c.Metrics = m
	})
}

func TestMetricsDocsAndSpec(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		e.do(t, "GET", "/v1/stripe/customers", p.headers(), nil)
		createCustomer(t, e, p, "test")
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{}), gen.WebhookAckStatusApplied)
		e.postWebhook(webhookPath(p.ProjectID, "test"), []byte(`{"id":"evt_x","type":"x"}`), "t=1,v1=00")
		t.Run("MetricsNeedToken", func(t *testing.T) {
			resp, _ := e.do(t, "GET", "/metrics", nil, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("got %d, want 401", resp.StatusCode)
			}
		})
		t.Run("Metrics", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/metrics", http.Header{"Authorization": {"Bearer metrics-token"}}, nil)
			text := string(b)
			for _, want := range []string{
				`billing_http_requests_total{method="GET",route="/v1/stripe/customers",status="200"}`,
				"billing_http_request_duration_seconds_bucket",
				`billing_stripe_request_duration_seconds_count{operation="POST /v1/customers"}`,
				"billing_usage_flush_lag_seconds",
				`billing_webhook_events_total{outcome="applied",type="customer.subscription.updated"} 1`,
				`billing_webhook_events_total{outcome="received",type="customer.subscription.updated"} 1`,
				`billing_webhook_events_total{outcome="rejected",type="unknown"} 1`,
				"go_goroutines",
			} {
				if resp.StatusCode != http.StatusOK || !strings.Contains(text, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
		})
		t.Run("OpenAPI", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/openapi.json", nil, nil)
			var doc struct {
				OpenAPI string                     `json:"openapi"`
				Paths   map[string]json.RawMessage `json:"paths"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &doc) != nil || doc.Paths["/v1/stripe/checkout/session"] == nil {
				t.Errorf("got %d, openapi %q with %d paths", resp.StatusCode, doc.OpenAPI, len(doc.Paths))
			}
			resp, b = e.do(t, "GET", "/openapi.yaml", nil, nil)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "openapi: 3.0") {
				t.Errorf("openapi.yaml: got %d", resp.StatusCode)
			}
		})
		t.Run("SwaggerUI", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/docs/", nil, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "/openapi.json") {
				t.Errorf("got %d, want the Swagger UI page over /openapi.json", resp.StatusCode)
			}
			resp, _ = e.do(t, "GET", "/docs/swagger-ui-bundle.js", nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("embedded asset: got %d, want 200", resp.StatusCode)
			}
		})
	}, func(c *serverConfig) {
		m := metrics.New()
		m.ObserveUsageLag(func() time.Duration { return 0 })
		c.Metrics, c.MetricsToken = m, "metrics-token"
		c.Stripe = stripeadapter.New(stripeadapter.Config{BaseURL: stripeURLOf(c), Observe: func(op string, d time.Duration, status int) {
			m.ObserveStripe(op, d, "")
		}})
	})
}

func TestUsage(t *testing.T) {
	var rec *usage.Recorder
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		p := e.newProject(t, "")
		other := e.newProject(t, "")
		for i := 0; i < 3; i++ {
			e.do(t, "GET", "/v1/stripe/customers", p.headers(), nil)
		}
		e.do(t, "GET", "/v1/stripe/customers?environment=live", p.headers(), nil)
		e.do(t, "GET", "/v1/stripe/customers?limit=0", p.headers(), nil)
		e.do(t, "GET", "/v1/stripe/customers", other.headers(), nil)
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		resp, err := e.API.GetUsageWithResponse(ctx, &gen.GetUsageParams{}, p.creds)
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("got %v %s", err, body(resp))
		}
		got := map[string]int64{}
		for _, u := range resp.JSON200.Data {
			if u.ProjectId != p.ProjectID {
				t.Errorf("usage of another project shown: %+v", u)
			}
			got[string(u.Environment)+" "+u.Endpoint+" "+string(u.StatusClass)] += u.Count
		}
		if got["test GET /v1/stripe/customers 2xx"] != 3 || got["live GET /v1/stripe/customers 4xx"] != 1 || got["test GET /v1/stripe/customers 4xx"] != 1 {
			t.Errorf("got usage %v", got)
		}
		live := gen.EnvironmentFilterLive
		lr, _ := e.API.GetUsageWithResponse(ctx, &gen.GetUsageParams{Environment: &live}, p.creds)
		if lr.JSON200 == nil || len(lr.JSON200.Data) != 1 {
			t.Errorf("live filter: got %s", body(lr))
		}
		ar, _ := e.API.AdminGetUsageWithResponse(ctx, &gen.AdminGetUsageParams{}, admin)
		projects := map[string]bool{}
		for _, u := range ar.JSON200.Data {
			projects[u.ProjectId] = true
		}
		if !projects[p.ProjectID] || !projects[other.ProjectID] {
			t.Errorf("admin usage: got projects %v", projects)
		}
		resp2, b := e.do(t, "GET", "/v1/usage?from=2026-02-01&to=2026-01-01", p.headers(), nil)
		wantError(t, resp2, b, http.StatusBadRequest, "to")
		resp2, b = e.do(t, "GET", "/v1/usage?from=yesterday", p.headers(), nil)
		wantError(t, resp2, b, http.StatusBadRequest, "from")
	}, func(c *serverConfig) {
		rec = usage.NewRecorder(c.Store.(usage.Store), usage.Options{Interval: time.Hour})
		t.Cleanup(func() { rec.Close(context.Background()) })
		c.Usage = rec
	})
}
