package stripeadapter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter"
)

const standInKey = "sk_test_51StandInKey0000000000000000001234"

// request is one request the stand-in for Stripe saw.
type request struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
}

// standIn is an HTTP server standing in for Stripe's API.
type standIn struct {
	*httptest.Server
	mu   sync.Mutex
	seen []request
}

func newStandIn(t *testing.T, h http.HandlerFunc) *standIn {
	t.Helper()
	s := &standIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		s.seen = append(s.seen, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: r.Form})
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standIn) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.seen...)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_standin")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, status, body) }
}

func standInClient(t *testing.T, base string, cfg stripeadapter.Config) *stripeadapter.Client {
	t.Helper()
	cfg.BaseURL = base
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	return stripeadapter.New(cfg).Client("prj_standin", billing.EnvTest, standInKey)
}

const customerJSON = `{"id":"cus_standin","object":"customer","email":"ada@example.com","name":"Ada","created":1700000000,"metadata":{"user_id":"u1"}}`

func TestClient_Errors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		status         int
		body           string
		wantCode       string
		wantMsg        string
		wantParam      string
		wantStripeCode string
	}{
		{
			name: "ErrUnauthorized", status: 401,
			body:     `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****1234"}}`,
			wantCode: billing.EFORBIDDEN, wantMsg: "Stripe rejected this project's key.",
		},
		{
			name: "ErrPermission", status: 403,
			body:     `{"error":{"type":"invalid_request_error","code":"secret_key_required","message":"The provided key 'rk_test_****abcd' does not have the required permissions."}}`,
			wantCode: billing.EFORBIDDEN, wantMsg: "Stripe denied this project's key access to the request.", wantStripeCode: "secret_key_required",
		},
		{
			name: "ErrCardDeclined", status: 402,
			body:     `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","param":""}}`,
			wantCode: billing.EINVALID, wantMsg: "Your card has insufficient funds.", wantStripeCode: "card_declined",
		},
		{
			name: "ErrInvalidRequest", status: 400,
			body:     `{"error":{"type":"invalid_request_error","code":"email_invalid","message":"Invalid email address: not-an-email","param":"email"}}`,
			wantCode: billing.EINVALID, wantMsg: "Invalid email address: not-an-email", wantParam: "email", wantStripeCode: "email_invalid",
		},
		{
			name: "ErrNotFound", status: 404,
			body:     `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_nope'","param":"id"}}`,
			wantCode: billing.ENOTFOUND, wantMsg: "No such customer: 'cus_nope'", wantParam: "id", wantStripeCode: "resource_missing",
		},
		{
			name: "ErrRateLimited", status: 429,
			body:     `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}`,
			wantCode: billing.ERATELIMITED, wantMsg: "Stripe rate limited the request.", wantStripeCode: "rate_limit",
		},
		{
			name: "ErrStripeDown", status: 500,
			body:     `{"error":{"type":"api_error","message":"An unknown error occurred"}}`,
			wantCode: billing.ESTRIPE, wantMsg: "Stripe is unavailable.",
		},
		{
			name: "ErrNotStripeJSON", status: 502,
			body:     `<html>Bad gateway</html>`,
			wantCode: billing.ESTRIPE, wantMsg: "Stripe is unavailable.",
		},
		{
			name: "ErrIdempotencyConflict", status: 409,
			body:     `{"error":{"type":"idempotency_error","message":"There is currently another in-progress request using this Idempotent Key."}}`,
			wantCode: billing.ECONFLICT, wantMsg: "There is currently another in-progress request using this Idempotent Key.",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			srv := newStandIn(t, respond(tc.status, tc.body))
			c := standInClient(t, srv.URL, stripeadapter.Config{
				MaxNetworkRetries: -1,
				Logger:            slog.New(slog.NewTextHandler(&logs, nil)),
			})
			email := "ada@example.com"
			_, err := c.CreateCustomer(ctx, billing.CustomerParams{Email: &email}, "")
			var be *billing.Error
			if !errors.As(err, &be) {
				t.Fatalf("got %T %v, want a *billing.Error", err, err)
			}
			if be.Code != tc.wantCode || be.Message != tc.wantMsg || be.Param != tc.wantParam || be.StripeCode != tc.wantStripeCode {
				t.Errorf("got %+v\nwant code=%s message=%q param=%q stripe_code=%q", be, tc.wantCode, tc.wantMsg, tc.wantParam, tc.wantStripeCode)
			}
			for _, s := range []string{err.Error(), logs.String()} {
				if strings.Contains(s, "sk_test_") || strings.Contains(s, "rk_test_") || strings.Contains(s, standInKey) {
					t.Errorf("a key leaked: %s", s)
				}
			}
			if tc.status == 401 && !strings.Contains(logs.String(), "Invalid API Key provided: [redacted]") {
				t.Errorf("logs: got %q, want Stripe's error with the key redacted", logs.String())
			}
			if got := srv.requests()[0].Header.Get("Authorization"); got != "Bearer "+standInKey {
				t.Errorf("Authorization: got %q, want the project's key", got)
			}
		})
	}
}

func TestClient_Retries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("PostSameIdempotencyKey", func(t *testing.T) {
		t.Parallel()
		// stripe-go retries a POST on 503 (not on 500, which Stripe's
		// idempotency layer would answer the same way again).
		srv := newStandIn(t, respond(503, `{"error":{"type":"api_error","message":"Service unavailable"}}`))
		c := standInClient(t, srv.URL, stripeadapter.Config{MaxNetworkRetries: 2})
		_, err := c.CreateCustomer(ctx, billing.CustomerParams{}, "idem-retry-1")
		if got := billing.ErrorCode(err); got != billing.ESTRIPE {
			t.Fatalf("got %q (%v), want %q", got, err, billing.ESTRIPE)
		}
		reqs := srv.requests()
		if len(reqs) != 3 {
			t.Fatalf("got %d requests, want 3", len(reqs))
		}
		for i, r := range reqs {
			if got := r.Header.Get("Idempotency-Key"); got != "idem-retry-1" {
				t.Errorf("request %d: Idempotency-Key got %q, want %q", i, got, "idem-retry-1")
			}
		}
	})

	t.Run("PostGeneratedKeyKeptAcrossRetries", func(t *testing.T) {
		t.Parallel()
		srv := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Stripe-Should-Retry", "true")
			writeJSON(w, 500, `{"error":{"type":"api_error","message":"boom"}}`)
		})
		c := standInClient(t, srv.URL, stripeadapter.Config{MaxNetworkRetries: 2})
		_, _ = c.CreateCustomer(ctx, billing.CustomerParams{}, "")
		reqs := srv.requests()
		if len(reqs) != 3 {
			t.Fatalf("got %d requests, want 3", len(reqs))
		}
		key := reqs[0].Header.Get("Idempotency-Key")
		if !strings.HasPrefix(key, "billing-") {
			t.Errorf("Idempotency-Key: got %q, want a generated billing- key", key)
		}
		for i, r := range reqs {
			if got := r.Header.Get("Idempotency-Key"); got != key {
				t.Errorf("request %d: Idempotency-Key got %q, want %q", i, got, key)
			}
		}
	})

	t.Run("Get500Retried", func(t *testing.T) {
		t.Parallel()
		srv := newStandIn(t, respond(500, `{"error":{"type":"api_error","message":"boom"}}`))
		c := standInClient(t, srv.URL, stripeadapter.Config{MaxNetworkRetries: 2})
		_, err := c.GetCustomer(ctx, "cus_1")
		if got := billing.ErrorCode(err); got != billing.ESTRIPE {
			t.Errorf("got %q, want %q", got, billing.ESTRIPE)
		}
		if n := len(srv.requests()); n != 3 {
			t.Errorf("got %d requests, want 3", n)
		}
	})

	t.Run("NoRetries", func(t *testing.T) {
		t.Parallel()
		srv := newStandIn(t, respond(503, `{"error":{"type":"api_error","message":"boom"}}`))
		c := standInClient(t, srv.URL, stripeadapter.Config{MaxNetworkRetries: -1})
		_, _ = c.GetCustomer(ctx, "cus_1")
		if n := len(srv.requests()); n != 1 {
			t.Errorf("got %d requests, want 1", n)
		}
	})
}

func TestClient_NetworkFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ErrConnectionRefused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		c := standInClient(t, "http://"+addr, stripeadapter.Config{MaxNetworkRetries: -1})
		_, err = c.GetCustomer(ctx, "cus_1")
		if got, msg := billing.ErrorCode(err), billing.ErrorMessage(err); got != billing.ESTRIPE || msg != "Stripe is unavailable." {
			t.Errorf("got %q %q, want %q", got, msg, billing.ESTRIPE)
		}
	})

	hang := func(t *testing.T) *standIn {
		release := make(chan struct{})
		srv := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		t.Cleanup(func() { close(release) })
		return srv
	}

	t.Run("ErrClientTimeout", func(t *testing.T) {
		t.Parallel()
		srv := hang(t)
		c := standInClient(t, srv.URL, stripeadapter.Config{Timeout: 300 * time.Millisecond, MaxNetworkRetries: -1})
		start := time.Now()
		_, err := c.CreateCustomer(ctx, billing.CustomerParams{}, "")
		if got, msg := billing.ErrorCode(err), billing.ErrorMessage(err); got != billing.ETIMEOUT || msg != "Stripe timed out." {
			t.Errorf("got %q %q (%v), want %q", got, msg, err, billing.ETIMEOUT)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v, want about 300ms", d)
		}
	})

	t.Run("ErrContextDeadline", func(t *testing.T) {
		t.Parallel()
		srv := hang(t)
		c := standInClient(t, srv.URL, stripeadapter.Config{})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.GetSubscription(ctx, "sub_1")
		if got := billing.ErrorCode(err); got != billing.ETIMEOUT {
			t.Errorf("got %q (%v), want %q", got, err, billing.ETIMEOUT)
		}
		// A deadline is not retried.
		if n := len(srv.requests()); n != 1 {
			t.Errorf("got %d requests, want 1", n)
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		t.Parallel()
		srv := hang(t)
		c := standInClient(t, srv.URL, stripeadapter.Config{})
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := c.GetCustomer(ctx, "cus_1")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

// pagedHandler serves n objects of a list endpoint in pages, as Stripe does.
func pagedHandler(t *testing.T, n int, object func(i int) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.Form.Get("limit"))
		if limit <= 0 {
			limit = 10
		}
		start := 0
		if after := r.Form.Get("starting_after"); after != "" {
			i, err := strconv.Atoi(after[strings.LastIndex(after, "_")+1:])
			if err != nil {
				t.Errorf("starting_after: got %q", after)
			}
			start = i + 1
		}
		end := min(start+limit, n)
		var data []string
		for i := start; i < end; i++ {
			data = append(data, object(i))
		}
		writeJSON(w, 200, fmt.Sprintf(`{"object":"list","url":"%s","has_more":%t,"data":[%s]}`,
			r.URL.Path, end < n, strings.Join(data, ",")))
	}
}

func TestClient_Paging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Customers", func(t *testing.T) {
		t.Parallel()
		srv := newStandIn(t, pagedHandler(t, 257, func(i int) string {
			return fmt.Sprintf(`{"id":"cus_%d","object":"customer","email":"c%d@example.com","created":1700000000}`, i, i)
		}))
		c := standInClient(t, srv.URL, stripeadapter.Config{})
		seen := map[string]bool{}
		err := c.ListCustomers(ctx, func(cu billing.Customer) error {
			if cu.Email == "" || cu.ProjectID != "prj_standin" {
				t.Errorf("got %+v", cu)
			}
			seen[cu.ID] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 257 {
			t.Errorf("got %d customers, want 257", len(seen))
		}
		reqs := srv.requests()
		if len(reqs) != 3 {
			t.Fatalf("got %d requests, want 3", len(reqs))
		}
		for i, want := range []string{"", "cus_99", "cus_199"} {
			if got := reqs[i].Form.Get("starting_after"); got != want {
				t.Errorf("page %d: starting_after got %q, want %q", i, got, want)
			}
			if got := reqs[i].Form.Get("limit"); got != "100" {
				t.Errorf("page %d: limit got %q, want 100", i, got)
			}
		}
	})

	t.Run("Subscriptions", func(t *testing.T) {
		t.Parallel()
		srv := newStandIn(t, pagedHandler(t, 150, func(i int) string {
			// The 2025 shape: the period end is on the items only.
			return fmt.Sprintf(`{"id":"sub_%d","object":"subscription","status":"active","customer":"cus_%d",
				"items":{"data":[{"id":"si_%d","current_period_end":1800000000,"price":{"id":"price_1","product":"prod_1"}}]}}`, i, i, i)
		}))
		c := standInClient(t, srv.URL, stripeadapter.Config{})
		n := 0
		err := c.ListSubscriptions(ctx, func(s billing.Subscription) error {
			if s.CurrentPeriodEnd.Unix() != 1800000000 || s.PriceID != "price_1" {
				t.Errorf("got %+v", s)
			}
			n++
			return nil
		})
		if err != nil || n != 150 {
			t.Errorf("got %d, %v; want 150 subscriptions", n, err)
		}
		if got := srv.requests()[0].Form.Get("status"); got != "all" {
			t.Errorf("status: got %q, want all", got)
		}
	})

	t.Run("RateLimited", func(t *testing.T) {
		t.Parallel()
		srv := newStandIn(t, pagedHandler(t, 250, func(i int) string {
			return fmt.Sprintf(`{"id":"prod_%d","object":"product","name":"P%d","active":true}`, i, i)
		}))
		c := standInClient(t, srv.URL, stripeadapter.Config{ListRateLimit: 5})
		start := time.Now()
		if err := c.ListProducts(ctx, func(billing.Product) error { return nil }); err != nil {
			t.Fatal(err)
		}
		// Three pages at 5 per second: the 2nd and 3rd wait 200ms each.
		if d := time.Since(start); d < 350*time.Millisecond {
			t.Errorf("took %v, want at least 400ms", d)
		}
	})

	t.Run("ErrMidWalk", func(t *testing.T) {
		t.Parallel()
		ok := pagedHandler(t, 250, func(i int) string {
			return fmt.Sprintf(`{"id":"price_%d","object":"price","product":"prod_1"}`, i)
		})
		srv := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Form.Get("starting_after") != "" {
				writeJSON(w, 429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow down"}}`)
				return
			}
			ok(w, r)
		})
		c := standInClient(t, srv.URL, stripeadapter.Config{MaxNetworkRetries: -1})
		n := 0
		err := c.ListPrices(ctx, func(billing.Price) error { n++; return nil })
		if got := billing.ErrorCode(err); got != billing.ERATELIMITED || n != 100 {
			t.Errorf("got %q after %d prices, want %q after 100", got, n, billing.ERATELIMITED)
		}
	})
}

func TestClient_IdempotencyKey(t *testing.T) {
	t.Parallel()
	srv := newStandIn(t, respond(200, customerJSON))
	c := standInClient(t, srv.URL, stripeadapter.Config{})
	ctx := context.Background()

	if _, err := c.CreateCustomer(ctx, billing.CustomerParams{}, "caller-key-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCustomer(ctx, billing.CustomerParams{}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCustomer(ctx, billing.CustomerParams{}, ""); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if got := reqs[0].Header.Get("Idempotency-Key"); got != "caller-key-1" {
		t.Errorf("caller's key: got %q, want %q", got, "caller-key-1")
	}
	k1, k2 := reqs[1].Header.Get("Idempotency-Key"), reqs[2].Header.Get("Idempotency-Key")
	if !strings.HasPrefix(k1, "billing-") || !strings.HasPrefix(k2, "billing-") || k1 == k2 {
		t.Errorf("generated keys: got %q and %q, want two different billing- keys", k1, k2)
	}

	_, err := c.CreateCustomer(ctx, billing.CustomerParams{}, strings.Repeat("k", 256))
	var be *billing.Error
	if !errors.As(err, &be) || be.Code != billing.EINVALID || be.Param != "Idempotency-Key" {
		t.Errorf("too long a key: got %v, want EINVALID on Idempotency-Key", err)
	}
}

func TestClient_Mapping(t *testing.T) {
	t.Parallel()
	// Stripe's clock, behind the local one: reads are stamped with it.
	stripeNow := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", stripeNow.Format(http.TimeFormat))
		switch {
		case r.URL.Path == "/v1/customers/cus_gone":
			writeJSON(w, 200, `{"id":"cus_gone","object":"customer","deleted":true}`)
		case r.URL.Path == "/v1/customers/cus_standin":
			writeJSON(w, 200, customerJSON)
		case r.URL.Path == "/v1/subscriptions/sub_2025":
			// The 2025-03-31 shape, canceled through the portal (cancel_at,
			// not cancel_at_period_end), answered without a Date header.
			w.Header()["Date"] = nil
			writeJSON(w, 200, `{"id":"sub_2025","object":"subscription","status":"active","created":1700000000,
				"start_date":1700000000,"cancel_at_period_end":false,"cancel_at":1702592000,"canceled_at":1701000000,
				"ended_at":null,"customer":"cus_1","metadata":{},
				"items":{"object":"list","data":[
					{"id":"si_a","quantity":1,"current_period_start":1699999000,"current_period_end":1702000000,
						"price":{"id":"price_a","object":"price","product":"prod_a","recurring":{"interval":"week","interval_count":2}}},
					{"id":"si_b","quantity":5,"current_period_start":1700000000,"current_period_end":1702592000,
						"price":{"id":"price_b","object":"price","product":"prod_b","recurring":{"interval":"month","interval_count":1}}}]}}`)
		case strings.HasPrefix(r.URL.Path, "/v1/subscriptions/"):
			// The 2023-10-16 shape, with an expanded customer.
			writeJSON(w, 200, `{"id":"sub_1","object":"subscription","status":"past_due","created":1700000000,
				"current_period_start":1700000000,"current_period_end":1702592000,"cancel_at_period_end":true,"trial_end":null,
				"customer":{"id":"cus_1","object":"customer","email":"ada@example.com"},
				"metadata":{"user_id":"u1"},
				"items":{"object":"list","data":[{"id":"si_1","quantity":3,
					"plan":{"id":"price_1","object":"plan","interval":"year","interval_count":1,"product":"prod_1"},
					"price":{"id":"price_1","object":"price","nickname":"Gold","product":"prod_1","recurring":{"interval":"year","interval_count":1}}}]}}`)
		case r.URL.Path == "/v1/products/prod_1":
			writeJSON(w, 200, `{"id":"prod_1","object":"product","name":"Gold plan","active":true,"created":1690000000,"updated":1695000000}`)
		default:
			writeJSON(w, 404, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such thing"}}`)
		}
	})
	c := standInClient(t, srv.URL, stripeadapter.Config{})
	ctx := context.Background()

	gone, err := c.GetCustomer(ctx, "cus_gone")
	if err != nil || !gone.Deleted || gone.ID != "cus_gone" {
		t.Errorf("deleted customer: got %+v, %v", gone, err)
	}
	cu, err := c.GetCustomer(ctx, "cus_standin")
	if err != nil || cu.Email != "ada@example.com" || cu.UserID != "u1" || !cu.Created.Equal(time.Unix(1700000000, 0)) || !cu.EventAt.Equal(stripeNow) {
		t.Errorf("customer: got %+v, %v", cu, err)
	}
	s, err := c.GetSubscription(ctx, "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != "past_due" || !s.CurrentPeriodEnd.Equal(time.Unix(1702592000, 0)) || !s.CurrentPeriodStart.Equal(time.Unix(1700000000, 0)) ||
		!s.CancelAtPeriodEnd || s.CancelAt != nil || !s.EndsAtPeriodEnd() ||
		s.CustomerID != "cus_1" || s.Email != "ada@example.com" || s.UserID != "u1" || s.PriceID != "price_1" ||
		s.ProductID != "prod_1" || s.PlanName != "Gold" || s.TrialEnd != nil || !s.EventAt.Equal(stripeNow) || s.Items[0].Quantity != 3 ||
		s.Items[0].Interval != "year" || s.Items[0].IntervalCount != 1 {
		t.Errorf("subscription: got %+v", s)
	}

	t.Run("NewerShapeCancelAt", func(t *testing.T) {
		s, err := c.GetSubscription(ctx, "sub_2025")
		if err != nil {
			t.Fatal(err)
		}
		at := func(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
		if s.CancelAtPeriodEnd || s.CancelAt == nil || !s.CancelAt.Equal(at(1702592000)) || !s.EndsAtPeriodEnd() ||
			s.CanceledAt == nil || !s.CanceledAt.Equal(at(1701000000)) || s.EndedAt != nil {
			t.Errorf("cancellation: got cancel_at_period_end %t, cancel_at %v, canceled_at %v, ended_at %v",
				s.CancelAtPeriodEnd, s.CancelAt, s.CanceledAt, s.EndedAt)
		}
		// The period is the item's that ends last.
		if !s.CurrentPeriodStart.Equal(at(1700000000)) || !s.CurrentPeriodEnd.Equal(at(1702592000)) {
			t.Errorf("period: got %v to %v, want si_b's", s.CurrentPeriodStart, s.CurrentPeriodEnd)
		}
		want := []billing.SubscriptionItem{
			{ID: "si_a", PriceID: "price_a", ProductID: "prod_a", Quantity: 1, Interval: "week", IntervalCount: 2,
				CurrentPeriodStart: 1699999000, CurrentPeriodEnd: 1702000000},
			{ID: "si_b", PriceID: "price_b", ProductID: "prod_b", Quantity: 5, Interval: "month", IntervalCount: 1,
				CurrentPeriodStart: 1700000000, CurrentPeriodEnd: 1702592000},
		}
		if !slices.Equal(s.Items, want) {
			t.Errorf("items: got %+v, want %+v", s.Items, want)
		}
		// Without a Date header, the object's own latest time stamps it.
		if !s.EventAt.Equal(at(1701000000)) {
			t.Errorf("stamp: got %v, want canceled_at", s.EventAt)
		}
	})
	t.Run("Product", func(t *testing.T) {
		p, err := c.GetProduct(ctx, "prod_1")
		if err != nil || p.Name != "Gold plan" || !p.Active || p.ProjectID != "prj_standin" || !p.EventAt.Equal(stripeNow) {
			t.Errorf("got %+v, %v", p, err)
		}
		if _, err := c.GetProduct(ctx, "prod_unknown"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("unknown: got %v, want ENOTFOUND", err)
		}
	})
	if _, err := c.DeleteCustomer(ctx, "cus_unknown"); billing.ErrorCode(err) != billing.ENOTFOUND {
		t.Errorf("delete unknown: got %v, want ENOTFOUND", err)
	}
}

func TestAdapter_ClientCache(t *testing.T) {
	t.Parallel()
	a := stripeadapter.New(stripeadapter.Config{Logger: quietLogger()})
	c1 := a.Client("prj_1", billing.EnvTest, "sk_test_one")
	if c2 := a.Client("prj_1", billing.EnvTest, "sk_test_one"); c2 != c1 {
		t.Errorf("same key: got a new client, want the cached one")
	}
	c3 := a.Client("prj_1", billing.EnvTest, "sk_test_two")
	if c3 == c1 {
		t.Errorf("new key: got the cached client, want a rebuilt one")
	}
	if c4 := a.Client("prj_1", billing.EnvTest, "sk_test_two"); c4 != c3 {
		t.Errorf("new key again: got another client, want the rebuilt one")
	}
	if a.Client("prj_1", billing.EnvLive, "sk_test_two") == c3 || a.Client("prj_2", billing.EnvTest, "sk_test_two") == c3 {
		t.Errorf("other environment or project: got the same client")
	}
	a.Forget("prj_1", billing.EnvTest)
	if a.Client("prj_1", billing.EnvTest, "sk_test_two") == c3 {
		t.Errorf("after Forget: got the cached client")
	}
}

func TestAdapter_ClientCacheConcurrent(t *testing.T) {
	t.Parallel()
	a := stripeadapter.New(stripeadapter.Config{Logger: quietLogger()})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			key := fmt.Sprintf("sk_test_%d", i%4)
			for range 100 {
				if a.Client(fmt.Sprintf("prj_%d", i%8), billing.EnvTest, key) == nil {
					t.Error("got nil")
				}
			}
		})
	}
	wg.Wait()
}

func TestClient_KeyUsedPerProject(t *testing.T) {
	t.Parallel()
	srv := newStandIn(t, respond(200, customerJSON))
	a := stripeadapter.New(stripeadapter.Config{BaseURL: srv.URL, Logger: quietLogger()})
	ctx := context.Background()
	for _, key := range []string{"sk_test_aaa", "sk_test_bbb"} {
		if _, err := a.Client("prj_"+key, billing.EnvTest, key).GetCustomer(ctx, "cus_standin"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.requests()
	if reqs[0].Header.Get("Authorization") != "Bearer sk_test_aaa" || reqs[1].Header.Get("Authorization") != "Bearer sk_test_bbb" {
		t.Errorf("got %q and %q", reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"))
	}
}
