package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing/client"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// recordingTransport remembers every request and answer it passes on.
type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []*http.Request
	resp []*http.Response
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.resp = append(r.resp, resp)
	r.mu.Unlock()
	return resp, err
}

// last returns the last request and its answer.
func (r *recordingTransport) last() (*http.Request, *http.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs[len(r.reqs)-1], r.resp[len(r.resp)-1]
}

func (r *recordingTransport) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// sdkFor returns an SDK client of the project whose calls go through the
// validating client, and the recorder of those calls.
func sdkFor(e *testEnv, p *testProject, opts ...client.Option) (*client.Client, *recordingTransport) {
	rec := &recordingTransport{next: e.HTTP.Transport}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Transport: rec})}, opts...)
	return client.New(e.URL, client.Credentials{APIKey: p.APIKey, SecretKey: p.SecretKey, TenantID: p.TenantID, ProjectID: p.ProjectID}, opts...), rec
}

// wantAPIError asserts that err is a *client.Error with the status and code,
// carrying the answer's request id.
func wantAPIError(t *testing.T, err error, rec *recordingTransport, status int, code string) *client.Error {
	t.Helper()
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %v (%T), want a *client.Error", err, err)
	}
	if apiErr.StatusCode != status || apiErr.Code != code || apiErr.Message == "" {
		t.Errorf("got %d %q %q, want %d %q with a message", apiErr.StatusCode, apiErr.Code, apiErr.Message, status, code)
	}
	if _, resp := rec.last(); apiErr.RequestID == "" || apiErr.RequestID != resp.Header.Get("X-Request-Id") {
		t.Errorf("got request id %q, want the answer's X-Request-Id %q", apiErr.RequestID, resp.Header.Get("X-Request-Id"))
	}
	return apiErr
}

func TestSDK(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		p := e.newProject(t, "")
		c, rec := sdkFor(e, p, client.WithEnvironment(client.Test), client.WithIdempotencyKey("ignored-by-new"))

		t.Run("Customers", func(t *testing.T) {
			var ids []string
			for i := range 5 {
				cus, err := c.CreateCustomer(ctx, client.CustomerRequest{
					Email: "sdk" + string(rune('a'+i)) + "@example.com", Name: "SDK", Metadata: map[string]string{"n": string(rune('0' + i))},
				}, client.WithIdempotencyKey("sdk-create-"+randHex(4)))
				if err != nil {
					t.Fatal(err)
				}
				req, _ := rec.last()
				if !strings.HasPrefix(req.Header.Get("Idempotency-Key"), "sdk-create-") || req.URL.Query().Get("environment") != "test" {
					t.Errorf("got Idempotency-Key %q and %s, want the call's key and environment=test", req.Header.Get("Idempotency-Key"), req.URL)
				}
				ids = append(ids, cus.ID)
			}
			got, err := c.GetCustomer(ctx, ids[4])
			if err != nil || got.ID != ids[4] || got.Email != "sdke@example.com" || got.Metadata["n"] != "4" {
				t.Fatalf("got %+v, %v", got, err)
			}
			if req, _ := rec.last(); req.Header.Get("Idempotency-Key") != "" {
				t.Errorf("got Idempotency-Key %q on a call without one", req.Header.Get("Idempotency-Key"))
			}
			upd, err := c.UpdateCustomer(ctx, ids[4], client.CustomerRequest{Name: "Ada"})
			if err != nil || upd.Name != "Ada" || upd.Email != "sdke@example.com" {
				t.Errorf("update: got %+v, %v; want the name changed and the email kept", upd, err)
			}

			// One page of all, in the service's order, against pages of two.
			var all []string
			for cus, err := range c.ListCustomers(ctx, client.ListCustomersParams{Limit: 100}) {
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, cus.ID)
			}
			if !slices.Equal(slices.Sorted(slices.Values(all)), slices.Sorted(slices.Values(ids))) {
				t.Fatalf("got %v, want the customers %v", all, ids)
			}
			ids = all
			before := rec.count()
			var listed []string
			for cus, err := range c.ListCustomers(ctx, client.ListCustomersParams{Limit: 2}) {
				if err != nil {
					t.Fatal(err)
				}
				listed = append(listed, cus.ID)
			}
			if !slices.Equal(listed, ids) || rec.count()-before != 3 {
				t.Errorf("got %v in %d pages, want %v in 3 pages of 2", listed, rec.count()-before, ids)
			}
			before = rec.count()
			listed = nil
			for cus := range c.ListCustomers(ctx, client.ListCustomersParams{Limit: 2}) {
				if listed = append(listed, cus.ID); len(listed) == 3 {
					break
				}
			}
			if !slices.Equal(listed, ids[:3]) || rec.count()-before != 2 {
				t.Errorf("breaking after 3: got %v in %d pages, want %v in 2", listed, rec.count()-before, ids[:3])
			}
			listed = nil
			for cus, err := range c.ListCustomers(ctx, client.ListCustomersParams{Email: "SDKB@example.com"}) {
				if err != nil {
					t.Fatal(err)
				}
				listed = append(listed, cus.Email)
			}
			if !slices.Equal(listed, []string{"sdkb@example.com"}) {
				t.Errorf("by email: got %v, want sdkb@example.com alone", listed)
			}

			if err := c.DeleteCustomer(ctx, ids[1]); err != nil {
				t.Fatal(err)
			}
			_, err = c.GetCustomer(ctx, "cus_nope")
			wantAPIError(t, err, rec, http.StatusNotFound, client.CodeNotFound)
			if !client.IsNotFound(err) {
				t.Errorf("IsNotFound(%v) = false", err)
			}
		})

		t.Run("ErrUnauthorized", func(t *testing.T) {
			bad := *p
			bad.SecretKey = "sk_wrong" + randHex(8)
			wrong, rec := sdkFor(e, &bad)
			_, err := wrong.GetCustomer(ctx, "cus_123")
			wantAPIError(t, err, rec, http.StatusUnauthorized, client.CodeUnauthorized)
			if !client.IsUnauthorized(err) {
				t.Errorf("IsUnauthorized(%v) = false", err)
			}
			for _, err := range wrong.ListCustomers(ctx, client.ListCustomersParams{}) {
				if !client.IsUnauthorized(err) {
					t.Errorf("list: got %v, want the 401 as the sequence's error", err)
				}
			}
		})

		t.Run("BuyerEndpoints", func(t *testing.T) {
			req := client.CreateCheckoutSessionRequest{Mode: client.ModePayment, SuccessURL: "https://example.com/ok",
				LineItems: []client.LineItem{{Price: "price_123", Quantity: 1}}}
			_, err := c.CreateCheckoutSession(ctx, req)
			wantAPIError(t, err, rec, http.StatusUnauthorized, client.CodeUnauthorized)

			buyer := client.WithBuyerToken(p.token(t, "user_sdk", "buyer@example.com"))
			cs, err := c.CreateCheckoutSession(ctx, req, buyer)
			if err != nil || !strings.HasPrefix(cs.ID, "cs_") || cs.URL == "" {
				t.Fatalf("got %+v, %v; want a session with a URL", cs, err)
			}
			if got, err := c.GetCheckoutSession(ctx, cs.ID, buyer); err != nil || got.ID != cs.ID {
				t.Errorf("get: got %+v, %v", got, err)
			}
			other := client.WithBuyerToken(p.token(t, "user_other", ""))
			_, err = c.GetCheckoutSession(ctx, cs.ID, other)
			wantAPIError(t, err, rec, http.StatusNotFound, client.CodeNotFound)

			_, err = c.CreatePaymentIntent(ctx, client.CreatePaymentIntentRequest{Amount: 0, Currency: "usd"}, buyer)
			if apiErr := wantAPIError(t, err, rec, http.StatusBadRequest, client.CodeInvalidRequest); apiErr.Param != "amount" {
				t.Errorf("got param %q, want amount", apiErr.Param)
			}
			pi, err := c.CreatePaymentIntent(ctx, client.CreatePaymentIntentRequest{Amount: 2999, Currency: "usd"}, buyer)
			if err != nil || pi.ClientSecret == "" || pi.PublishableKey != p.PublishableKey {
				t.Errorf("got %+v, %v; want a client secret and the project's publishable key", pi, err)
			}
		})

		t.Run("ErrLiveNotConfigured", func(t *testing.T) {
			_, err := c.CreateCustomer(ctx, client.CustomerRequest{Name: "Live"}, client.WithEnvironment(client.Live))
			wantAPIError(t, err, rec, http.StatusForbidden, client.CodeForbidden)
			if req, _ := rec.last(); req.URL.Query().Get("environment") != "live" {
				t.Errorf("got %s, want environment=live", req.URL)
			}
		})

		t.Run("Subscription", func(t *testing.T) {
			sub, err := c.GetSubscription(ctx, "nobody@example.com")
			if err != nil || sub != nil {
				t.Fatalf("got %+v, %v; want nil, nil", sub, err)
			}
			cus, err := c.CreateCustomer(ctx, client.CustomerRequest{Email: "subscriber@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			event := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				CustomerID: cus.ID, Status: "trialing", PriceID: "price_sdk",
			})
			payload, sig := stripetest.SignedPayload(t, event, p.WebhookKey, time.Time{})
			if resp, b := e.do(t, "POST", "/v1/stripe/webhook/"+p.ProjectID+"?environment=test",
				http.Header{"Stripe-Signature": {sig}}, bytes.NewReader(payload)); resp.StatusCode != http.StatusOK {
				t.Fatalf("deliver: got %d %s", resp.StatusCode, b)
			}
			sub, err = c.GetSubscription(ctx, "Subscriber@example.com")
			if err != nil || sub == nil || sub.Status != client.StatusTrialing || sub.PlanID != "price_sdk" || sub.TenantID != p.TenantID ||
				sub.CurrentPeriodEnd.Before(time.Now()) {
				t.Fatalf("got %+v, %v; want the trialing subscription", sub, err)
			}
			var types []string
			for ev, err := range c.ListWebhookEvents(ctx, client.ListWebhookEventsParams{Limit: 1}) {
				if err != nil {
					t.Fatal(err)
				}
				types = append(types, ev.Type+"/"+ev.Status)
			}
			if !slices.Equal(types, []string{"customer.subscription.updated/applied"}) {
				t.Errorf("got events %v", types)
			}
		})

		t.Run("Setup", func(t *testing.T) {
			st, err := c.GetStripeSetup(ctx)
			if err != nil || !st.Configured || st.Environment != client.Test || st.SecretKey != "****"+p.StripeKey[len(p.StripeKey)-4:] {
				t.Errorf("got %+v, %v; want the test keys, masked", st, err)
			}
			_, err = c.PutStripeSetup(ctx, client.StripeSetupRequest{SecretKey: "sk_live_123456789", PublishableKey: "pk_live_123456789"})
			if apiErr := wantAPIError(t, err, rec, http.StatusBadRequest, client.CodeInvalidRequest); apiErr.Param != "secret_key" {
				t.Errorf("got param %q, want secret_key for a live key in test", apiErr.Param)
			}
			as, err := c.PutAuthSetup(ctx, client.AuthSetupRequest{HS256Secret: p.HS256, Issuer: "https://auth.example.com/"})
			if err != nil || as.Method != "hs256" || as.Issuer != "https://auth.example.com/" {
				t.Errorf("got %+v, %v", as, err)
			}
			if req, _ := rec.last(); req.URL.RawQuery != "" {
				t.Errorf("got %s, want no environment on the auth setup", req.URL)
			}
			if got, err := c.GetAuthSetup(ctx); err != nil || got.Issuer != as.Issuer {
				t.Errorf("got %+v, %v", got, err)
			}
		})

		t.Run("Usage", func(t *testing.T) {
			if _, err := c.GetUsage(ctx, client.UsageParams{From: time.Now().AddDate(0, 0, -1), To: time.Now(), Environment: client.Test}); err != nil {
				t.Error(err)
			}
			req, _ := rec.last()
			if q := req.URL.Query(); q.Get("from") != time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly) || q.Get("environment") != "test" {
				t.Errorf("got %s", req.URL)
			}
		})

		t.Run("Sync", func(t *testing.T) {
			job, err := c.StartSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if job.ID == "" || job.Environment != client.Test || job.Origin != "api" {
				t.Fatalf("got %+v, want a test-environment job started by the API", job)
			}
			deadline := time.Now().Add(time.Minute)
			for !job.Done() && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				if job, err = c.GetSyncJob(ctx, job.ID); err != nil {
					t.Fatal(err)
				}
			}
			if job.State != "succeeded" || job.FinishedAt == nil {
				t.Errorf("got %+v, want a finished, succeeded job", job)
			}
			if _, err := c.GetSyncJob(ctx, "sync_nope"); !client.IsNotFound(err) {
				t.Errorf("unknown job: got %v, want a not-found *client.Error", err)
			}
		})
	})
}
