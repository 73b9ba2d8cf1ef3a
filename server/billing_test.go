package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// stripeSpy stands in for Stripe in front of stripe-mock. It records every
// request, answers it when a handler set for the request's key answers, and
// otherwise passes it on to stripe-mock (which validates it against
// Stripe's spec). It passes requests on with a test key of its own, so that
// calls made with a live key get stripe-mock's answers too; the key the
// service sent is what it records.
type stripeSpy struct {
	*httptest.Server
	mu      sync.Mutex
	target  *url.URL
	seen    []stripeCall
	answers map[string]spyAnswer
}

// spyAnswer answers a request itself and returns true, or returns false to
// let stripe-mock answer.
type spyAnswer func(w http.ResponseWriter, r *http.Request, form url.Values) bool

// stripeCall is one request the spy saw.
type stripeCall struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
}

// Key returns the Stripe key the call was made with.
func (c stripeCall) Key() string {
	return strings.TrimPrefix(c.Header.Get("Authorization"), "Bearer ")
}

func newStripeSpy(t *testing.T) *stripeSpy {
	t.Helper()
	s := &stripeSpy{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		s.mu.Lock()
		target := s.target
		s.mu.Unlock()
		r.SetURL(target)
		r.Out.Header.Set("Authorization", "Bearer sk_test_forwardedbythespy")
	}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		if r.Method == http.MethodGet || r.Method == http.MethodDelete {
			form = r.URL.Query()
		}
		call := stripeCall{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form}
		s.mu.Lock()
		s.seen = append(s.seen, call)
		answer, target := s.answers[call.Key()], s.target
		s.mu.Unlock()
		if answer != nil && answer(w, r, form) {
			return
		}
		if target == nil {
			http.Error(w, "the spy has no stripe-mock to pass this to", http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// option points the app at the spy.
func (s *stripeSpy) option(cfg stripeadapter.Config) envOption {
	return stripeAt(s.URL, cfg)
}

// stripeAt points the app at a Stripe at url, with the adapter logging to
// the app's logger (whose lines are checked for secrets).
func stripeAt(url string, cfg stripeadapter.Config) envOption {
	return func(c *server.Config) {
		cfg.BaseURL = url
		cfg.Logger = c.Logger
		c.Stripe = stripeadapter.New(cfg)
	}
}

// answer makes fn answer the requests made with key.
func (s *stripeSpy) answer(key string, fn spyAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answers == nil {
		s.answers = map[string]spyAnswer{}
	}
	s.answers[key] = fn
}

// forwardTo sets the stripe-mock that unanswered requests go to.
func (s *stripeSpy) forwardTo(base string) {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.target = u
	s.mu.Unlock()
}

// calls returns the requests made with a Stripe key (each test project has
// its own), oldest first.
func (s *stripeSpy) calls(key string) []stripeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stripeCall
	for _, c := range s.seen {
		if c.Key() == key {
			out = append(out, c)
		}
	}
	return out
}

// only returns the one call made with key, failing the test otherwise.
func (s *stripeSpy) only(t testing.TB, key string) stripeCall {
	t.Helper()
	calls := s.calls(key)
	if len(calls) != 1 {
		t.Fatalf("got %d Stripe calls %v, want 1", len(calls), callPaths(calls))
	}
	return calls[0]
}

func callPaths(calls []stripeCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Method + " " + c.Path
	}
	return out
}

// wantForm asserts form fields of a Stripe call.
func wantForm(t testing.TB, c stripeCall, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := c.Form.Get(k); got != v {
			t.Errorf("%s %s: got %s=%q, want %q", c.Method, c.Path, k, got, v)
		}
	}
}

// spyEnv runs fn on every backend with the app's Stripe behind a spy that
// passes requests on to the backend's stripe-mock.
func spyEnv(t *testing.T, fn func(t *testing.T, e *testEnv, spy *stripeSpy)) {
	t.Helper()
	spyEnvWith(t, stripeadapter.Config{}, fn)
}

// spyEnvWith is spyEnv with an adapter configuration.
func spyEnvWith(t *testing.T, cfg stripeadapter.Config, fn func(t *testing.T, e *testEnv, spy *stripeSpy)) {
	t.Helper()
	spy := newStripeSpy(t)
	eachEnv(t, func(t *testing.T, e *testEnv) {
		spy.forwardTo(e.StripeURL)
		fn(t, e, spy)
	}, spy.option(cfg))
}

// bearer returns the project's credential headers with a buyer token.
func (p *testProject) bearer(t testing.TB, sub, email string, kv ...string) http.Header {
	return p.headers(append([]string{"Authorization", "Bearer " + p.token(t, sub, email)}, kv...)...)
}

// configureLive stores live Stripe keys (with a webhook secret) for the
// project and returns the secret and publishable keys.
func (p *testProject) configureLive(t *testing.T) (secretKey, publishableKey string) {
	t.Helper()
	secretKey, publishableKey = "sk_live_"+randHex(12), "pk_live_"+randHex(12)
	webhookKey := "whsec_" + randHex(16)
	p.e.secret(secretKey)
	p.e.secret(webhookKey)
	live := gen.EnvironmentLive
	resp, err := p.e.API.PutStripeSetupWithResponse(context.Background(), &gen.PutStripeSetupParams{Environment: &live},
		gen.StripeSetupRequest{SecretKey: secretKey, PublishableKey: publishableKey, WebhookSecret: &webhookKey}, p.creds)
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("put live keys: %v %s", err, body(resp))
	}
	return secretKey, publishableKey
}

// newProjectWithoutBuyerAuth creates a project with Stripe test keys and no
// buyer-token settings.
func (e *testEnv) newProjectWithoutBuyerAuth(t *testing.T) *testProject {
	t.Helper()
	ctx := context.Background()
	resp, err := e.API.AdminCreateProjectWithResponse(ctx, e.newTenant(t), gen.NameRequest{Name: "App " + randHex(3)}, admin)
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("create project: %v %s", err, body(resp))
	}
	c := resp.JSON201
	p := &testProject{e: e, TenantID: c.TenantId, ProjectID: c.ProjectId, APIKey: c.ApiKey, SecretKey: c.SecretKey,
		StripeKey: "sk_test_" + randHex(12), PublishableKey: "pk_test_" + randHex(12), HS256: "hs256-" + randHex(24)}
	e.secret(p.SecretKey)
	e.secret(p.StripeKey)
	env := gen.EnvironmentTest
	sr, err := e.API.PutStripeSetupWithResponse(ctx, &gen.PutStripeSetupParams{Environment: &env},
		gen.StripeSetupRequest{SecretKey: p.StripeKey, PublishableKey: p.PublishableKey}, p.creds)
	if err != nil || sr.JSON200 == nil {
		t.Fatalf("put stripe setup: %v %s", err, body(sr))
	}
	return p
}

// receiveCustomer delivers a signed customer.created event for a customer of
// the project's test environment, as Stripe would, and returns its id.
func (p *testProject) receiveCustomer(t *testing.T, id, email, userID string) string {
	t.Helper()
	md := map[string]any{"tenant_id": p.TenantID, "project_id": p.ProjectID}
	if userID != "" {
		md["user_id"] = userID
	}
	event := stripetest.Event(t, "customer.created", map[string]any{
		"id":                   "evt_" + randHex(8),
		"created":              time.Now().Unix(),
		"data.object.id":       id,
		"data.object.email":    email,
		"data.object.metadata": md,
	})
	payload, sig := stripetest.SignedPayload(t, event, p.WebhookKey, time.Time{})
	resp, b := p.e.do(t, "POST", "/v1/stripe/webhook/"+p.ProjectID+"?environment=test",
		http.Header{"Stripe-Signature": {sig}}, bytes.NewReader(payload))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deliver customer.created: got %d %s, want 200", resp.StatusCode, b)
	}
	return id
}

// recordSession stores a checkout session as created by the buyer sub
// through the service.
func (p *testProject) recordSession(t *testing.T, env billing.Environment, id, sub string) {
	t.Helper()
	err := p.e.DB.CreateCheckoutSession(context.Background(), billing.CheckoutSession{
		ID: id, ProjectID: p.ProjectID, Environment: env, UserID: sub, Mode: "payment", Status: "open",
	})
	if err != nil {
		t.Fatalf("record session: %v", err)
	}
}

// customerIDs lists the ids of the project's customers in env from the store.
func (p *testProject) customerIDs(t testing.TB, env billing.Environment) []string {
	t.Helper()
	cs, _, err := p.e.DB.ListCustomers(context.Background(), billing.CustomerFilter{ProjectID: p.ProjectID, Environment: env, Limit: 100})
	if err != nil {
		t.Fatalf("list customers: %v", err)
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// wantNotFound asserts a 404 naming param, with a message that says what
// was not found and shows nothing of it.
func wantNotFound(t testing.TB, resp *http.Response, b []byte, param string) {
	t.Helper()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("got %d %s, want 404", resp.StatusCode, b)
	}
	eb := apiError(t, b)
	if eb.Code != gen.ErrorBodyCodeNotFound || deref(eb.Param) != param || !strings.HasPrefix(eb.Message, "No such ") {
		t.Errorf("got %s, want not_found naming %q", b, param)
	}
}

// decodeBody unmarshals a response body, failing the test when it is not v.
func decodeBody[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v in %s", v, err, b)
	}
	return v
}

// TestSeedExamples sends every curl example of the API description as it is
// written there: method, path, headers and body, with the placeholders
// replaced by a real project's credentials and a real buyer token.
func TestSeedExamples(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		p := e.newProject(t, "")
		const sub = "user_seed"
		tok := p.token(t, sub, "customer@example.com")
		// YOUR_API_KEY and the others are headers the seed sends with -H.
		seedHeaders := func(withToken, withJSON bool) http.Header {
			h := http.Header{}
			if withJSON {
				h.Set("Content-Type", "application/json")
			}
			if withToken {
				h.Set("Authorization", "Bearer "+tok)
			}
			h.Set("x-api-key", p.APIKey)
			h.Set("x-secret-key", p.SecretKey)
			h.Set("x-tenant-id", p.TenantID)
			h.Set("x-project-id", p.ProjectID)
			return h
		}
		// The seed's examples name cus_1234567890 and cs_test_abc123: a
		// customer Stripe sent by webhook and a session this buyer created.
		p.receiveCustomer(t, "cus_1234567890", "customer@example.com", sub)
		p.recordSession(t, billing.EnvTest, "cs_test_abc123", sub)

		t.Run("CreateCheckoutSession", func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v1/stripe/checkout/session", seedHeaders(true, true), strings.NewReader(`{
"line_items": [
{
"price": "price_1234567890",
"quantity": 1
}
],
"mode": "payment",
"success_url": "https://yourapp.com/success",
"cancel_url": "https://yourapp.com/cancel",
"customer_email": "customer@example.com"
}`))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			cs := decodeBody[gen.CheckoutSession](t, b)
			if !strings.HasPrefix(cs.Id, "cs_") || deref(cs.Url) == "" || cs.Mode != gen.CheckoutSessionModePayment || deref(cs.CustomerEmail) != "customer@example.com" {
				t.Errorf("got %s, want a payment session with an id, a url and the customer email", b)
			}
			calls := spy.calls(p.StripeKey)
			c := calls[len(calls)-1]
			if c.Method != "POST" || c.Path != "/v1/checkout/sessions" {
				t.Fatalf("got Stripe call %s %s, want POST /v1/checkout/sessions", c.Method, c.Path)
			}
			wantForm(t, c, map[string]string{
				"mode": "payment", "success_url": "https://yourapp.com/success", "cancel_url": "https://yourapp.com/cancel",
				"customer_email": "customer@example.com", "line_items[0][price]": "price_1234567890", "line_items[0][quantity]": "1",
				"client_reference_id": sub, "metadata[user_id]": sub, "metadata[tenant_id]": p.TenantID, "metadata[project_id]": p.ProjectID,
			})
			rec, err := e.DB.FindCheckoutSession(ctx, p.ProjectID, billing.EnvTest, cs.Id)
			if err != nil || rec.UserID != sub || rec.Mode != "payment" {
				t.Errorf("got record %+v, %v; want the session recorded as the buyer's", rec, err)
			}
		})
		t.Run("GetCheckoutSessionStatus", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/v1/stripe/checkout/session/cs_test_abc123?environment=test", seedHeaders(true, false), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			cs := decodeBody[gen.CheckoutSession](t, b)
			if cs.Id != "cs_test_abc123" || deref(cs.Status) != "open" || deref(cs.PaymentStatus) != "unpaid" {
				t.Errorf("got %s, want cs_test_abc123 open and unpaid", b)
			}
		})
		t.Run("CreatePaymentIntent", func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v1/stripe/payment/intent", seedHeaders(true, true), strings.NewReader(`{
"amount": 2999,
"currency": "usd",
"description": "Purchase from YourApp",
"receipt_email": "customer@example.com"
}`))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			pi := decodeBody[gen.PaymentIntent](t, b)
			if pi.ClientSecret == "" || !strings.HasPrefix(pi.PaymentIntentId, "pi_") || pi.Status != "requires_payment_method" || pi.PublishableKey != p.PublishableKey {
				t.Errorf("got %s, want client_secret, payment_intent_id, status and publishable key %s", b, p.PublishableKey)
			}
			calls := spy.calls(p.StripeKey)
			wantForm(t, calls[len(calls)-1], map[string]string{
				"amount": "2999", "currency": "usd", "description": "Purchase from YourApp", "receipt_email": "customer@example.com",
				"automatic_payment_methods[enabled]": "true", "metadata[user_id]": sub, "metadata[project_id]": p.ProjectID,
			})
			rec, err := e.DB.FindPaymentIntent(ctx, p.ProjectID, billing.EnvTest, pi.PaymentIntentId)
			if err != nil || rec.UserID != sub || rec.Amount != 2999 || rec.ClientSecret != "" {
				t.Errorf("got record %+v, %v; want the intent recorded as the buyer's, without its secret", rec, err)
			}
		})
		t.Run("CustomerPortal", func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v1/stripe/customer-portal/session", seedHeaders(true, true), strings.NewReader(`{
"customer": "cus_1234567890",
"return_url": "https://yourapp.com/account"
}`))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			if decodeBody[gen.PortalSession](t, b).Url == "" {
				t.Errorf("got %s, want a url", b)
			}
			calls := spy.calls(p.StripeKey)
			wantForm(t, calls[len(calls)-1], map[string]string{"customer": "cus_1234567890", "return_url": "https://yourapp.com/account"})
		})
		var created string
		t.Run("CreateCustomer", func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v1/stripe/customers", seedHeaders(false, true), strings.NewReader(`{
"email": "customer@example.com",
"name": "John Doe",
"description": "Premium customer",
"phone": "+1234567890",
"metadata": {
"user_id": "user_123"
}
}`))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			c := decodeBody[gen.Customer](t, b)
			created = c.Id
			want := map[string]string{"user_id": "user_123", "tenant_id": p.TenantID, "project_id": p.ProjectID}
			if !strings.HasPrefix(c.Id, "cus_") || deref(c.Email) != "customer@example.com" || deref(c.Name) != "John Doe" ||
				deref(c.Description) != "Premium customer" || deref(c.Phone) != "+1234567890" || fmt.Sprint(c.Metadata) != fmt.Sprint(want) {
				t.Errorf("got %s, want the customer with metadata %v", b, want)
			}
			calls := spy.calls(p.StripeKey)
			wantForm(t, calls[len(calls)-1], map[string]string{
				"email": "customer@example.com", "name": "John Doe", "metadata[user_id]": "user_123",
				"metadata[tenant_id]": p.TenantID, "metadata[project_id]": p.ProjectID,
			})
			rec, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, c.Id)
			if err != nil || rec.UserID != "user_123" || rec.Description != "Premium customer" {
				t.Errorf("got record %+v, %v; want it recorded with user_123", rec, err)
			}
		})
		t.Run("ListCustomers", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/v1/stripe/customers?limit=10&environment=test", seedHeaders(false, false), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			l := decodeBody[gen.CustomerList](t, b)
			var ids []string
			for _, c := range l.Data {
				ids = append(ids, c.Id)
			}
			if l.Object != "list" || l.HasMore || len(ids) != 2 || !slices.Contains(ids, created) || !slices.Contains(ids, "cus_1234567890") {
				t.Errorf("got %s, want a list of %s and cus_1234567890", b, created)
			}
		})
		t.Run("GetCustomer", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/v1/stripe/customers/cus_1234567890?environment=test", seedHeaders(false, false), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			c := decodeBody[gen.Customer](t, b)
			if c.Id != "cus_1234567890" || deref(c.Email) != "customer@example.com" || c.Metadata["project_id"] != p.ProjectID {
				t.Errorf("got %s, want cus_1234567890 of this project", b)
			}
		})
		t.Run("UpdateCustomer", func(t *testing.T) {
			resp, b := e.do(t, "PUT", "/v1/stripe/customers/cus_1234567890", seedHeaders(false, true), strings.NewReader(`{
"name": "Jane Doe",
"description": "Updated description"
}`))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			c := decodeBody[gen.Customer](t, b)
			if c.Id != "cus_1234567890" || deref(c.Name) != "Jane Doe" || deref(c.Description) != "Updated description" {
				t.Errorf("got %s, want Jane Doe with the new description", b)
			}
			calls := spy.calls(p.StripeKey)
			wantForm(t, calls[len(calls)-1], map[string]string{"name": "Jane Doe", "description": "Updated description"})
			rec, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, "cus_1234567890")
			if err != nil || rec.Name != "Jane Doe" || rec.Email != "customer@example.com" || rec.UserID != sub {
				t.Errorf("got record %+v, %v; want the name changed and the rest kept", rec, err)
			}
		})
		t.Run("DeleteCustomer", func(t *testing.T) {
			resp, b := e.do(t, "DELETE", "/v1/stripe/customers/cus_1234567890?environment=test", seedHeaders(false, false), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			if d := decodeBody[gen.DeletedCustomer](t, b); d.Id != "cus_1234567890" || !d.Deleted || d.Object != "customer" {
				t.Errorf("got %s, want cus_1234567890 deleted", b)
			}
			if ids := p.customerIDs(t, billing.EnvTest); slices.Contains(ids, "cus_1234567890") {
				t.Errorf("got customers %v, want cus_1234567890 gone", ids)
			}
			resp, b = e.do(t, "GET", "/v1/stripe/customers/cus_1234567890?environment=test", seedHeaders(false, false), nil)
			wantNotFound(t, resp, b, "id")
		})
		t.Run("SubscriptionStatus", func(t *testing.T) {
			resp, b := e.do(t, "GET", "/v1/customer/subscription?customerEmail=user@example.com&environment=test", seedHeaders(false, false), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			var got any
			_ = json.Unmarshal(b, &got)
			if fmt.Sprint(got) != fmt.Sprint(map[string]any{"subscription": nil}) {
				t.Errorf("got %s, want {\"subscription\": null}", b)
			}
			test := gen.EnvironmentTest
			r, err := e.API.GetCustomerSubscriptionWithResponse(ctx, &gen.GetCustomerSubscriptionParams{
				CustomerEmail: "user@example.com", Environment: &test}, p.creds)
			if err != nil || r.JSON200 == nil || r.JSON200.Subscription != nil {
				t.Errorf("generated client: got %v %s, want 200 with no subscription", err, body(r))
			}
		})
	})
}

// TestIsolation crosses every project, buyer and environment boundary: two
// tenants with two projects each, two buyers (with the same ids and emails
// in every project), test and live. Every customer and checkout session is
// reachable only from its own project and environment, and, for the buyer
// endpoints, by its own buyer; across a boundary the answer is 404 and
// Stripe is not called.
func TestIsolation(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		envs := []billing.Environment{billing.EnvTest, billing.EnvLive}
		buyers := []string{"buyer_a", "buyer_b"}
		email := func(buyer string) string { return buyer + "@example.com" }

		type owned struct {
			p     *testProject
			buyer string
			env   billing.Environment
			id    string
		}
		var projects []*testProject
		for range 2 {
			tenant := e.newTenant(t)
			for range 2 {
				p := e.newProject(t, tenant)
				p.configureLive(t)
				projects = append(projects, p)
			}
		}
		var customers, sessions []owned
		for _, p := range projects {
			for _, b := range buyers {
				em := openapi_types.Email(email(b))
				md := gen.Metadata{"user_id": b}
				cr, err := e.API.CreateCustomerWithResponse(ctx, nil, gen.CustomerRequest{Email: &em, Metadata: &md}, p.creds)
				if err != nil || cr.JSON200 == nil {
					t.Fatalf("create customer: %v %s", err, body(cr))
				}
				customers = append(customers, owned{p, b, billing.EnvTest, cr.JSON200.Id})
				live := billing.Customer{ID: "cus_live" + randHex(6), ProjectID: p.ProjectID, Environment: billing.EnvLive,
					Email: email(b), UserID: b, Metadata: map[string]string{"user_id": b}}
				if err := e.DB.UpsertCustomer(ctx, live); err != nil {
					t.Fatal(err)
				}
				customers = append(customers, owned{p, b, billing.EnvLive, live.ID})

				sr, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, gen.CreateCheckoutSessionRequest{
					Mode: gen.CreateCheckoutSessionRequestModePayment, LineItems: &[]gen.LineItem{{Price: "price_1", Quantity: 1}},
					SuccessUrl: "https://shop.example.com/ok",
				}, p.buyer(t, b, email(b)))
				if err != nil || sr.JSON200 == nil {
					t.Fatalf("create session: %v %s", err, body(sr))
				}
				sessions = append(sessions, owned{p, b, billing.EnvTest, sr.JSON200.Id})
				liveSession := "cs_live_" + randHex(8)
				p.recordSession(t, billing.EnvLive, liveSession, b)
				sessions = append(sessions, owned{p, b, billing.EnvLive, liveSession})
			}
		}

		// check sends one request and asserts its outcome and whether it
		// reached Stripe with key (the caller's for the environment).
		check := func(t *testing.T, key string, allowed bool, what string, send func() (*http.Response, []byte)) {
			t.Helper()
			before := len(spy.calls(key))
			resp, b := send()
			calls := len(spy.calls(key)) - before
			switch {
			case allowed && (resp.StatusCode != http.StatusOK || calls != 1):
				t.Errorf("%s: got %d %s with %d Stripe calls, want 200 with 1", what, resp.StatusCode, b, calls)
			case !allowed && (resp.StatusCode != http.StatusNotFound || calls != 0):
				t.Errorf("%s: got %d %s with %d Stripe calls, want 404 with none", what, resp.StatusCode, b, calls)
			case !allowed && strings.Contains(string(b), "@example.com"):
				t.Errorf("%s: got %s, want nothing of the customer shown", what, b)
			}
		}

		t.Run("Matrix", func(t *testing.T) {
			for zi, z := range projects {
				t.Run(fmt.Sprintf("Project%d", zi), func(t *testing.T) {
					t.Parallel()
					for _, f := range envs {
						key := z.StripeKey
						if f == billing.EnvLive {
							st, err := e.DB.FindStripeSettings(ctx, z.ProjectID, billing.EnvLive)
							if err != nil {
								t.Fatal(err)
							}
							key = st.SecretKey
						}
						q := "?environment=" + string(f)
						for _, c := range customers {
							same := c.p == z && c.env == f
							who := fmt.Sprintf("project %d %s, customer of project %s %s %s", zi, f, c.p.ProjectID, c.env, c.buyer)
							check(t, key, same, "get "+who, func() (*http.Response, []byte) {
								return e.do(t, "GET", "/v1/stripe/customers/"+c.id+q, z.headers(), nil)
							})
							check(t, key, same, "update "+who, func() (*http.Response, []byte) {
								return e.do(t, "PUT", "/v1/stripe/customers/"+c.id+q, z.headers(), strings.NewReader(`{"name":"Renamed"}`))
							})
							if !same {
								check(t, key, false, "delete "+who, func() (*http.Response, []byte) {
									return e.do(t, "DELETE", "/v1/stripe/customers/"+c.id+q, z.headers(), nil)
								})
							}
							for _, w := range buyers {
								check(t, key, same && c.buyer == w, "portal by "+w+" "+who, func() (*http.Response, []byte) {
									return e.do(t, "POST", "/v1/stripe/customer-portal/session"+q, z.bearer(t, w, email(w)),
										strings.NewReader(`{"customer":"`+c.id+`","return_url":"https://shop.example.com/"}`))
								})
							}
						}
						for _, s := range sessions {
							for _, w := range buyers {
								allowed := s.p == z && s.env == f && s.buyer == w
								who := fmt.Sprintf("project %d %s buyer %s, session of project %s %s %s", zi, f, w, s.p.ProjectID, s.env, s.buyer)
								check(t, key, allowed, "status "+who, func() (*http.Response, []byte) {
									return e.do(t, "GET", "/v1/stripe/checkout/session/"+s.id+q, z.bearer(t, w, email(w)), nil)
								})
							}
						}
						var want []string
						for _, c := range customers {
							if c.p == z && c.env == f {
								want = append(want, c.id)
							}
						}
						resp, b := e.do(t, "GET", "/v1/stripe/customers?limit=100&environment="+string(f), z.headers(), nil)
						var got []string
						for _, c := range decodeBody[gen.CustomerList](t, b).Data {
							got = append(got, c.Id)
						}
						slices.Sort(got)
						slices.Sort(want)
						if resp.StatusCode != http.StatusOK || !slices.Equal(got, want) {
							t.Errorf("list of project %d %s: got %d %v, want %v", zi, f, resp.StatusCode, got, want)
						}
					}
				})
			}
		})

		t.Run("OwnersStillHaveEverything", func(t *testing.T) {
			for _, c := range customers {
				rec, err := e.DB.FindCustomer(ctx, c.p.ProjectID, c.env, c.id)
				if err != nil || rec.UserID != c.buyer || rec.Name != "Renamed" {
					t.Errorf("customer %s %s: got %+v, %v; want it kept, renamed once by its own project", c.env, c.id, rec, err)
				}
				resp, b := e.do(t, "DELETE", "/v1/stripe/customers/"+c.id+"?environment="+string(c.env), c.p.headers(), nil)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("owner deletes %s: got %d %s, want 200", c.id, resp.StatusCode, b)
				}
			}
		})
	})
}

// TestBadInput sends malformed requests to every endpoint: each is refused
// with a status and a message that names the field, before Stripe is called
// and before anything is written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		p := e.newProject(t, "")
		existing := p.receiveCustomer(t, "cus_existing"+randHex(4), "kept@example.com", "user_a")
		p.recordSession(t, billing.EnvTest, "cs_test_existing", "user_a")
		want, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, existing)
		if err != nil {
			t.Fatal(err)
		}

		const (
			checkout = "/v1/stripe/checkout/session"
			intent   = "/v1/stripe/payment/intent"
			portal   = "/v1/stripe/customer-portal/session"
			cust     = "/v1/stripe/customers"
		)
		line := `"line_items":[{"price":"price_1","quantity":1}]`
		ok := `"success_url":"https://shop.example.com/ok"`
		manyKeys := make([]string, 51)
		for i := range manyKeys {
			manyKeys[i] = fmt.Sprintf(`"k%d":"v"`, i)
		}
		cases := []badInput{
			{"CheckoutErrMissingMode", "POST", checkout, `{` + line + `,` + ok + `}`, true, nil, 400, "mode"},
			{"CheckoutErrUnknownMode", "POST", checkout, `{"mode":"donation",` + line + `,` + ok + `}`, true, nil, 400, "mode"},
			{"CheckoutErrModeWrongType", "POST", checkout, `{"mode":1,` + line + `,` + ok + `}`, true, nil, 400, "mode"},
			{"CheckoutErrMissingSuccessURL", "POST", checkout, `{"mode":"payment",` + line + `}`, true, nil, 400, "success_url"},
			{"CheckoutErrSuccessURLNotURL", "POST", checkout, `{"mode":"payment",` + line + `,"success_url":"not a url"}`, true, nil, 400, "success_url"},
			{"CheckoutErrSuccessURLScheme", "POST", checkout, `{"mode":"payment",` + line + `,"success_url":"javascript:alert(1)"}`, true, nil, 400, "success_url"},
			{"CheckoutErrCancelURLRelative", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `,"cancel_url":"/cancel"}`, true, nil, 400, "cancel_url"},
			{"CheckoutErrQuantityZero", "POST", checkout, `{"mode":"payment","line_items":[{"price":"price_1","quantity":0}],` + ok + `}`, true, nil, 400, "line_items.0.quantity"},
			{"CheckoutErrQuantityNegative", "POST", checkout, `{"mode":"payment","line_items":[{"price":"price_1","quantity":-3}],` + ok + `}`, true, nil, 400, "line_items.0.quantity"},
			{"CheckoutErrQuantityString", "POST", checkout, `{"mode":"payment","line_items":[{"price":"price_1","quantity":"1"}],` + ok + `}`, true, nil, 400, "line_items.0.quantity"},
			{"CheckoutErrMissingPrice", "POST", checkout, `{"mode":"payment","line_items":[{"quantity":1}],` + ok + `}`, true, nil, 400, "line_items.0.price"},
			{"CheckoutErrNoLineItems", "POST", checkout, `{"mode":"payment",` + ok + `}`, true, nil, 400, "line_items"},
			{"CheckoutErrEmptyLineItems", "POST", checkout, `{"mode":"subscription","line_items":[],` + ok + `}`, true, nil, 400, "line_items"},
			{"CheckoutErrLineItemsInSetup", "POST", checkout, `{"mode":"setup","currency":"usd",` + line + `,` + ok + `}`, true, nil, 400, "line_items"},
			{"CheckoutErrSetupWithoutCurrency", "POST", checkout, `{"mode":"setup",` + ok + `}`, true, nil, 400, "currency"},
			{"CheckoutErrCurrencyFormat", "POST", checkout, `{"mode":"setup","currency":"dollars",` + ok + `}`, true, nil, 400, "currency"},
			{"CheckoutErrTrialInPaymentMode", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `,"trial_period_days":7}`, true, nil, 400, "trial_period_days"},
			{"CheckoutErrTrialZero", "POST", checkout, `{"mode":"subscription",` + line + `,` + ok + `,"trial_period_days":0}`, true, nil, 400, "trial_period_days"},
			{"CheckoutErrCustomerAndEmail", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `,"customer":"` + existing + `","customer_email":"kept@example.com"}`, true, nil, 400, "customer_email"},
			{"CheckoutErrCustomerEmail", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `,"customer_email":"not-an-email"}`, true, nil, 400, "customer_email"},
			{"CheckoutErrReservedMetadata", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `,"metadata":{"tenant_id":"ten_x"}}`, true, nil, 400, "metadata.tenant_id"},
			{"CheckoutErrMetadataNotString", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `,"metadata":{"order":42}}`, true, nil, 400, "metadata.order"},
			{"CheckoutErrNotJSON", "POST", checkout, `mode=payment`, true, nil, 400, ""},
			{"CheckoutErrNoBody", "POST", checkout, ``, true, nil, 400, ""},
			{"CheckoutErrArrayBody", "POST", checkout, `[]`, true, nil, 400, ""},
			{"CheckoutErrIdempotencyKeyTooLong", "POST", checkout, `{"mode":"payment",` + line + `,` + ok + `}`, true, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},
			{"CheckoutErrEnvironment", "POST", checkout + "?environment=prod", `{"mode":"payment",` + line + `,` + ok + `}`, true, nil, 400, "environment"},
			{"CheckoutStatusErrEnvironment", "GET", checkout + "/cs_test_existing?environment=staging", ``, true, nil, 400, "environment"},

			{"IntentErrMissingAmount", "POST", intent, `{"currency":"usd"}`, true, nil, 400, "amount"},
			{"IntentErrAmountZero", "POST", intent, `{"amount":0,"currency":"usd"}`, true, nil, 400, "amount"},
			{"IntentErrAmountNegative", "POST", intent, `{"amount":-100,"currency":"usd"}`, true, nil, 400, "amount"},
			{"IntentErrAmountString", "POST", intent, `{"amount":"2999","currency":"usd"}`, true, nil, 400, "amount"},
			{"IntentErrAmountFraction", "POST", intent, `{"amount":29.99,"currency":"usd"}`, true, nil, 400, "amount"},
			{"IntentErrAmountTooLarge", "POST", intent, `{"amount":100000000,"currency":"usd"}`, true, nil, 400, "amount"},
			{"IntentErrMissingCurrency", "POST", intent, `{"amount":2999}`, true, nil, 400, "currency"},
			{"IntentErrCurrencyNumber", "POST", intent, `{"amount":2999,"currency":840}`, true, nil, 400, "currency"},
			{"IntentErrReceiptEmail", "POST", intent, `{"amount":2999,"currency":"usd","receipt_email":"nope"}`, true, nil, 400, "receipt_email"},
			{"IntentErrReservedMetadata", "POST", intent, `{"amount":2999,"currency":"usd","metadata":{"project_id":"prj_x"}}`, true, nil, 400, "metadata.project_id"},

			{"PortalErrMissingCustomer", "POST", portal, `{"return_url":"https://shop.example.com/"}`, true, nil, 400, "customer"},
			{"PortalErrEmptyCustomer", "POST", portal, `{"customer":"","return_url":"https://shop.example.com/"}`, true, nil, 400, "customer"},
			{"PortalErrCustomerWrongType", "POST", portal, `{"customer":["` + existing + `"],"return_url":"https://shop.example.com/"}`, true, nil, 400, "customer"},
			{"PortalErrMissingReturnURL", "POST", portal, `{"customer":"` + existing + `"}`, true, nil, 400, "return_url"},
			{"PortalErrReturnURLNotURL", "POST", portal, `{"customer":"` + existing + `","return_url":"account"}`, true, nil, 400, "return_url"},

			{"CreateCustomerErrEmail", "POST", cust, `{"email":"not-an-email"}`, false, nil, 400, "email"},
			{"CreateCustomerErrNameWrongType", "POST", cust, `{"name":{"first":"Ada"}}`, false, nil, 400, "name"},
			{"CreateCustomerErrPhoneTooLong", "POST", cust, `{"phone":"` + strings.Repeat("1", 41) + `"}`, false, nil, 400, "phone"},
			{"CreateCustomerErrReservedTenant", "POST", cust, `{"metadata":{"tenant_id":"ten_x"}}`, false, nil, 400, "metadata.tenant_id"},
			{"CreateCustomerErrReservedProject", "POST", cust, `{"metadata":{"project_id":"prj_x","user_id":"u1"}}`, false, nil, 400, "metadata.project_id"},
			{"CreateCustomerErrTooManyMetadataKeys", "POST", cust, `{"metadata":{` + strings.Join(manyKeys, ",") + `}}`, false, nil, 400, "metadata"},
			{"CreateCustomerErrMetadataValueTooLong", "POST", cust, `{"metadata":{"note":"` + strings.Repeat("n", 501) + `"}}`, false, nil, 400, "metadata.note"},
			{"CreateCustomerErrArrayBody", "POST", cust, `[{"email":"a@example.com"}]`, false, nil, 400, ""},
			{"CreateCustomerErrIdempotencyKeyTooLong", "POST", cust, `{"name":"Ada"}`, false, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},

			{"UpdateCustomerErrEmail", "PUT", cust + "/" + existing, `{"email":"nope"}`, false, nil, 400, "email"},
			{"UpdateCustomerErrNameWrongType", "PUT", cust + "/" + existing, `{"name":5}`, false, nil, 400, "name"},
			{"UpdateCustomerErrReservedMetadata", "PUT", cust + "/" + existing, `{"metadata":{"project_id":"prj_x"}}`, false, nil, 400, "metadata.project_id"},
			{"UpdateCustomerErrNotJSON", "PUT", cust + "/" + existing, `{"name":`, false, nil, 400, ""},

			{"ListErrLimitZero", "GET", cust + "?limit=0", ``, false, nil, 400, "limit"},
			{"ListErrLimit101", "GET", cust + "?limit=101", ``, false, nil, 400, "limit"},
			{"ListErrLimitNegative", "GET", cust + "?limit=-1", ``, false, nil, 400, "limit"},
			{"ListErrLimitNotNumber", "GET", cust + "?limit=ten", ``, false, nil, 400, "limit"},
			{"ListErrStartingAfterUnknown", "GET", cust + "?starting_after=cus_nope", ``, false, nil, 400, "starting_after"},
			{"ListErrEnvironment", "GET", cust + "?environment=production", ``, false, nil, 400, "environment"},
			{"GetCustomerErrEnvironment", "GET", cust + "/" + existing + "?environment=prod", ``, false, nil, 400, "environment"},
			{"DeleteCustomerErrEnvironment", "DELETE", cust + "/" + existing + "?environment=LIVE", ``, false, nil, 400, "environment"},

			{"SubscriptionErrMissingEmail", "GET", "/v1/customer/subscription", ``, false, nil, 400, "customerEmail"},
			{"SubscriptionErrEmail", "GET", "/v1/customer/subscription?customerEmail=nope", ``, false, nil, 400, "customerEmail"},
		}
		// Bodies over 1 MiB, declared and streamed, on every endpoint with
		// a body.
		big := `{"metadata":{"note":"` + strings.Repeat("x", server.MaxBodyBytes) + `"}}`
		type sized struct {
			name, method, path string
			buyer              bool
		}
		for _, s := range []sized{
			{"Checkout", "POST", checkout, true}, {"Intent", "POST", intent, true}, {"Portal", "POST", portal, true},
			{"CreateCustomer", "POST", cust, false}, {"UpdateCustomer", "PUT", cust + "/" + existing, false},
		} {
			cases = append(cases,
				badInput{s.name + "ErrTooLarge", s.method, s.path, big, s.buyer, nil, 413, ""},
				badInput{s.name + "ErrTooLargeChunked", s.method, s.path, big, s.buyer, []string{"X-Chunked", "1"}, 413, ""})
		}

		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				h := p.headers()
				if c.buyer {
					h = p.bearer(t, "user_a", "kept@example.com")
				}
				chunked := false
				for i := 0; i+1 < len(c.header); i += 2 {
					if c.header[i] == "X-Chunked" {
						chunked = true
						continue
					}
					h.Set(c.header[i], c.header[i+1])
				}
				var reqBody io.Reader
				if c.body != "" {
					reqBody = strings.NewReader(c.body)
					if chunked {
						// A reader of unknown length: sent without Content-Length.
						reqBody = io.MultiReader(reqBody)
					}
				}
				resp, b := e.do(t, c.method, c.path, h, reqBody)
				eb := wantError(t, resp, b, c.status, c.param)
				if c.status == http.StatusRequestEntityTooLarge && eb.Code != gen.ErrorBodyCodeRequestTooLarge {
					t.Errorf("got code %s, want request_too_large", eb.Code)
				}
				if calls := spy.calls(p.StripeKey); len(calls) != 0 {
					t.Errorf("got Stripe calls %v, want none", callPaths(calls))
				}
				if ids := p.customerIDs(t, billing.EnvTest); !slices.Equal(ids, []string{existing}) {
					t.Errorf("got customers %v, want only %s", ids, existing)
				}
				got, err := e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, existing)
				if err != nil || got.Name != want.Name || got.Email != want.Email || fmt.Sprint(got.Metadata) != fmt.Sprint(want.Metadata) {
					t.Errorf("got customer %+v, %v; want it unchanged: %+v", got, err, want)
				}
			})
		}

		t.Run("ErrTooLargeDeclaredIsNotRead", func(t *testing.T) {
			// The body declares 2 MiB and sends nothing: the answer must
			// come from the declaration alone.
			pr, pw := io.Pipe()
			defer pw.Close()
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			// On timeout, end the body too: the transport waits for its writer.
			context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
			req, err := http.NewRequestWithContext(ctx, "POST", e.URL+cust, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = 2 * server.MaxBodyBytes
			req.Header = p.headers("Content-Type", "application/json")
			resp, err := e.HTTP.Do(req)
			if err != nil {
				t.Fatalf("got %v, want a 413 before the body is sent", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("got %d, want 413", resp.StatusCode)
			}
		})

		t.Run("ExactlyOneMiB", func(t *testing.T) {
			np := e.newProject(t, "")
			doc := `{"name":"Ada"}`
			payload := doc + strings.Repeat(" ", server.MaxBodyBytes-len(doc))
			for name, r := range map[string]io.Reader{"Declared": strings.NewReader(payload), "Chunked": io.MultiReader(strings.NewReader(payload))} {
				resp, b := e.do(t, "POST", cust, np.headers(), r)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s: got %d %s, want 200 for a body of exactly 1 MiB", name, resp.StatusCode, b)
				}
			}
		})
	})
}

// badInput is a malformed request and the error it must get. A header pair
// "X-Chunked" sends the body without a Content-Length.
type badInput struct {
	name, method, path, body string
	buyer                    bool
	header                   []string
	status                   int
	param                    string
}
