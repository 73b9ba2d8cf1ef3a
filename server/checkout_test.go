package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/buyertoken/buyertokentest"
)

func lineItems(price string, qty int64) *[]gen.LineItem {
	return &[]gen.LineItem{{Price: price, Quantity: qty}}
}

func TestCheckoutSession(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()

		t.Run("Payment", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			md := gen.Metadata{"order": "42", "user_id": "someone-else"}
			resp, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, gen.CreateCheckoutSessionRequest{
				Mode: gen.CreateCheckoutSessionRequestModePayment, LineItems: lineItems("price_123", 2),
				SuccessUrl: "https://shop.example.com/ok", Metadata: &md, AllowPromotionCodes: ptr(true),
			}, p.buyer(t, "user_a", "a@example.com"))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			call := spy.only(t, p.StripeKey)
			wantForm(t, call, map[string]string{
				"mode": "payment", "line_items[0][price]": "price_123", "line_items[0][quantity]": "2",
				"client_reference_id": "user_a", "metadata[user_id]": "user_a", "metadata[order]": "42",
				"metadata[tenant_id]": p.TenantID, "metadata[project_id]": p.ProjectID, "allow_promotion_codes": "true",
			})
			if call.Form.Has("subscription_data[metadata][user_id]") || call.Form.Has("customer") {
				t.Errorf("got form %v, want no subscription data and no customer in payment mode", call.Form)
			}
			rec, err := e.DB.FindCheckoutSession(ctx, p.ProjectID, billing.EnvTest, resp.JSON200.Id)
			if err != nil || rec.UserID != "user_a" || rec.Mode != "payment" {
				t.Errorf("got record %+v, %v; want it recorded as user_a's", rec, err)
			}
		})

		t.Run("Subscription", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			email := openapi_types.Email("sub@example.com")
			resp, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, gen.CreateCheckoutSessionRequest{
				Mode: gen.CreateCheckoutSessionRequestModeSubscription, LineItems: lineItems("price_monthly", 1),
				SuccessUrl: "https://shop.example.com/ok", CancelUrl: ptr("https://shop.example.com/cancel"),
				CustomerEmail: &email, TrialPeriodDays: ptr(int64(14)),
			}, p.buyer(t, "user_s", ""))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			wantForm(t, spy.only(t, p.StripeKey), map[string]string{
				"mode": "subscription", "client_reference_id": "user_s", "customer_email": "sub@example.com",
				"subscription_data[trial_period_days]":    "14",
				"subscription_data[metadata][user_id]":    "user_s",
				"subscription_data[metadata][tenant_id]":  p.TenantID,
				"subscription_data[metadata][project_id]": p.ProjectID,
				"metadata[user_id]":                       "user_s",
			})
		})

		t.Run("Setup", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			resp, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, gen.CreateCheckoutSessionRequest{
				Mode: gen.CreateCheckoutSessionRequestModeSetup, Currency: ptr("EUR"), SuccessUrl: "https://shop.example.com/saved",
			}, p.buyer(t, "user_setup", ""))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			call := spy.only(t, p.StripeKey)
			wantForm(t, call, map[string]string{"mode": "setup", "currency": "eur", "client_reference_id": "user_setup"})
			if call.Form.Has("line_items[0][price]") {
				t.Errorf("got form %v, want no line items in setup mode", call.Form)
			}
		})

		t.Run("ExistingCustomer", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			mine := p.receiveCustomer(t, "cus_mine"+randHex(4), "a@example.com", "user_a")
			theirs := p.receiveCustomer(t, "cus_theirs"+randHex(4), "b@example.com", "user_b")
			req := func(customer string) gen.CreateCheckoutSessionRequest {
				return gen.CreateCheckoutSessionRequest{Mode: gen.CreateCheckoutSessionRequestModePayment,
					LineItems: lineItems("price_123", 1), SuccessUrl: "https://shop.example.com/ok", Customer: &customer}
			}
			resp, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, req(mine), p.buyer(t, "user_a", "a@example.com"))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("own customer: got %v %s, want 200", err, body(resp))
			}
			wantForm(t, spy.only(t, p.StripeKey), map[string]string{"customer": mine})
			for name, id := range map[string]string{"OtherBuyers": theirs, "Unknown": "cus_1234567890"} {
				resp, _ := e.API.CreateCheckoutSessionWithResponse(ctx, nil, req(id), p.buyer(t, "user_a", "a@example.com"))
				if resp.JSON404 == nil || deref(resp.JSON404.Error.Param) != "customer" {
					t.Errorf("%s customer: got %s, want 404 naming customer", name, body(resp))
				}
			}
			if n := len(spy.calls(p.StripeKey)); n != 1 {
				t.Errorf("got %d Stripe calls, want only the one for the buyer's own customer", n)
			}
		})

		t.Run("Status", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			resp, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, gen.CreateCheckoutSessionRequest{
				Mode: gen.CreateCheckoutSessionRequestModePayment, LineItems: lineItems("price_123", 1), SuccessUrl: "https://shop.example.com/ok",
			}, p.buyer(t, "user_a", ""))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("create: got %v %s", err, body(resp))
			}
			id := resp.JSON200.Id
			got, err := e.API.GetCheckoutSessionWithResponse(ctx, id, nil, p.buyer(t, "user_a", ""))
			if err != nil || got.JSON200 == nil || got.JSON200.Id != id || deref(got.JSON200.Status) != "open" {
				t.Fatalf("own session: got %v %s, want 200 open", err, body(got))
			}
			calls := spy.calls(p.StripeKey)
			if last := calls[len(calls)-1]; last.Method != "GET" || last.Path != "/v1/checkout/sessions/"+id {
				t.Errorf("got Stripe call %s %s, want GET /v1/checkout/sessions/%s", last.Method, last.Path, id)
			}
			before := len(calls)
			for name, c := range map[string]struct{ id, sub string }{
				"OtherBuyers": {id, "user_b"},
				"Unknown":     {"cs_test_abc123", "user_a"},
			} {
				resp, b := e.do(t, "GET", "/v1/stripe/checkout/session/"+c.id, p.bearer(t, c.sub, ""), nil)
				if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "open") {
					t.Errorf("%s: got %d %s, want 404 showing nothing", name, resp.StatusCode, b)
				}
			}
			if n := len(spy.calls(p.StripeKey)); n != before {
				t.Errorf("got %d Stripe calls for sessions not the buyer's, want none", n-before)
			}
		})

		t.Run("CompletedSessionGivesCustomerToBuyer", func(t *testing.T) {
			t.Parallel()
			p := e.newProject(t, "")
			resp, err := e.API.CreateCheckoutSessionWithResponse(ctx, nil, gen.CreateCheckoutSessionRequest{
				Mode: gen.CreateCheckoutSessionRequestModePayment, LineItems: lineItems("price_123", 1), SuccessUrl: "https://shop.example.com/ok",
			}, p.buyer(t, "user_c", "c@example.com"))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("create: got %v %s", err, body(resp))
			}
			id := resp.JSON200.Id
			customer := "cus_checkout" + randHex(4)
			spy.answer(p.StripeKey, func(w http.ResponseWriter, r *http.Request, _ url.Values) bool {
				if r.Method != "GET" || r.URL.Path != "/v1/checkout/sessions/"+id {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":%q,"object":"checkout.session","mode":"payment","status":"complete","payment_status":"paid",
					"customer":%q,"customer_email":null,"client_reference_id":"user_c","amount_total":1500,"currency":"usd",
					"payment_intent":"pi_done","url":null,"created":1700000000,"metadata":{"user_id":"user_c"}}`, id, customer)
				return true
			})
			got, err := e.API.GetCheckoutSessionWithResponse(ctx, id, nil, p.buyer(t, "user_c", "c@example.com"))
			if err != nil || got.JSON200 == nil {
				t.Fatalf("status: got %v %s", err, body(got))
			}
			s := got.JSON200
			if deref(s.Status) != "complete" || deref(s.PaymentStatus) != "paid" || deref(s.Customer) != customer || deref(s.AmountTotal) != 1500 || deref(s.PaymentIntent) != "pi_done" {
				t.Errorf("got %s, want the completed session with its customer", got.Body)
			}
			// The customer arrives by webhook with neither the buyer's id nor
			// the buyer's email; it is the buyer's through the checkout.
			p.receiveCustomer(t, customer, "someone@example.org", "")
			portal := func(sub, email string) *gen.CreatePortalSessionResponse {
				r, err := e.API.CreatePortalSessionWithResponse(ctx, nil,
					gen.CreatePortalSessionRequest{Customer: customer, ReturnUrl: "https://shop.example.com/account"}, p.buyer(t, sub, email))
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			if r := portal("user_c", "c@example.com"); r.JSON200 == nil {
				t.Errorf("buyer of the checkout: got %s, want 200", body(r))
			}
			if r := portal("user_d", "d@example.com"); r.JSON404 == nil {
				t.Errorf("another buyer: got %s, want 404", body(r))
			}
		})
	})
}

func TestPaymentIntent(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		p := e.newProject(t, "")
		mine := p.receiveCustomer(t, "cus_pi"+randHex(4), "", "user_a")
		theirs := p.receiveCustomer(t, "cus_pi"+randHex(4), "", "user_b")

		t.Run("OK", func(t *testing.T) {
			md := gen.Metadata{"cart": "c-9"}
			resp, err := e.API.CreatePaymentIntentWithResponse(ctx, nil, gen.CreatePaymentIntentRequest{
				Amount: 1250, Currency: "EUR", Customer: &mine, Metadata: &md,
			}, p.buyer(t, "user_a", ""))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s, want 200", err, body(resp))
			}
			pi := resp.JSON200
			if pi.ClientSecret == "" || pi.PublishableKey != p.PublishableKey || deref(pi.Amount) != 1250 || deref(pi.Currency) != "eur" {
				t.Errorf("got %s, want a client secret, the publishable key, 1250 eur", resp.Body)
			}
			calls := spy.calls(p.StripeKey)
			wantForm(t, calls[len(calls)-1], map[string]string{
				"amount": "1250", "currency": "eur", "customer": mine, "automatic_payment_methods[enabled]": "true",
				"metadata[cart]": "c-9", "metadata[user_id]": "user_a", "metadata[tenant_id]": p.TenantID,
			})
			rec, err := e.DB.FindPaymentIntent(ctx, p.ProjectID, billing.EnvTest, pi.PaymentIntentId)
			if err != nil || rec.CustomerID != mine || rec.UserID != "user_a" {
				t.Errorf("got record %+v, %v; want it recorded for user_a and %s", rec, err, mine)
			}
		})
		t.Run("ErrOtherBuyersCustomer", func(t *testing.T) {
			before := len(spy.calls(p.StripeKey))
			resp, b := e.do(t, "POST", "/v1/stripe/payment/intent", p.bearer(t, "user_a", ""),
				strings.NewReader(`{"amount":100,"currency":"usd","customer":"`+theirs+`"}`))
			wantNotFound(t, resp, b, "customer")
			if n := len(spy.calls(p.StripeKey)); n != before {
				t.Errorf("got %d Stripe calls, want none", n-before)
			}
		})
	})
}

func TestPortal(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		ctx := context.Background()
		p := e.newProject(t, "")
		byUser := p.receiveCustomer(t, "cus_byuser"+randHex(4), "", "user_a")
		byEmail := p.receiveCustomer(t, "cus_byemail"+randHex(4), "Ada@Example.com", "")
		gone := p.receiveCustomer(t, "cus_gone"+randHex(4), "", "user_a")
		if r, err := e.API.DeleteCustomerWithResponse(ctx, gone, nil, p.creds); err != nil || r.JSON200 == nil {
			t.Fatalf("delete: %v %s", err, body(r))
		}
		open := func(t *testing.T, customer, sub, email string) (*http.Response, []byte) {
			return e.do(t, "POST", "/v1/stripe/customer-portal/session", p.bearer(t, sub, email),
				strings.NewReader(`{"customer":"`+customer+`","return_url":"https://shop.example.com/account"}`))
		}
		for name, c := range map[string]struct{ customer, sub, email string }{
			"ByUserID": {byUser, "user_a", ""},
			"ByEmail":  {byEmail, "user_x", "ada@example.COM"},
		} {
			t.Run(name, func(t *testing.T) {
				resp, b := open(t, c.customer, c.sub, c.email)
				if resp.StatusCode != http.StatusOK || decodeBody[gen.PortalSession](t, b).Url == "" {
					t.Fatalf("got %d %s, want 200 with a url", resp.StatusCode, b)
				}
				calls := spy.calls(p.StripeKey)
				wantForm(t, calls[len(calls)-1], map[string]string{"customer": c.customer, "return_url": "https://shop.example.com/account"})
			})
		}
		for name, c := range map[string]struct{ customer, sub, email string }{
			"ErrOtherBuyer":       {byUser, "user_b", "b@example.com"},
			"ErrOtherEmail":       {byEmail, "user_b", "ada@example.org"},
			"ErrNoEmailInToken":   {byEmail, "user_b", ""},
			"ErrDeletedCustomer":  {gone, "user_a", ""},
			"ErrUnknownCustomer":  {"cus_1234567890", "user_a", ""},
			"ErrSubjectIsNotMail": {byEmail, "Ada@Example.com", ""},
		} {
			t.Run(name, func(t *testing.T) {
				before := len(spy.calls(p.StripeKey))
				resp, b := open(t, c.customer, c.sub, c.email)
				wantNotFound(t, resp, b, "customer")
				if n := len(spy.calls(p.StripeKey)); n != before {
					t.Errorf("got %d Stripe calls, want none", n-before)
				}
			})
		}
	})
}

// buyerCalls are the four endpoints that need a buyer token, with a valid
// request each.
var buyerCalls = []struct {
	name, method, path, body string
}{
	{"CreateCheckoutSession", "POST", "/v1/stripe/checkout/session", `{"mode":"payment","line_items":[{"price":"price_1","quantity":1}],"success_url":"https://a.example.com/ok"}`},
	{"GetCheckoutSession", "GET", "/v1/stripe/checkout/session/cs_test_abc123", ""},
	{"CreatePaymentIntent", "POST", "/v1/stripe/payment/intent", `{"amount":100,"currency":"usd"}`},
	{"CreatePortalSession", "POST", "/v1/stripe/customer-portal/session", `{"customer":"cus_1234567890","return_url":"https://a.example.com/"}`},
}

func bodyOf(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

func TestBuyerToken(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		p := e.newProject(t, "")
		other := e.newProject(t, p.TenantID)
		p.receiveCustomer(t, "cus_1234567890", "", "user_a")
		p.recordSession(t, billing.EnvTest, "cs_test_abc123", "user_a")
		hour := time.Now().Add(time.Hour).Unix()
		tokens := map[string]string{
			"ErrMissing":           "",
			"ErrNotBearer":         "Basic " + p.token(t, "user_a", ""),
			"ErrEmptyBearer":       "Bearer ",
			"ErrGarbage":           "Bearer not.a.token",
			"ErrExpired":           "Bearer " + buyertokentest.SignHS256(t, p.HS256, map[string]any{"sub": "user_a", "exp": time.Now().Add(-time.Hour).Unix()}),
			"ErrOtherProjectToken": "Bearer " + other.token(t, "user_a", ""),
			"ErrNoSubject":         "Bearer " + buyertokentest.SignHS256(t, p.HS256, map[string]any{"email": "a@example.com", "exp": hour}),
		}
		for _, call := range buyerCalls {
			t.Run(call.name, func(t *testing.T) {
				t.Run("OK", func(t *testing.T) {
					resp, b := e.do(t, call.method, call.path, p.bearer(t, "user_a", ""), bodyOf(call.body))
					if resp.StatusCode != http.StatusOK {
						t.Errorf("got %d %s, want 200", resp.StatusCode, b)
					}
				})
				for name, auth := range tokens {
					t.Run(name, func(t *testing.T) {
						before := len(spy.calls(p.StripeKey))
						resp, b := e.do(t, call.method, call.path, p.headers("Authorization", auth), bodyOf(call.body))
						if resp.StatusCode != http.StatusUnauthorized || apiError(t, b).Code != gen.ErrorBodyCodeUnauthorized {
							t.Errorf("got %d %s, want 401", resp.StatusCode, b)
						}
						if n := len(spy.calls(p.StripeKey)); n != before {
							t.Errorf("got %d Stripe calls, want none", n-before)
						}
					})
				}
			})
		}
		t.Run("ErrNotConfigured", func(t *testing.T) {
			np := e.newProjectWithoutBuyerAuth(t)
			for _, call := range buyerCalls {
				resp, b := e.do(t, call.method, call.path, np.bearer(t, "user_a", ""), bodyOf(call.body))
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(errorMessage(t, b), "PUT /v1/setup/auth") {
					t.Errorf("%s: got %d %s, want 403 saying to configure buyer tokens with PUT /v1/setup/auth", call.name, resp.StatusCode, b)
				}
			}
			if calls := spy.calls(np.StripeKey); len(calls) != 0 {
				t.Errorf("got Stripe calls %v, want none", callPaths(calls))
			}
		})
	})
}
