package server

// Micro-benchmarks of the per-request hot path that the service's own
// benchmark program (cmd/billing-bench) cannot isolate: the credential
// check, the request validation and the rate limiter's decision. They run
// only with -bench and assert no timing.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/internal/routes"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// benchStore finds one project by its API key; the benchmarks call nothing
// else of the Store.
type benchStore struct {
	Store
	project *billing.Project
}

func (s benchStore) FindProjectByAPIKey(_ context.Context, key string) (*billing.Project, error) {
	if key != s.project.APIKey {
		return nil, billing.Errorf(billing.ENOTFOUND, "Project not found.")
	}
	return s.project, nil
}

func benchNoop(echo.Context) error { return nil }

// BenchmarkCredentialCheck runs the authentication middleware on a project
// route: the four headers, the cached project and the constant-time
// comparison of the secret's hash.
func BenchmarkCredentialCheck(b *testing.B) {
	apiKey, err := secret.NewAPIKey()
	if err != nil {
		b.Fatal(err)
	}
	secretKey, err := secret.NewSecretKey()
	if err != nil {
		b.Fatal(err)
	}
	p := &billing.Project{ID: "prj_bench", TenantID: "ten_bench", APIKey: apiKey, SecretHash: secret.HashSecret(secretKey)}
	_, table := specRoutes(b)
	s := &Server{
		store:       benchStore{project: p},
		routes:      table,
		failures:    newFailureThrottle(time.Now),
		projects:    newTTLCache[string, *billing.Project](time.Minute, 100_000, time.Now),
		unknownKeys: newTTLCache[string, struct{}](time.Minute, 100_000, time.Now),
	}
	handler := s.authMiddleware(benchNoop)
	e := echo.New()
	e.IPExtractor = ipExtractor(nil)

	for _, tc := range []struct {
		name    string
		secret  string
		wantErr bool
	}{
		{"OK", secretKey, false},
		{"ErrWrongSecret", secretKey + "x", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				// The middleware hands a copy of the request on, so one
				// request serves every iteration.
				req := httptest.NewRequest(http.MethodGet, "/v1/customer/subscription?customerEmail=a@example.com", nil)
				req.Header.Set("x-api-key", apiKey)
				req.Header.Set("x-secret-key", tc.secret)
				req.Header.Set("x-tenant-id", p.TenantID)
				req.Header.Set("x-project-id", p.ID)
				rec := httptest.NewRecorder()
				c := e.NewContext(req, rec)
				for pb.Next() {
					c.Reset(req, rec)
					c.SetPath("/v1/customer/subscription")
					if err := handler(c); (err != nil) != tc.wantErr {
						b.Errorf("got error %v, want error %v", err, tc.wantErr)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRequestValidation runs the OpenAPI request validator on the
// routes of the load benchmark: a query, a create with a JSON body, and a
// 2 KB webhook event.
func BenchmarkRequestValidation(b *testing.B) {
	handler := newValidator(specRoutes(b)).middleware(benchNoop)
	e := echo.New()
	event := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{})

	for _, tc := range []struct {
		name, method, target, route string
		params                      []string // name, value
		body                        []byte
	}{
		{name: "GetSubscription", method: http.MethodGet,
			target: "/v1/customer/subscription?customerEmail=user1%40example.com", route: "/v1/customer/subscription"},
		{name: "CreateCustomer", method: http.MethodPost, target: "/v1/stripe/customers", route: "/v1/stripe/customers",
			body: []byte(`{"email":"user1@example.com","name":"User One","metadata":{"plan":"pro"}}`)},
		{name: "Webhook2KB", method: http.MethodPost, target: "/v1/stripe/webhook/prj_bench?environment=test",
			route: "/v1/stripe/webhook/:projectId", params: []string{"projectId", "prj_bench"}, body: event},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(tc.method, tc.target, nil)
				if tc.body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				rec := httptest.NewRecorder()
				c := e.NewContext(req, rec)
				for pb.Next() {
					if tc.body != nil {
						req.Body = io.NopCloser(bytes.NewReader(tc.body))
					}
					c.Reset(req, rec)
					c.SetPath(tc.route)
					if len(tc.params) == 2 {
						c.SetParamNames(tc.params[0])
						c.SetParamValues(tc.params[1])
					}
					if err := handler(c); err != nil {
						b.Errorf("validation failed: %v", err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRateLimitDecision asks the in-process limiter for a decision:
// with one key (one project hammering its budget, all goroutines on the
// same limiter) and with many keys.
func BenchmarkRateLimitDecision(b *testing.B) {
	ctx := context.Background()
	const perHour = 1_000_000_000

	b.Run("OneKey", func(b *testing.B) {
		lim := ratelimit.NewLocal(nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if d, _ := lim.Allow(ctx, "prj_bench:test:query", perHour); !d.Allowed {
					b.Error("denied")
					return
				}
			}
		})
	})
	b.Run("ManyKeys", func(b *testing.B) {
		lim := ratelimit.NewLocal(nil)
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = fmt.Sprintf("prj_%d:test:query", i)
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if d, _ := lim.Allow(ctx, keys[next.Add(1)%int64(len(keys))], perHour); !d.Allowed {
					b.Error("denied")
					return
				}
			}
		})
	})
}

// specRoutes returns openapi.yaml as the service loads it and its route
// table.
func specRoutes(tb testing.TB) (*openapi3.T, routes.Table) {
	tb.Helper()
	spec, err := LoadSpec()
	if err != nil {
		tb.Fatal(err)
	}
	table, err := routes.FromSpec(spec, newBudgetTable(nil).names())
	if err != nil {
		tb.Fatal(err)
	}
	return spec, table
}
