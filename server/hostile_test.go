package server_test

// Hostile input: what an attacker holding one project's credentials, a
// buyer token, or nothing at all can send, and what the service must answer.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/metrics"
	"github.com/stackfordevs/billing/internal/urlguard"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// sendWebhook signs payload with the project's test signing secret at ts
// (now when zero) and posts it with contentType.
func (p *testProject) sendWebhook(t testing.TB, payload []byte, ts time.Time, contentType string) (*http.Response, []byte) {
	t.Helper()
	body, sig := stripetest.SignedPayload(t, payload, p.WebhookKey, ts)
	h := http.Header{"Stripe-Signature": {sig}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return p.e.do(t, http.MethodPost, "/v1/stripe/webhook/"+p.ProjectID+"?environment=test", h, bytes.NewReader(body))
}

// customerEvent returns a customer.created event of the project with the
// fields of set replaced.
func (p *testProject) customerEvent(t testing.TB, id string, set map[string]any) []byte {
	t.Helper()
	fields := map[string]any{
		"id":                   "evt_" + randHex(8),
		"created":              time.Now().Unix(),
		"data.object.id":       id,
		"data.object.metadata": map[string]any{"tenant_id": p.TenantID, "project_id": p.ProjectID},
	}
	for k, v := range set {
		fields[k] = v
	}
	return stripetest.Event(t, "customer.created", fields)
}

// TestDecodeOnce checks that a body is read by the rules the validator
// applied: member names match exactly, and a member the schema does not
// name (a typo, or a letter-case variant of one it does) is a 400 naming it,
// before anything reaches Stripe.
func TestDecodeOnce(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		p := e.newProject(t, "")
		adminH := http.Header{"Authorization": {"Bearer " + adminToken}}
		buyer := p.bearer(t, "user_a", "")
		md := map[string]string{}
		for i := range 60 {
			md[fmt.Sprintf("k%d", i)] = "v"
		}
		md60, _ := json.Marshal(md)
		item := `"line_items":[{"price":"price_1","quantity":1}]`
		cases := []struct {
			name, method, path string
			h                  http.Header
			body, param        string
		}{
			{"ErrAmountCase", "POST", "/v1/stripe/payment/intent", buyer, `{"amount":100,"currency":"usd","Amount":-500}`, "Amount"},
			{"ErrQuantityCase", "POST", "/v1/stripe/checkout/session", buyer,
				`{"mode":"payment","success_url":"https://a.example/s","line_items":[{"price":"price_1","quantity":1,"Quantity":-3}]}`, "line_items.0.Quantity"},
			{"ErrSuccessURLCase", "POST", "/v1/stripe/checkout/session", buyer,
				`{"mode":"payment","success_url":"https://a.example/s","Success_url":"javascript:alert(1)",` + item + `}`, "Success_url"},
			{"ErrTrialCase", "POST", "/v1/stripe/checkout/session", buyer,
				`{"mode":"subscription","success_url":"https://a.example/s","Trial_period_days":100000,` + item + `}`, "Trial_period_days"},
			{"ErrNameCase", "POST", "/v1/stripe/customers", p.headers(), `{"name":"ok","Name":"` + strings.Repeat("n", 300) + `"}`, "Name"},
			{"ErrMetadataCase", "POST", "/v1/stripe/customers", p.headers(), `{"metadata":{"a":"b"},"Metadata":` + string(md60) + `}`, "Metadata"},
			{"ErrTenantNameCase", "POST", "/v1/admin/tenants", adminH, `{"name":"ok","NAME":""}`, "NAME"},
			{"ErrSetupIssuerCase", "PUT", "/v1/setup/auth", p.headers(), `{"hs256_secret":"` + p.HS256 + `","Issuer":"https://evil.example/"}`, "Issuer"},
			{"ErrTypo", "POST", "/v1/stripe/customers", p.headers(), `{"nmae":"typo"}`, "nmae"},
			{"ErrTypoInItem", "POST", "/v1/stripe/checkout/session", buyer,
				`{"mode":"payment","success_url":"https://a.example/s","line_items":[{"price":"price_1","quantity":1,"qty":2}]}`, "line_items.0.qty"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, b := e.do(t, c.method, c.path, c.h, strings.NewReader(c.body))
				eb := wantError(t, resp, b, http.StatusBadRequest, c.param)
				if !strings.Contains(eb.Message, c.param) {
					t.Errorf("got message %q, want it to name %q", eb.Message, c.param)
				}
			})
		}
		if calls := spy.calls(p.StripeKey); len(calls) != 0 {
			t.Errorf("got Stripe calls %v, want none", callPaths(calls))
		}
		a, err := e.DB.FindAuthSettings(context.Background(), p.ProjectID)
		if err != nil || a.Issuer != "" {
			t.Errorf("got auth settings %+v, %v; want the issuer unchanged", a, err)
		}
	})
}

// TestQueryBounds checks that nothing in a URL can grow the service's
// memory: long URLs are refused, unknown query parameters are 400s, and the
// project's read endpoints draw on the query budget.
func TestQueryBounds(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	t.Run("ErrURITooLong", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.URL+"/v1/usage?from=2026-01-01&x="+strings.Repeat("a", 9<<10), nil)
		p.setCreds(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestURITooLong {
			t.Fatalf("got %d %s, want 414", resp.StatusCode, b)
		}
		if eb := apiError(t, b); eb.RequestId == "" {
			t.Errorf("got %s, want a request id", b)
		}
	})
	t.Run("ErrUnknownQueryParameter", func(t *testing.T) {
		resp, b := e.do(t, "GET", "/v1/usage?pad="+strings.Repeat("p", 2000), p.headers(), nil)
		wantError(t, resp, b, http.StatusBadRequest, "pad")
	})
	for _, path := range []string{"/v1/usage", "/v1/webhooks/events", "/v1/setup/stripe", "/v1/setup/auth"} {
		t.Run("QueryBudget"+path, func(t *testing.T) {
			resp, b := e.do(t, "GET", path, p.headers(), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			if got := resp.Header.Get("X-RateLimit-Limit"); got != "5000" {
				t.Errorf("got X-RateLimit-Limit %q, want the query budget 5000", got)
			}
		})
	}
}

// TestMethods checks that a wrong or made-up method is a 405, and that made-up
// methods share one metrics label.
func TestMethods(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t), func(c *serverConfig) { c.Metrics = metrics.New() })
	p := e.newProject(t, "")
	t.Run("ErrWrongMethod", func(t *testing.T) {
		resp, b := e.do(t, "DELETE", "/v1/stripe/customers", p.headers(), nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("got %d %s, want 405", resp.StatusCode, b)
		}
		allow := resp.Header.Get("Allow")
		if !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
			t.Errorf("got Allow %q, want GET and POST", allow)
		}
		if eb := apiError(t, b); eb.RequestId == "" {
			t.Errorf("got %s, want a request id", b)
		}
	})
	for i := range 30 {
		method := fmt.Sprintf("MADEUP%d", i)
		for _, path := range []string{"/v1/stripe/customers", "/nothing/here"} {
			req, _ := http.NewRequest(method, e.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: got %d, want 405", method, path, resp.StatusCode)
			}
		}
	}
	resp, err := http.Get(e.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "MADEUP") {
		t.Errorf("made-up methods are metric labels")
	}
	if !strings.Contains(string(b), `method="other"`) {
		t.Errorf("got no method=\"other\" series in /metrics")
	}
}

// TestNULAndInvalidUTF8 checks that NUL bytes and invalid UTF-8 anywhere in a
// request are a 400 before any Stripe call, and that a signed webhook event
// carrying them is stored (sanitised) and acknowledged, on every database.
func TestNULAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	spyEnv(t, func(t *testing.T, e *testEnv, spy *stripeSpy) {
		p := e.newProject(t, "")
		customer := p.receiveCustomer(t, "cus_utf"+randHex(4), "utf@example.com", "user_a")
		cases := []struct {
			name, method, path string
			h                  http.Header
			body, param        string
		}{
			{"ErrNULInName", "POST", "/v1/stripe/customers", p.headers(), `{"name":"a\u0000b"}`, "name"},
			{"ErrNULInMetadataValue", "POST", "/v1/stripe/customers", p.headers(), `{"metadata":{"k":"v\u0000"}}`, "metadata.k"},
			{"ErrNULInMetadataKey", "POST", "/v1/stripe/customers", p.headers(), `{"metadata":{"k\u0000":"v"}}`, "metadata"},
			{"ErrInvalidUTF8InBody", "POST", "/v1/stripe/customers", p.headers(), "{\"name\":\"a\xff\xfeb\"}", ""},
			{"ErrNULInPath", "GET", "/v1/stripe/customers/cus_%00", p.headers(), "", "id"},
			{"ErrInvalidUTF8InPath", "GET", "/v1/stripe/customers/%ff%fe", p.headers(), "", "id"},
			{"ErrNULInUpdatePath", "PUT", "/v1/stripe/customers/cus_%00", p.headers(), `{"name":"x"}`, "id"},
			{"ErrNULInCursor", "GET", "/v1/stripe/customers?starting_after=cus_%00", p.headers(), "", "starting_after"},
			{"ErrInvalidUTF8InCursor", "GET", "/v1/webhooks/events?starting_after=%ff%fe", p.headers(), "", "starting_after"},
			{"ErrNULInEmail", "GET", "/v1/customer/subscription?customerEmail=a%00@example.com", p.headers(), "", "customerEmail"},
			{"ErrInvalidUTF8InIdempotencyKey", "POST", "/v1/stripe/customers", p.headers("Idempotency-Key", "k\xff\xfe"), `{"name":"x"}`, "Idempotency-Key"},
			{"ErrNULInSession", "GET", "/v1/stripe/checkout/session/cs_%00", p.bearer(t, "user_a", ""), "", "id"},
			{"ErrNULInPortalCustomer", "POST", "/v1/stripe/customer-portal/session", p.bearer(t, "user_a", ""),
				`{"customer":"` + customer + `\u0000","return_url":"https://a.example/"}`, "customer"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var body io.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				}
				resp, b := e.do(t, c.method, c.path, c.h, body)
				wantError(t, resp, b, http.StatusBadRequest, c.param)
			})
		}
		if calls := spy.calls(p.StripeKey); len(calls) != 0 {
			t.Errorf("got Stripe calls %v, want none", callPaths(calls))
		}
		t.Run("ErrInvalidCredentialBytes", func(t *testing.T) {
			h := p.headers()
			h.Set("x-api-key", "pk_\xff\xfe")
			resp, b := e.do(t, "GET", "/v1/stripe/customers", h, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("got %d %s, want 401", resp.StatusCode, b)
			}
		})

		t.Run("WebhookSanitised", func(t *testing.T) {
			id := "cus_nul" + randHex(4)
			event := p.customerEvent(t, id, map[string]any{
				"data.object.name":        "Ann\x00 Lee",
				"data.object.description": "INVALID",
				"data.object.email":       "nul@example.com",
			})
			event = bytes.Replace(event, []byte("INVALID"), []byte("caf\xe9 \xff"), 1)
			resp, b := p.sendWebhook(t, event, time.Time{}, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			c := e.customer(t, p.ProjectID, id)
			if c == nil || c.Name != "Ann Lee" || strings.ContainsRune(c.Description, 0) || !strings.HasPrefix(c.Description, "caf") {
				t.Errorf("got customer %+v, want it stored with the NUL removed and valid UTF-8", c)
			}
		})
		t.Run("WebhookNULInType", func(t *testing.T) {
			event := p.customerEvent(t, "cus_type"+randHex(4), map[string]any{"type": "customer.creat\x00ed"})
			resp, b := p.sendWebhook(t, event, time.Time{}, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
		})
	})
}

// TestContentTypes checks that media types compare case-insensitively, that
// a body of another type is a 415 saying so, and that the webhook receiver
// reads its body whatever the type.
func TestContentTypes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	adminH := func(ct string) http.Header {
		return http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {ct}}
	}
	for _, ct := range []string{"APPLICATION/JSON", "Application/Json; Charset=UTF-8", "application/json;charset=utf-8"} {
		t.Run("OK "+ct, func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v1/admin/tenants", adminH(ct), strings.NewReader(`{"name":"Acme"}`))
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("got %d %s, want 201", resp.StatusCode, b)
			}
		})
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/jsonx"} {
		t.Run("ErrUnsupported "+ct, func(t *testing.T) {
			resp, b := e.do(t, "POST", "/v1/admin/tenants", adminH(ct), strings.NewReader(`{"name":"Acme"}`))
			if resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Fatalf("got %d %s, want 415", resp.StatusCode, b)
			}
			if msg := errorMessage(t, b); !strings.Contains(msg, "application/json") {
				t.Errorf("got message %q, want it to name application/json", msg)
			}
		})
	}
	t.Run("WebhookAnyType", func(t *testing.T) {
		p := e.newProject(t, "")
		for _, ct := range []string{"text/plain", "application/octet-stream"} {
			resp, b := p.sendWebhook(t, p.customerEvent(t, "cus_ct"+randHex(4), nil), time.Time{}, ct)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: got %d %s, want 200", ct, resp.StatusCode, b)
			}
		}
	})
}

// TestWebhookSignatureFromTheFuture checks that a signature timestamp more
// than five minutes ahead is refused like a stale one.
func TestWebhookSignatureFromTheFuture(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	resp, b := p.sendWebhook(t, p.customerEvent(t, "cus_future"+randHex(4), nil), time.Now().Add(10*time.Minute), "")
	if eb := apiError(t, b); resp.StatusCode != http.StatusBadRequest || deref(eb.Param) != "Stripe-Signature" {
		t.Errorf("ten minutes ahead: got %d %s, want 400 naming Stripe-Signature", resp.StatusCode, b)
	}
	resp, b = p.sendWebhook(t, p.customerEvent(t, "cus_soon"+randHex(4), nil), time.Now().Add(time.Minute), "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a minute ahead: got %d %s, want 200", resp.StatusCode, b)
	}
}

// TestReservedMetadataAnyCase checks that reserved metadata keys are
// refused in any letter case.
func TestReservedMetadataAnyCase(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	for _, k := range []string{"Tenant_ID", "PROJECT_ID", "project_Id"} {
		resp, b := e.do(t, "POST", "/v1/stripe/customers", p.headers(), strings.NewReader(`{"metadata":{"`+k+`":"prj_other"}}`))
		wantError(t, resp, b, http.StatusBadRequest, "metadata."+k)
	}
}

// TestForeignProjectObjectsIgnored checks that an object tagged with another
// project (several projects may share one Stripe account) is not mirrored
// for this one.
func TestForeignProjectObjectsIgnored(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		id := "cus_foreign" + randHex(4)
		event := p.customerEvent(t, id, map[string]any{
			"data.object.email":    "foreign@example.com",
			"data.object.metadata": map[string]any{"tenant_id": "ten_other", "project_id": "prj_other", "user_id": "user_a"},
		})
		resp, b := p.sendWebhook(t, event, time.Time{}, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
		}
		if c := e.customer(t, p.ProjectID, id); c != nil {
			t.Errorf("got customer %+v mirrored, want another project's customer ignored", c)
		}
		if resp := p.portal(t, "user_a", "", id); resp.StatusCode() != http.StatusNotFound {
			t.Errorf("portal for another project's customer: got %s, want 404", body(resp))
		}
	})
}

// TestEmailOwnershipNeedsVerifiedEmail checks that a buyer owns a customer
// by email only when the token does not say the email is unverified.
func TestEmailOwnershipNeedsVerifiedEmail(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	customer := p.receiveCustomer(t, "cus_verified"+randHex(4), "owner@example.com", "")
	portal := func(claims map[string]any) int {
		claims["sub"] = "user_other"
		claims["exp"] = time.Now().Add(time.Hour).Unix()
		h := p.headers("Authorization", "Bearer "+signHS256(t, p.HS256, claims))
		resp, _ := e.do(t, "POST", "/v1/stripe/customer-portal/session", h,
			strings.NewReader(`{"customer":"`+customer+`","return_url":"https://a.example/"}`))
		return resp.StatusCode
	}
	for _, c := range []struct {
		name   string
		claims map[string]any
		want   int
	}{
		{"Verified", map[string]any{"email": "owner@example.com", "email_verified": true}, 200},
		{"VerifiedString", map[string]any{"email": "owner@example.com", "email_verified": "true"}, 200},
		{"NoClaim", map[string]any{"email": "owner@example.com"}, 200},
		{"ErrUnverified", map[string]any{"email": "owner@example.com", "email_verified": false}, 404},
		{"ErrUnverifiedString", map[string]any{"email": "owner@example.com", "email_verified": "false"}, 404},
	} {
		if got := portal(c.claims); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

// TestBuyerTokenClaims checks that a buyer token needs exp and may not be
// issued more than a minute ahead.
func TestBuyerTokenClaims(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	now := time.Now()
	for _, c := range []struct {
		name   string
		claims map[string]any
		want   int
	}{
		{"OK", map[string]any{"sub": "u", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}, 200},
		{"IssuedSecondsAhead", map[string]any{"sub": "u", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(20 * time.Second).Unix()}, 200},
		{"ErrNoExp", map[string]any{"sub": "u"}, 401},
		{"ErrIssuedInTheFuture", map[string]any{"sub": "u", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(2 * time.Minute).Unix()}, 401},
	} {
		h := p.headers("Authorization", "Bearer "+signHS256(t, p.HS256, c.claims))
		resp, b := e.do(t, "POST", "/v1/stripe/payment/intent", h, strings.NewReader(`{"amount":100,"currency":"usd"}`))
		if resp.StatusCode != c.want {
			t.Errorf("%s: got %d %s, want %d", c.name, resp.StatusCode, b, c.want)
		}
	}
}

// TestCredentialMessages checks that a credential failure says whether
// headers were missing or not valid, never which one.
func TestCredentialMessages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	missing := p.headers()
	missing.Del("x-tenant-id")
	wrong := p.headers("x-tenant-id", "ten_wrong")
	resp, b := e.do(t, "GET", "/v1/stripe/customers", missing, nil)
	mMissing := errorMessage(t, b)
	if resp.StatusCode != 401 || !strings.Contains(strings.ToLower(mMissing), "missing") {
		t.Errorf("missing header: got %d %q, want 401 saying credentials are missing", resp.StatusCode, mMissing)
	}
	resp, b = e.do(t, "GET", "/v1/stripe/customers", wrong, nil)
	mWrong := errorMessage(t, b)
	if resp.StatusCode != 401 || strings.Contains(strings.ToLower(mWrong), "missing") || strings.Contains(mWrong, "x-tenant-id") {
		t.Errorf("wrong tenant: got %d %q, want 401 saying the credentials are not valid, naming no header", resp.StatusCode, mWrong)
	}
	resp, b = e.do(t, "POST", "/v1/stripe/payment/intent", p.headers(), strings.NewReader(`{"amount":100,"currency":"usd"}`))
	if resp.StatusCode != 401 || bytes.Contains(b, []byte(`\u003c`)) || !bytes.Contains(b, []byte("<JWT>")) {
		t.Errorf("missing buyer token: got %d %s, want 401 with <JWT> unescaped", resp.StatusCode, b)
	}
}

// TestNotFoundWording checks one wording per kind of not-found.
func TestNotFoundWording(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	adminH := http.Header{"Authorization": {"Bearer " + adminToken}}
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/admin/projects/prj_nope/rotate-secret", "", "No such project: prj_nope."},
		{"POST", "/v1/admin/projects/prj_nope/sync", "", "No such project: prj_nope."},
		{"POST", "/v1/admin/tenants/ten_nope/projects", `{"name":"x"}`, "No such tenant: ten_nope."},
	} {
		var rb io.Reader
		if c.body != "" {
			rb = strings.NewReader(c.body)
		}
		resp, b := e.do(t, c.method, c.path, adminH, rb)
		if resp.StatusCode != 404 || errorMessage(t, b) != c.want {
			t.Errorf("%s %s: got %d %s, want 404 %q", c.method, c.path, resp.StatusCode, b, c.want)
		}
	}
}

// TestOperationsPages checks GET /, the two spec documents and the /metrics
// refusal.
func TestOperationsPages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t), func(c *serverConfig) {
		c.Metrics = metrics.New()
		c.MetricsToken = "metrics-token-0123456789abcdef"
	})
	get := func(path string, h http.Header) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", e.URL+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	t.Run("Root", func(t *testing.T) {
		for _, accept := range []string{"text/html", "application/json"} {
			resp, b := get("/", http.Header{"Accept": {accept}})
			if resp.StatusCode != 200 || !bytes.Contains(b, []byte("/docs")) || !bytes.Contains(b, []byte("/setup")) {
				t.Errorf("Accept %s: got %d %s, want 200 pointing to /docs and /setup", accept, resp.StatusCode, b)
			}
		}
	})
	t.Run("SpecOperationIDs", func(t *testing.T) {
		_, js := get("/openapi.json", nil)
		_, ym := get("/openapi.yaml", nil)
		var doc struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(js, &doc); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, item := range doc.Paths {
			for _, raw := range item {
				var op struct {
					OperationID string `json:"operationId"`
				}
				if json.Unmarshal(raw, &op) != nil || op.OperationID == "" {
					continue
				}
				n++
				if !bytes.Contains(ym, []byte("operationId: "+op.OperationID+"\n")) {
					t.Errorf("operationId %q of /openapi.json is not in /openapi.yaml", op.OperationID)
				}
			}
		}
		if n == 0 {
			t.Error("no operationIds in /openapi.json")
		}
	})
	t.Run("MetricsRefusalHasRequestID", func(t *testing.T) {
		resp, b := get("/metrics", nil)
		if resp.StatusCode != 401 || apiError(t, b).RequestId == "" {
			t.Errorf("got %d %s, want 401 with a request id", resp.StatusCode, b)
		}
	})
}

// TestUnknownAPIKeyCostsOneQuery checks that an API key no project has is
// remembered as unknown.
func TestUnknownAPIKeyCostsOneQuery(t *testing.T) {
	t.Parallel()
	counting := &countingStore{DB: storeFor(t)}
	e := newTestEnv(t, counting.DB, func(c *serverConfig) { c.Store = counting })
	p := e.newProject(t, "")
	h := p.headers("x-api-key", "pk_"+strings.Repeat("z", 24))
	before := counting.apiKeyLookups.Load()
	for range 5 {
		if resp, b := e.do(t, "GET", "/v1/stripe/customers", h, nil); resp.StatusCode != 401 {
			t.Fatalf("got %d %s, want 401", resp.StatusCode, b)
		}
	}
	if n := counting.apiKeyLookups.Load() - before; n != 1 {
		t.Errorf("got %d project lookups for one unknown key, want 1", n)
	}
}

// TestFailedAuthenticationThrottled checks that a client address that keeps
// failing to authenticate is answered 429, for project credentials, the
// admin token and the setup page's sign-in alike, and that only trusted
// proxies' X-Forwarded-For names the client.
func TestFailedAuthenticationThrottled(t *testing.T) {
	t.Parallel()
	try := func(e *testEnv, h http.Header, path, body string) *http.Response {
		method := "GET"
		var rb io.Reader
		if body != "" {
			method, rb = "POST", strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, e.URL+path, rb)
		for k, v := range h {
			req.Header[k] = v
		}
		if body != "" && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	t.Run("ProjectCredentials", func(t *testing.T) {
		e := newTestEnv(t, storeFor(t))
		p := e.newProject(t, "")
		bad := p.headers("x-secret-key", "sk_wrong")
		for i := range 20 {
			if resp := try(e, bad, "/v1/stripe/customers", ""); resp.StatusCode != 401 {
				t.Fatalf("attempt %d: got %d, want 401", i+1, resp.StatusCode)
			}
		}
		resp := try(e, bad, "/v1/stripe/customers", "")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("21st failure: got %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp := try(e, p.headers(), "/v1/stripe/customers", ""); resp.StatusCode != 429 {
			t.Errorf("right credentials from a throttled address: got %d, want 429", resp.StatusCode)
		}
		// X-Forwarded-For from an untrusted peer names nobody.
		h := bad.Clone()
		h.Set("X-Forwarded-For", "203.0.113.9")
		if resp := try(e, h, "/v1/stripe/customers", ""); resp.StatusCode != 429 {
			t.Errorf("spoofed X-Forwarded-For: got %d, want 429", resp.StatusCode)
		}
	})
	t.Run("AdminToken", func(t *testing.T) {
		e := newTestEnv(t, storeFor(t))
		bad := http.Header{"Authorization": {"Bearer wrong-token"}}
		for range 20 {
			try(e, bad, "/v1/admin/tenants", `{"name":"x"}`)
		}
		if resp := try(e, bad, "/v1/admin/tenants", `{"name":"x"}`); resp.StatusCode != 429 {
			t.Errorf("21st failure: got %d, want 429", resp.StatusCode)
		}
	})
	t.Run("SetupSignIn", func(t *testing.T) {
		e := newTestEnv(t, storeFor(t), withSessionKey)
		p := e.newProject(t, "")
		form := url.Values{"tenant_id": {p.TenantID}, "project_id": {p.ProjectID}, "api_key": {p.APIKey}, "secret_key": {"sk_wrong"}}
		last := 0
		for range 21 {
			last = e.setupSignIn(t, form).StatusCode
		}
		if last != 429 {
			t.Errorf("21st failed sign-in: got %d, want 429", last)
		}
	})
	t.Run("TrustedProxy", func(t *testing.T) {
		e := newTestEnv(t, storeFor(t), withTrustedProxies("127.0.0.1/32"))
		p := e.newProject(t, "")
		bad := p.headers("x-secret-key", "sk_wrong")
		for i := range 25 {
			h := bad.Clone()
			h.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
			if resp := try(e, h, "/v1/stripe/customers", ""); resp.StatusCode != 401 {
				t.Fatalf("client %d behind the proxy: got %d, want 401", i+1, resp.StatusCode)
			}
		}
	})
}

// setupSignIn fetches the sign-in form and posts form with its token; it
// returns the answer to the post.
func (e *testEnv) setupSignIn(t *testing.T, form url.Values) *http.Response {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	csrf := e.signInToken(t, client)
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("csrf", csrf.Value)
	req, _ := http.NewRequest("POST", e.URL+"/setup/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.URL)
	req.AddCookie(csrf)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// signInToken fetches the sign-in form and returns its token's cookie.
func (e *testEnv) signInToken(t *testing.T, client *http.Client) *http.Cookie {
	t.Helper()
	page, err := client.Get(e.URL + "/setup")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	for _, c := range page.Cookies() {
		if c.Name == "billing_setup_csrf" {
			return c
		}
	}
	t.Fatalf("no sign-in token cookie (status %d)", page.StatusCode)
	return nil
}

// TestSetupSignOutEverywhere checks that signing out of /setup on one
// instance ends the session on every instance.
func TestSetupSignOutEverywhere(t *testing.T) {
	t.Parallel()
	db := storeFor(t)
	a := newTestEnv(t, db, withSessionKey)
	b := newTestEnv(t, db, withSessionKey)
	p := a.newProject(t, "")
	resp := a.setupSignIn(t, url.Values{"tenant_id": {p.TenantID}, "project_id": {p.ProjectID}, "api_key": {p.APIKey}, "secret_key": {p.SecretKey}})
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "billing_setup" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		t.Fatalf("sign in: got %d, want 303 with a session", resp.StatusCode)
	}
	page := func(e *testEnv) string {
		req, _ := http.NewRequest("GET", e.URL+"/setup", nil)
		req.AddCookie(session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if html := page(b); !strings.Contains(html, `id="stripe-test"`) {
		t.Fatalf("instance B does not show the signed-in page")
	}
	csrf := csrfOf(page(a))
	form := url.Values{"csrf": {csrf}}
	req, _ := http.NewRequest("POST", a.URL+"/setup/logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.URL)
	req.AddCookie(session)
	out, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if html := page(b); strings.Contains(html, `id="stripe-test"`) || !strings.Contains(html, `id="login"`) {
		t.Errorf("after signing out on A, instance B still shows the signed-in page")
	}
}

// csrfOf returns the value of the first csrf field of a page.
func csrfOf(html string) string {
	const marker = `name="csrf" value="`
	i := strings.Index(html, marker)
	if i < 0 {
		return ""
	}
	rest := html[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// TestAdminTokenLength checks that a short admin token is refused at start.
func TestAdminTokenLength(t *testing.T) {
	t.Parallel()
	_, err := newApp(t, storeFor(t), func(c *serverConfig) { c.AdminToken = "too-short" })
	if err == nil {
		t.Error("got no error for a 9-character admin token, want one")
	}
}

// signHS256 signs claims as a buyer token with secret.
func signHS256(t testing.TB, secret string, claims map[string]any) string {
	t.Helper()
	return buyertokenSign(t, secret, claims)
}

// TestRouteSecurityFromSpec checks, for every operation of openapi.yaml,
// that the app asks for the credentials its `security` names and draws on
// the budget its x-rate-limit names.
func TestRouteSecurityFromSpec(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t), withTrustedProxies("127.0.0.1/32"),
		func(c *serverConfig) { c.Budgets = map[string]int{"create": 1000, "query": 5000} })
	p := e.newProject(t, "")
	customer := p.receiveCustomer(t, "cus_routes"+randHex(4), "routes@example.com", "user_a")
	session := "cs_test_routes" + randHex(4)
	p.recordSession(t, "test", session, "user_a")
	spec, err := server.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	reqs := requestsFor(p, customer, session)
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			r, ok := reqs[op.OperationID]
			if !ok {
				t.Fatalf("no request for %s", op.OperationID)
			}
			budget, _ := op.Extensions["x-rate-limit"].(string)
			t.Run(op.OperationID, func(t *testing.T) {
				r.client = "198.51.100." + strconv.Itoa(rand.IntN(250)+1)
				anonymous := r
				anonymous.as = ""
				if strings.HasPrefix(r.path, "/v1/stripe/webhook/") {
					return // authenticated by its signature, tested elsewhere
				}
				resp, b := anonymous.send(t, p)
				needs := len(*op.Security) > 0 && len((*op.Security)[0]) > 0
				if needs && resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s without credentials: got %d %s, want 401", method, path, resp.StatusCode, b)
				}
				if !needs && resp.StatusCode == http.StatusUnauthorized {
					t.Errorf("%s %s needs no credentials: got 401", method, path)
				}
				if !needs || op.OperationID == "adminRotateProjectSecret" {
					return // rotating would end the credentials the others use
				}
				resp, _ = r.send(t, p)
				want := map[string]string{"create": "1000", "query": "5000", "none": ""}[budget]
				if got := resp.Header.Get("X-RateLimit-Limit"); got != want {
					t.Errorf("%s %s (x-rate-limit %s): got X-RateLimit-Limit %q, want %q", method, path, budget, got, want)
				}
			})
		}
	}
}

// TestJWKSURLMustBePublic checks that a project cannot point buyer-token
// verification at the service's own network.
func TestJWKSURLMustBePublic(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storeFor(t))
	p := e.newProject(t, "")
	for _, u := range []string{"http://127.0.0.1:5432/", "http://localhost/jwks", "http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.7/jwks", "http://[::1]/jwks"} {
		resp, b := e.do(t, "PUT", "/v1/setup/auth", p.headers(), strings.NewReader(`{"jwks_url":"`+u+`"}`))
		wantError(t, resp, b, http.StatusBadRequest, "jwks_url")
	}
	ok := newTestEnv(t, storeFor(t), func(c *serverConfig) { c.URLs = &urlguard.Guard{AllowPrivate: true} })
	op := ok.newProject(t, "")
	if resp, b := ok.do(t, "PUT", "/v1/setup/auth", op.headers(), strings.NewReader(`{"jwks_url":"http://127.0.0.1:8080/jwks"}`)); resp.StatusCode != 200 {
		t.Errorf("with private URLs allowed: got %d %s, want 200", resp.StatusCode, b)
	}
}
