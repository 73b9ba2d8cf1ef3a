package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRequestValidation covers the checks every endpoint shares: bad input is
// a 400 naming the field, an oversized body a 413, and none of it a 500.
func TestRequestValidation(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		adminH := http.Header{"Authorization": {"Bearer " + adminToken}}
		big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
		cases := []struct {
			name, method, path string
			h                  http.Header
			body               string
			status             int
			param              string
		}{
			{"ErrMalformedJSON", "POST", "/v1/admin/tenants", adminH, `{"name":`, 400, ""},
			{"ErrNotAnObject", "POST", "/v1/admin/tenants", adminH, `[1,2]`, 400, ""},
			{"ErrMissingRequired", "POST", "/v1/admin/tenants", adminH, `{}`, 400, "name"},
			{"ErrWrongType", "PUT", "/v1/setup/auth", p.headers(), `{"jwks_url":42}`, 400, "jwks_url"},
			{"ErrUnknownEnvironment", "GET", "/v1/setup/stripe?environment=prod", p.headers(), "", 400, "environment"},
			{"ErrUnknownMode", "POST", "/v1/stripe/checkout/session", p.headers(), `{"mode":"rent","success_url":"https://a.example/s","line_items":[{"price":"price_1","quantity":1}]}`, 400, "mode"},
			{"ErrLimitTooLow", "GET", "/v1/stripe/customers?limit=0", p.headers(), "", 400, "limit"},
			{"ErrLimitTooHigh", "GET", "/v1/stripe/customers?limit=101", p.headers(), "", 400, "limit"},
			{"ErrLimitNotNumber", "GET", "/v1/stripe/customers?limit=ten", p.headers(), "", 400, "limit"},
			{"ErrBadEmail", "GET", "/v1/customer/subscription?customerEmail=not-an-email", p.headers(), "", 400, "customerEmail"},
			{"ErrMissingEmail", "GET", "/v1/customer/subscription", p.headers(), "", 400, "customerEmail"},
			{"ErrTooLarge", "POST", "/v1/admin/tenants", adminH, big, 413, ""},
			{"ErrNoBody", "POST", "/v1/admin/tenants", adminH, "", 400, ""},
			{"ErrUnknownRoute", "GET", "/v1/nothing-here", p.headers(), "", 404, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				h := c.h.Clone()
				if c.name == "ErrNoBody" {
					h.Set("Content-Type", "application/json")
				}
				resp, b := e.do(t, c.method, c.path, h, body)
				wantError(t, resp, b, c.status, c.param)
			})
		}
		t.Run("ErrTooLargeChunked", func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() {
				pw.Write([]byte(`{"name":"`))
				chunk := []byte(strings.Repeat("y", 64<<10))
				for i := 0; i < 20; i++ {
					if _, err := pw.Write(chunk); err != nil {
						break
					}
				}
				pw.Write([]byte(`"}`))
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", e.URL+"/v1/admin/tenants", pr)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := e.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			wantError(t, resp, b, http.StatusRequestEntityTooLarge, "")
		})
		t.Run("ErrAmountTooHighSaysWholeNumber", func(t *testing.T) {
			h := p.headers("Authorization", "Bearer "+p.token(t, "user_1", ""))
			resp, b := e.do(t, "POST", "/v1/stripe/payment/intent", h, strings.NewReader(`{"amount":100000000,"currency":"usd"}`))
			if eb := wantError(t, resp, b, http.StatusBadRequest, "amount"); eb.Message != "amount: must be at most 99999999" {
				t.Errorf("got message %q", eb.Message)
			}
		})
		t.Run("ErrSubscriptionLiveNotConfigured", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/v1/customer/subscription?customerEmail=a@example.com&environment=live", p.headers(), nil)
			if eb := wantError(t, resp, b, http.StatusForbidden, ""); eb.Message != "Stripe is not configured for live." {
				t.Errorf("got message %q", eb.Message)
			}
		})
		t.Run("RepeatedRequests", func(t *testing.T) {
			for i := 0; i < 3; i++ {
				if resp, b := e.do(t, "GET", "/v1/stripe/customers?limit=5", p.headers(), nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("valid request %d: got %d %s", i, resp.StatusCode, b)
				}
				resp, b := e.do(t, "GET", "/v1/stripe/customers?limit=500", p.headers(), nil)
				wantError(t, resp, b, http.StatusBadRequest, "limit")
			}
		})
		t.Run("RequestIDEchoed", func(t *testing.T) {
			resp, _ := e.do(t, "GET", "/healthz", http.Header{"X-Request-Id": {"trace-abc-123"}}, nil)
			if got := resp.Header.Get("X-Request-Id"); got != "trace-abc-123" {
				t.Errorf("got X-Request-Id %q, want the caller's", got)
			}
			resp, b := e.do(t, "GET", "/v1/setup/auth", nil, nil)
			if got := apiError(t, b).RequestId; got == "" || got != resp.Header.Get("X-Request-Id") {
				t.Errorf("got request_id %q, header %q", got, resp.Header.Get("X-Request-Id"))
			}
		})
		t.Run("Readiness", func(t *testing.T) {
			if resp, _ := e.do(t, "GET", "/readyz", nil, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("got %d, want 200", resp.StatusCode)
			}
		})
	})
}

func TestReadinessWithDatabaseDown(t *testing.T) {
	db := storeFor(t)
	e := newTestEnv(t, db)
	db.Close()
	resp, b := e.do(t, "GET", "/readyz", nil, nil)
	wantError(t, resp, b, http.StatusServiceUnavailable, "")
	if resp, _ := e.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: got %d, want 200 while the process is up", resp.StatusCode)
	}
}
