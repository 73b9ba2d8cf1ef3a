package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter"
)

// stripeTimeout bounds one request to a stand-in Stripe in these tests.
const stripeTimeout = 300 * time.Millisecond

// billingCall is one endpoint that calls Stripe, with a valid request for a
// project whose customer and checkout session the test recorded.
type billingCall struct {
	name, method, path, body string
	buyer                    bool
}

func billingCalls(customer, session string) []billingCall {
	return []billingCall{
		{"CreateCustomer", "POST", "/v1/stripe/customers", `{"email":"new@example.com","name":"New"}`, false},
		{"GetCustomer", "GET", "/v1/stripe/customers/" + customer, ``, false},
		{"UpdateCustomer", "PUT", "/v1/stripe/customers/" + customer, `{"name":"Changed"}`, false},
		{"DeleteCustomer", "DELETE", "/v1/stripe/customers/" + customer, ``, false},
		{"CreateCheckoutSession", "POST", "/v1/stripe/checkout/session", `{"mode":"payment","line_items":[{"price":"price_1","quantity":1}],"success_url":"https://shop.example.com/ok"}`, true},
		{"GetCheckoutSession", "GET", "/v1/stripe/checkout/session/" + session, ``, true},
		{"CreatePaymentIntent", "POST", "/v1/stripe/payment/intent", `{"amount":2999,"currency":"usd","customer":"` + customer + `"}`, true},
		{"CreatePortalSession", "POST", "/v1/stripe/customer-portal/session", `{"customer":"` + customer + `","return_url":"https://shop.example.com/"}`, true},
	}
}

// createsObject names the calls that create a Stripe object from objects
// the request names.
var createsObject = map[string]bool{"CreateCustomer": true, "CreateCheckoutSession": true, "CreatePaymentIntent": true}

// send makes the call as the project (and its buyer user_a).
func (c billingCall) send(t testing.TB, p *testProject, query string) (*http.Response, []byte) {
	t.Helper()
	h := p.headers()
	if c.buyer {
		h = p.bearer(t, "user_a", "")
	}
	path := c.path
	if query != "" {
		path += "?" + query
	}
	return p.e.do(t, c.method, path, h, bodyOf(c.body))
}

// stripeFailure is how a stand-in Stripe fails and what the caller must see.
type stripeFailure struct {
	name       string
	answer     func(key string) spyAnswer
	status     int
	code       gen.ErrorBodyCode
	message    string // exact, when not empty
	stripeCode string
	param      string
}

// failWith answers every request with a Stripe error whose message quotes
// the key, as Stripe's own messages about keys do.
func failWith(status int, errJSON string) func(key string) spyAnswer {
	return func(key string) spyAnswer {
		return func(w http.ResponseWriter, _ *http.Request, _ url.Values) bool {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Request-Id", "req_standin")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":%s}`, strings.ReplaceAll(errJSON, "KEY", key))
			return true
		}
	}
}

var stripeFailures = []stripeFailure{
	{
		name:   "ErrStripe401",
		answer: failWith(401, `{"type":"invalid_request_error","message":"Invalid API Key provided: KEY"}`),
		status: 403, code: gen.ErrorBodyCodeForbidden, message: "Stripe rejected this project's key.",
	},
	{
		name:   "ErrStripe402CardDeclined",
		answer: failWith(402, `{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"Your card was declined."}`),
		status: 400, code: gen.ErrorBodyCodeInvalidRequest, message: "Your card was declined.", stripeCode: "card_declined",
	},
	{
		name:   "ErrStripe400InvalidRequest",
		answer: failWith(400, `{"type":"invalid_request_error","code":"parameter_invalid_empty","param":"line_items[0][price]","message":"You passed an empty string for 'line_items[0][price]' (request made with KEY)."}`),
		status: 400, code: gen.ErrorBodyCodeInvalidRequest, stripeCode: "parameter_invalid_empty", param: "line_items[0][price]",
	},
	{
		name:   "ErrStripe404",
		answer: failWith(404, `{"type":"invalid_request_error","code":"resource_missing","param":"id","message":"No such object: 'obj_gone'"}`),
		status: 404, code: gen.ErrorBodyCodeNotFound, message: "No such object: 'obj_gone'", stripeCode: "resource_missing", param: "id",
	},
	{
		name:   "ErrStripe429",
		answer: failWith(429, `{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}`),
		status: 429, code: gen.ErrorBodyCodeRateLimited, message: "Stripe rate limited the request.", stripeCode: "rate_limit",
	},
	{
		name:   "ErrStripe500",
		answer: failWith(500, `{"type":"api_error","message":"Something went wrong on Stripe's end (KEY)."}`),
		status: 502, code: gen.ErrorBodyCodeStripeError, message: "Stripe is unavailable.",
	},
	{
		name: "ErrStripeNotJSON",
		answer: func(string) spyAnswer {
			return func(w http.ResponseWriter, _ *http.Request, _ url.Values) bool {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html><body>Bad gateway</body></html>")
				return true
			}
		},
		status: 502, code: gen.ErrorBodyCodeStripeError,
	},
	{
		name: "ErrStripeHangs",
		answer: func(string) spyAnswer {
			return func(w http.ResponseWriter, r *http.Request, _ url.Values) bool {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * stripeTimeout):
				}
				return true
			}
		},
		status: 504, code: gen.ErrorBodyCodeStripeTimeout, message: "Stripe timed out.",
	},
}

// failureFixture is a project with a customer of buyer user_a and a checkout
// session of that buyer, recorded before Stripe starts failing.
type failureFixture struct {
	p                 *testProject
	customer, session string
	want              *billing.Customer
}

func newFailureFixture(t *testing.T, e *testEnv) failureFixture {
	t.Helper()
	ctx := context.Background()
	p := e.newProject(t, "")
	f := failureFixture{p: p, customer: "cus_fail" + randHex(4), session: "cs_test_fail" + randHex(4)}
	if err := e.DB.UpsertCustomer(ctx, billing.Customer{ID: f.customer, ProjectID: p.ProjectID, Environment: billing.EnvTest,
		Email: "kept@example.com", Name: "Kept", UserID: "user_a", Metadata: map[string]string{"user_id": "user_a"}}); err != nil {
		t.Fatal(err)
	}
	p.recordSession(t, billing.EnvTest, f.session, "user_a")
	var err error
	if f.want, err = e.DB.FindCustomer(ctx, p.ProjectID, billing.EnvTest, f.customer); err != nil {
		t.Fatal(err)
	}
	return f
}

// assertUnchanged asserts that nothing was written: no new customer, the
// customer and the session as they were.
func (f failureFixture) assertUnchanged(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	db := f.p.e.DB
	if ids := f.p.customerIDs(t, billing.EnvTest); !slices.Equal(ids, []string{f.customer}) {
		t.Errorf("got customers %v, want only %s", ids, f.customer)
	}
	got, err := db.FindCustomer(ctx, f.p.ProjectID, billing.EnvTest, f.customer)
	if err != nil || got.Name != f.want.Name || got.Email != f.want.Email || got.Deleted {
		t.Errorf("got customer %+v, %v; want it unchanged: %+v", got, err, f.want)
	}
	s, err := db.FindCheckoutSession(ctx, f.p.ProjectID, billing.EnvTest, f.session)
	if err != nil || s.Status != "open" || s.UserID != "user_a" {
		t.Errorf("got session %+v, %v; want it unchanged", s, err)
	}
}

// wantFailure asserts the error a caller sees for a Stripe failure.
func wantFailure(t *testing.T, f stripeFailure, stripeKey string, resp *http.Response, b []byte) {
	t.Helper()
	if strings.Contains(string(b), stripeKey) || strings.Contains(string(b), stripeKey[len(stripeKey)-12:]) {
		t.Errorf("got %s, want no part of the Stripe key in an error", b)
	}
	if resp.StatusCode != f.status {
		t.Fatalf("got %d %s, want %d", resp.StatusCode, b, f.status)
	}
	eb := apiError(t, b)
	if eb.Code != f.code || (f.message != "" && eb.Message != f.message) || deref(eb.StripeCode) != f.stripeCode || deref(eb.Param) != f.param {
		t.Errorf("got %s, want code %s, message %q, stripe_code %q, param %q", b, f.code, f.message, f.stripeCode, f.param)
	}
}

func TestStripeFailures(t *testing.T) {
	t.Parallel()
	cfg := stripeadapter.Config{Timeout: stripeTimeout, MaxNetworkRetries: -1}
	spyEnvWith(t, cfg, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		for _, f := range stripeFailures {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				fx := newFailureFixture(t, e)
				spy.answer(fx.p.StripeKey, f.answer(fx.p.StripeKey))
				calls := billingCalls(fx.customer, fx.session)
				t.Run("Calls", func(t *testing.T) {
					for _, c := range calls {
						if c.name == "DeleteCustomer" {
							continue // last, below: on success it changes the record
						}
						t.Run(c.name, func(t *testing.T) {
							t.Parallel()
							resp, b := c.send(t, fx.p, "")
							want := f
							if f.status == http.StatusNotFound && createsObject[c.name] {
								// What a create misses is an object it named: bad input.
								want.status, want.code = http.StatusBadRequest, gen.ErrorBodyCodeInvalidRequest
							}
							wantFailure(t, want, fx.p.StripeKey, resp, b)
						})
					}
				})
				del := calls[slices.IndexFunc(calls, func(c billingCall) bool { return c.name == "DeleteCustomer" })]
				resp, b := del.send(t, fx.p, "")
				if f.status == http.StatusNotFound {
					// Stripe no longer has it: it is deleted here too.
					if resp.StatusCode != http.StatusOK {
						t.Errorf("delete: got %d %s, want 200", resp.StatusCode, b)
					}
					if _, err := e.DB.FindCustomer(context.Background(), fx.p.ProjectID, billing.EnvTest, fx.customer); err == nil {
						t.Errorf("customer %s is still recorded after a delete Stripe answered with 404", fx.customer)
					}
					return
				}
				wantFailure(t, f, fx.p.StripeKey, resp, b)
				fx.assertUnchanged(t)
			})
		}
	})
}

func TestStripeUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	refused := stripeFailure{name: "ErrConnectionRefused", status: 502, code: gen.ErrorBodyCodeStripeError, message: "Stripe is unavailable."}
	eachEnv(t, func(t *testing.T, e *testEnv) {
		fx := newFailureFixture(t, e)
		for _, c := range billingCalls(fx.customer, fx.session) {
			t.Run(c.name, func(t *testing.T) {
				resp, b := c.send(t, fx.p, "")
				wantFailure(t, refused, fx.p.StripeKey, resp, b)
			})
		}
		fx.assertUnchanged(t)
	}, stripeAt(closed, stripeadapter.Config{Timeout: stripeTimeout, MaxNetworkRetries: -1}))
}

// TestIdempotencyKey checks that every create reaches Stripe with the
// caller's Idempotency-Key, or with one the service made, and that a retry
// of the service's own reuses it.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	spyEnvWith(t, stripeadapter.Config{MaxNetworkRetries: 1}, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		p := e.newProject(t, "")
		customer := p.receiveCustomer(t, "cus_idem"+randHex(4), "", "user_a")
		var creates []billingCall
		for _, c := range billingCalls(customer, "") {
			if c.method == "POST" || c.method == "PUT" {
				creates = append(creates, c)
			}
		}
		for _, c := range creates {
			t.Run(c.name, func(t *testing.T) {
				t.Run("Caller", func(t *testing.T) {
					key := "order-42-" + c.name
					h := p.headers("Idempotency-Key", key)
					if c.buyer {
						h = p.bearer(t, "user_a", "", "Idempotency-Key", key)
					}
					if resp, b := e.do(t, c.method, c.path, h, bodyOf(c.body)); resp.StatusCode != http.StatusOK {
						t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
					}
					calls := spy.calls(p.StripeKey)
					if got := calls[len(calls)-1].Header.Get("Idempotency-Key"); got != key {
						t.Errorf("got Idempotency-Key %q, want the caller's %q", got, key)
					}
				})
				t.Run("Generated", func(t *testing.T) {
					var keys []string
					for range 2 {
						if resp, b := c.send(t, p, ""); resp.StatusCode != http.StatusOK {
							t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
						}
						calls := spy.calls(p.StripeKey)
						keys = append(keys, calls[len(calls)-1].Header.Get("Idempotency-Key"))
					}
					if keys[0] == "" || keys[0] == keys[1] {
						t.Errorf("got Idempotency-Keys %q, want one generated per request", keys)
					}
				})
			})
		}
		t.Run("RetryReusesKey", func(t *testing.T) {
			rp := e.newProject(t, "")
			var failed atomic.Bool
			spy.answer(rp.StripeKey, func(w http.ResponseWriter, r *http.Request, _ url.Values) bool {
				if failed.Swap(true) {
					return false // stripe-mock answers the retry
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `{"error":{"type":"api_error","message":"Please retry."}}`)
				return true
			})
			em := openapi_types.Email("retry@example.com")
			resp, err := e.API.CreateCustomerWithResponse(context.Background(), nil, gen.CustomerRequest{Email: &em}, rp.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200 after the adapter's retry", err, body(resp))
			}
			calls := spy.calls(rp.StripeKey)
			if len(calls) != 2 {
				t.Fatalf("got %d Stripe calls, want 2 (one retry)", len(calls))
			}
			if k0, k1 := calls[0].Header.Get("Idempotency-Key"), calls[1].Header.Get("Idempotency-Key"); k0 == "" || k0 != k1 {
				t.Errorf("got Idempotency-Keys %q and %q, want the same key on the retry", k0, k1)
			}
			if ids := rp.customerIDs(t, billing.EnvTest); !slices.Equal(ids, []string{resp.JSON200.Id}) {
				t.Errorf("got customers %v, want one: %s", ids, resp.JSON200.Id)
			}
		})
	})
}

// TestEnvironments checks that ?environment=live needs live keys, uses them
// and the live publishable key, and that test and live records never mix.
func TestEnvironments(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		p := e.newProject(t, "")
		customer := p.receiveCustomer(t, "cus_env"+randHex(4), "", "user_a")
		session := "cs_test_env" + randHex(4)
		p.recordSession(t, billing.EnvTest, session, "user_a")
		calls := append(billingCalls(customer, session),
			billingCall{"ListCustomers", "GET", "/v1/stripe/customers", ``, false})

		t.Run("ErrLiveNotConfigured", func(t *testing.T) {
			for _, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					resp, b := c.send(t, p, "environment=live")
					if resp.StatusCode != http.StatusForbidden || errorMessage(t, b) != "Stripe is not configured for live." {
						t.Errorf("got %d %s, want 403 Stripe is not configured for live.", resp.StatusCode, b)
					}
				})
			}
			if got := spy.calls(p.StripeKey); len(got) != 0 {
				t.Errorf("got Stripe calls %v with the test key, want none", callPaths(got))
			}
		})

		liveKey, livePublishable := p.configureLive(t)
		live := gen.EnvironmentLive
		test := gen.EnvironmentTest

		t.Run("LiveUsesLiveKey", func(t *testing.T) {
			em := openapi_types.Email("live@example.com")
			md := gen.Metadata{"user_id": "user_a"}
			cr, err := e.API.CreateCustomerWithResponse(ctx, &gen.CreateCustomerParams{Environment: &live},
				gen.CustomerRequest{Email: &em, Metadata: &md}, p.creds)
			if err != nil || cr.JSON200 == nil {
				t.Fatalf("create live customer: %v %s", err, body(cr))
			}
			liveCustomer := cr.JSON200.Id
			call := spy.only(t, liveKey)
			if got := call.Header.Get("Authorization"); got != "Bearer "+liveKey {
				t.Errorf("got Authorization %q, want the live key", got)
			}
			pi, err := e.API.CreatePaymentIntentWithResponse(ctx, &gen.CreatePaymentIntentParams{Environment: &live},
				gen.CreatePaymentIntentRequest{Amount: 500, Currency: "usd", Customer: &liveCustomer}, p.buyer(t, "user_a", ""))
			if err != nil || pi.JSON200 == nil || pi.JSON200.PublishableKey != livePublishable {
				t.Errorf("live payment intent: got %v %s, want the live publishable key %s", err, body(pi), livePublishable)
			}
			if n := len(spy.calls(liveKey)); n != 2 {
				t.Errorf("got %d calls with the live key, want 2", n)
			}
			if got := spy.calls(p.StripeKey); len(got) != 0 {
				t.Errorf("got Stripe calls %v with the test key for live requests, want none", callPaths(got))
			}

			// Test and live records never mix.
			if ids := p.customerIDs(t, billing.EnvLive); !slices.Equal(ids, []string{liveCustomer}) {
				t.Errorf("live customers: got %v, want %s", ids, liveCustomer)
			}
			if ids := p.customerIDs(t, billing.EnvTest); !slices.Equal(ids, []string{customer}) {
				t.Errorf("test customers: got %v, want %s", ids, customer)
			}
			if r, _ := e.API.GetCustomerWithResponse(ctx, liveCustomer, &gen.GetCustomerParams{Environment: &test}, p.creds); r.JSON404 == nil {
				t.Errorf("live customer in test: got %s, want 404", body(r))
			}
			if r, _ := e.API.GetCustomerWithResponse(ctx, customer, &gen.GetCustomerParams{Environment: &live}, p.creds); r.JSON404 == nil {
				t.Errorf("test customer in live: got %s, want 404", body(r))
			}
			if r, _ := e.API.GetCheckoutSessionWithResponse(ctx, session, &gen.GetCheckoutSessionParams{Environment: &live}, p.buyer(t, "user_a", "")); r.JSON404 == nil {
				t.Errorf("test session in live: got %s, want 404", body(r))
			}
			if r, _ := e.API.ListCustomersWithResponse(ctx, &gen.ListCustomersParams{Environment: &live}, p.creds); r.JSON200 == nil || len(r.JSON200.Data) != 1 || r.JSON200.Data[0].Id != liveCustomer {
				t.Errorf("live list: got %s, want only %s", body(r), liveCustomer)
			}
		})

		t.Run("TestStillUsesTestKey", func(t *testing.T) {
			pi, err := e.API.CreatePaymentIntentWithResponse(ctx, nil,
				gen.CreatePaymentIntentRequest{Amount: 500, Currency: "usd"}, p.buyer(t, "user_a", ""))
			if err != nil || pi.JSON200 == nil || pi.JSON200.PublishableKey != p.PublishableKey {
				t.Errorf("got %v %s, want the test publishable key", err, body(pi))
			}
			if got := spy.only(t, p.StripeKey).Header.Get("Authorization"); got != "Bearer "+p.StripeKey {
				t.Errorf("got Authorization %q, want the test key", got)
			}
		})

		t.Run("NewKeyTakesEffect", func(t *testing.T) {
			newKey := "rk_test_" + randHex(12)
			e.secret(newKey)
			sr, err := e.API.PutStripeSetupWithResponse(ctx, &gen.PutStripeSetupParams{Environment: &test},
				gen.StripeSetupRequest{SecretKey: newKey, PublishableKey: p.PublishableKey, WebhookSecret: &p.WebhookKey}, p.creds)
			if err != nil || sr.JSON200 == nil {
				t.Fatalf("put test keys: %v %s", err, body(sr))
			}
			if r, _ := e.API.GetCustomerWithResponse(ctx, customer, nil, p.creds); r.JSON200 == nil {
				t.Fatalf("got %s, want 200", body(r))
			}
			spy.only(t, newKey)
		})
	})
}
