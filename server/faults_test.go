package server_test

// Faults: the database going away, a retried create, a client that leaves.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// cutProxy forwards TCP connections to a database until Cut, which closes
// every connection and refuses new ones, as a database that went away.
type cutProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target}
	go p.serve()
	t.Cleanup(p.Cut)
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// Cut closes every connection and the listener.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.l.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// downableDB is a database that a test can take away: PostgreSQL behind a
// proxy that is cut, or SQLite whose pools are closed.
type downableDB struct {
	*store.DB
	down func()
}

func eachDownableDB(t *testing.T, fn func(t *testing.T, d downableDB)) {
	t.Helper()
	ring := newKeyring(t)
	for _, backend := range storetest.Backends() {
		t.Run(backend, func(t *testing.T) {
			dsn := storetest.NewDSN(t, backend)
			if backend == storetest.SQLite {
				db := storetest.MustOpenDSN(t, dsn, ring)
				fn(t, downableDB{DB: db, down: func() { db.Close() }})
				return
			}
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			proxy := newCutProxy(t, u.Host)
			u.Host = proxy.l.Addr().String()
			db := storetest.MustOpenDSN(t, u.String(), ring)
			fn(t, downableDB{DB: db, down: proxy.Cut})
		})
	}
}

// specOperations returns the operationIds of openapi.yaml.
func specOperations(t testing.TB) []string {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(billing.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			ids = append(ids, op.OperationID)
		}
	}
	slices.Sort(ids)
	return ids
}

// anyRequest is a well-formed request of each operation.
type anyRequest struct {
	method, path, body string
	as                 string // "project", "buyer", "admin" or ""
	// client, when set, is the client address a trusted proxy names.
	client string
}

func requestsFor(p *testProject, customer, session string) map[string]anyRequest {
	return map[string]anyRequest{
		"createCheckoutSession":    {"POST", "/v1/stripe/checkout/session", `{"mode":"payment","line_items":[{"price":"price_1","quantity":1}],"success_url":"https://a.example/ok"}`, "buyer", ""},
		"getCheckoutSession":       {"GET", "/v1/stripe/checkout/session/" + session, "", "buyer", ""},
		"createPaymentIntent":      {"POST", "/v1/stripe/payment/intent", `{"amount":100,"currency":"usd"}`, "buyer", ""},
		"createPortalSession":      {"POST", "/v1/stripe/customer-portal/session", `{"customer":"` + customer + `","return_url":"https://a.example/"}`, "buyer", ""},
		"createCustomer":           {"POST", "/v1/stripe/customers", `{"email":"down@example.com"}`, "project", ""},
		"listCustomers":            {"GET", "/v1/stripe/customers", "", "project", ""},
		"getCustomer":              {"GET", "/v1/stripe/customers/" + customer, "", "project", ""},
		"updateCustomer":           {"PUT", "/v1/stripe/customers/" + customer, `{"name":"x"}`, "project", ""},
		"deleteCustomer":           {"DELETE", "/v1/stripe/customers/" + customer, "", "project", ""},
		"getCustomerSubscription":  {"GET", "/v1/customer/subscription?customerEmail=nobody" + randHex(3) + "@example.com", "", "project", ""},
		"receiveStripeWebhook":     {"POST", "/v1/stripe/webhook/" + p.ProjectID + "?environment=test", "", "", ""},
		"listWebhookEvents":        {"GET", "/v1/webhooks/events", "", "project", ""},
		"getStripeSetup":           {"GET", "/v1/setup/stripe", "", "project", ""},
		"putStripeSetup":           {"PUT", "/v1/setup/stripe", `{"secret_key":"` + p.StripeKey + `","publishable_key":"` + p.PublishableKey + `"}`, "project", ""},
		"getAuthSetup":             {"GET", "/v1/setup/auth", "", "project", ""},
		"putAuthSetup":             {"PUT", "/v1/setup/auth", `{"hs256_secret":"` + p.HS256 + `"}`, "project", ""},
		"getUsage":                 {"GET", "/v1/usage", "", "project", ""},
		"adminCreateTenant":        {"POST", "/v1/admin/tenants", `{"name":"Down"}`, "admin", ""},
		"adminCreateProject":       {"POST", "/v1/admin/tenants/" + p.TenantID + "/projects", `{"name":"Down"}`, "admin", ""},
		"adminRotateProjectSecret": {"POST", "/v1/admin/projects/" + p.ProjectID + "/rotate-secret", "", "admin", ""},
		"adminSyncProject":         {"POST", "/v1/admin/projects/" + p.ProjectID + "/sync", "", "admin", ""},
		"adminGetUsage":            {"GET", "/v1/admin/usage", "", "admin", ""},
		"startSync":                {"POST", "/v1/sync", "", "project", ""},
		"getSyncJob":               {"GET", "/v1/sync/sync_unknown", "", "project", ""},
		"adminGetSyncJob":          {"GET", "/v1/admin/projects/" + p.ProjectID + "/sync/sync_unknown", "", "admin", ""},
		"getHealth":                {"GET", "/healthz", "", "", ""},
		"getReady":                 {"GET", "/readyz", "", "", ""},
	}
}

// headers returns the credentials the request is made with.
func (r anyRequest) headers(t *testing.T, p *testProject) http.Header {
	t.Helper()
	switch r.as {
	case "project":
		return p.headers()
	case "buyer":
		return p.bearer(t, "user_a", "")
	case "admin":
		return http.Header{"Authorization": {"Bearer " + adminToken}}
	}
	return http.Header{}
}

// send makes the request with the credentials it needs.
func (r anyRequest) send(t *testing.T, p *testProject) (*http.Response, []byte) {
	t.Helper()
	h := r.headers(t, p)
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	if r.client != "" {
		h.Set("X-Forwarded-For", r.client)
	}
	if strings.HasPrefix(r.path, "/v1/stripe/webhook/") {
		payload, sig := stripetest.SignedPayload(t, p.customerEvent(t, "cus_down", nil), p.WebhookKey, time.Time{})
		h.Set("Stripe-Signature", sig)
		body = strings.NewReader(string(payload))
	}
	return p.e.do(t, r.method, r.path, h, body)
}

// TestDatabaseDown checks that while the database is unreachable every
// endpoint but /healthz answers 503 with Retry-After, and that nothing
// reaches Stripe: a create that could not be recorded is not made.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	spy := newStripeSpy(t)
	eachDownableDB(t, func(t *testing.T, d downableDB) {
		e := newTestEnv(t, d.DB, spy.option(stripeadapterConfig()))
		spy.forwardTo(e.StripeURL)
		p := e.newProject(t, "")
		customer := p.receiveCustomer(t, "cus_down"+randHex(4), "down@example.com", "user_a")
		session := "cs_test_down" + randHex(4)
		p.recordSession(t, billing.EnvTest, session, "user_a")
		reqs := requestsFor(p, customer, session)
		for _, op := range specOperations(t) {
			if _, ok := reqs[op]; !ok {
				t.Fatalf("operation %s has no request in this test", op)
			}
		}
		// Warm the caches of credentials and settings, so that the calls
		// below get past them while the database is down.
		if resp, b := reqs["listCustomers"].send(t, p); resp.StatusCode != 200 {
			t.Fatalf("list customers: got %d %s", resp.StatusCode, b)
		}
		before := len(spy.calls(p.StripeKey))
		d.down()
		for _, op := range specOperations(t) {
			t.Run(op, func(t *testing.T) {
				resp, b := reqs[op].send(t, p)
				if op == "getHealth" {
					if resp.StatusCode != 200 {
						t.Errorf("got %d %s, want 200", resp.StatusCode, b)
					}
					return
				}
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
					t.Errorf("got %d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, b, resp.Header.Get("Retry-After"))
				}
			})
		}
		if calls := spy.calls(p.StripeKey)[before:]; len(calls) != 0 {
			t.Errorf("got Stripe calls %v while the database was down, want none", callPaths(calls))
		}
		for _, line := range strings.Split(e.Logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "down@example.com") {
				t.Errorf("an email is logged at ERROR: %s", line)
			}
		}
	})
}

// flakyStore is the real store whose completion of a create (the write of
// its record) fails while failWrites is above zero, as when the database
// goes away after Stripe answered.
type flakyStore struct {
	*store.DB
	failWrites atomic.Int32
}

// Apply fails the service's own customer writes while failWrites lasts:
// the record of a created customer goes through the mirror.
func (s *flakyStore) Apply(ctx context.Context, w store.Write) (store.Applied, error) {
	if w.Origin == store.FromService && len(w.Change.Customers) > 0 && s.failWrites.Add(-1) >= 0 {
		return store.Applied{}, billing.Errorf(billing.EUNAVAILABLE, "The database is unavailable.")
	}
	return s.DB.Apply(ctx, w)
}

func (s *flakyStore) CompleteIntent(ctx context.Context, projectID string, env billing.Environment, key, objectID string, record any) error {
	if s.failWrites.Add(-1) >= 0 {
		return billing.Errorf(billing.EUNAVAILABLE, "The database is unavailable.")
	}
	return s.DB.CompleteIntent(ctx, projectID, env, key, objectID, record)
}

// idempotentStripe answers customer creates as Stripe does: one customer per
// Idempotency-Key, the same answer again for a repeated key, and the
// customer for a read.
type idempotentStripe struct {
	mu    sync.Mutex
	byKey map[string]string
	byID  map[string]string // customer JSON
	posts int
}

func (s *idempotentStripe) answer(w http.ResponseWriter, r *http.Request, form url.Values) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/customers":
		s.posts++
		key := r.Header.Get("Idempotency-Key")
		id, ok := s.byKey[key]
		if !ok {
			id = "cus_idem" + randHex(6)
			s.byKey[key] = id
			md := map[string]string{}
			for k, v := range form {
				if strings.HasPrefix(k, "metadata[") {
					md[strings.TrimSuffix(strings.TrimPrefix(k, "metadata["), "]")] = v[0]
				}
			}
			obj, _ := json.Marshal(map[string]any{"id": id, "object": "customer", "email": form.Get("email"),
				"name": form.Get("name"), "metadata": md, "created": time.Now().Unix()})
			s.byID[id] = string(obj)
		}
		io.WriteString(w, s.byID[id])
		return true
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/customers/"):
		obj, ok := s.byID[strings.TrimPrefix(r.URL.Path, "/v1/customers/")]
		if !ok {
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer"}}`)
			return true
		}
		io.WriteString(w, obj)
		return true
	}
	return false
}

// TestCreateRetriedAfterFailedRecord checks that a create whose record could
// not be written is answered 503, and that a retry with the same
// Idempotency-Key gets the same object, recorded once, without a second
// object in Stripe; a key reused with other parameters is refused.
func TestCreateRetriedAfterFailedRecord(t *testing.T) {
	t.Parallel()
	spy := newStripeSpy(t)
	ring := newKeyring(t)
	storetest.EachDB(t, ring, func(t *testing.T, db *store.DB) {
		flaky := &flakyStore{DB: db}
		e := newTestEnv(t, db, spy.option(stripeadapterConfig()), func(c *serverConfig) { c.Store = flaky })
		spy.forwardTo(e.StripeURL)
		p := e.newProject(t, "")
		fake := &idempotentStripe{byKey: map[string]string{}, byID: map[string]string{}}
		spy.answer(p.StripeKey, fake.answer)
		h := p.headers("Idempotency-Key", "order-"+randHex(4))
		create := func(body string) (*http.Response, []byte) {
			return e.do(t, "POST", "/v1/stripe/customers", h, strings.NewReader(body))
		}
		const req = `{"email":"retry@example.com","name":"Retry"}`
		flaky.failWrites.Store(1)
		resp, b := create(req)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("record failed: got %d %s, want 503 with Retry-After", resp.StatusCode, b)
		}
		resp, b = create(req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("retry: got %d %s, want 200", resp.StatusCode, b)
		}
		first := decodeBody[map[string]any](t, b)["id"]
		postsAfterRetry := fake.posts
		resp, b = create(req)
		if resp.StatusCode != http.StatusOK || decodeBody[map[string]any](t, b)["id"] != first {
			t.Fatalf("second retry: got %d %s, want 200 with %v", resp.StatusCode, b, first)
		}
		if fake.posts != postsAfterRetry {
			t.Errorf("a retry of a completed create called Stripe's create again")
		}
		if n := len(fake.byKey); n != 1 {
			t.Errorf("got %d Stripe customers, want 1", n)
		}
		if ids := p.customerIDs(t, billing.EnvTest); !slices.Equal(ids, []string{fmt.Sprint(first)}) {
			t.Errorf("got recorded customers %v, want [%v]", ids, first)
		}
		resp, b = create(`{"email":"other@example.com"}`)
		wantError(t, resp, b, http.StatusBadRequest, "Idempotency-Key")
	})
}

// TestClientGoneIsNotAFault checks that a client that disconnects while its
// request waits on Stripe is not logged as a server error.
func TestClientGoneIsNotAFault(t *testing.T) {
	t.Parallel()
	e, spy, p := spiedProject(t)
	customer := p.receiveCustomer(t, "cus_gone"+randHex(4), "gone@example.com", "")
	spy.answer(p.StripeKey, func(w http.ResponseWriter, r *http.Request, _ url.Values) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/stripe/customers/"+customer, nil)
	p.setCreds(req.Header)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the client to give up", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.Logs.String(), `"route":"/v1/stripe/customers/:id"`) {
		if time.Now().After(deadline) {
			t.Fatal("the request was never logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"status":500`) {
			t.Errorf("a client that went away is logged as a fault: %s", line)
		}
	}
}

// TestCreateReplayedByKey checks that a create repeated with the same
// Idempotency-Key after it completed answers with the same object without
// a second create in Stripe.
func TestCreateReplayedByKey(t *testing.T) {
	t.Parallel()
	e, spy, p := spiedProject(t)
	for _, c := range []struct{ name, path, body, other, create string }{
		{"PaymentIntent", "/v1/stripe/payment/intent", `{"amount":2999,"currency":"usd"}`, `{"amount":3999,"currency":"usd"}`, "/v1/payment_intents"},
		{"CheckoutSession", "/v1/stripe/checkout/session",
			`{"mode":"payment","line_items":[{"price":"price_1","quantity":1}],"success_url":"https://a.example/ok"}`,
			`{"mode":"payment","line_items":[{"price":"price_1","quantity":2}],"success_url":"https://a.example/ok"}`, "/v1/checkout/sessions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := p.bearer(t, "user_a", "", "Idempotency-Key", "replay-"+randHex(4))
			resp, first := e.do(t, "POST", c.path, h, strings.NewReader(c.body))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("first: got %d %s", resp.StatusCode, first)
			}
			before := len(spy.calls(p.StripeKey))
			resp, second := e.do(t, "POST", c.path, h, strings.NewReader(c.body))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("replay: got %d %s", resp.StatusCode, second)
			}
			idOf := func(b []byte) any {
				m := decodeBody[map[string]any](t, b)
				if id, ok := m["payment_intent_id"]; ok {
					return id
				}
				return m["id"]
			}
			if idOf(first) != idOf(second) {
				t.Errorf("got %v then %v, want the same object", idOf(first), idOf(second))
			}
			for _, call := range spy.calls(p.StripeKey)[before:] {
				if call.Method == "POST" && call.Path == c.create {
					t.Errorf("the replay created again in Stripe: %s %s", call.Method, call.Path)
				}
			}
			resp, b := e.do(t, "POST", c.path, h, strings.NewReader(c.other))
			wantError(t, resp, b, http.StatusBadRequest, "Idempotency-Key")
		})
	}
}

// spiedProject returns an app on SQLite whose Stripe is a spy in front of
// stripe-mock, and a project of it.
func spiedProject(t *testing.T) (*testEnv, *stripeSpy, *testProject) {
	t.Helper()
	spy := newStripeSpy(t)
	e := newTestEnv(t, storeFor(t), spy.option(stripeadapterConfig()))
	spy.forwardTo(e.StripeURL)
	return e, spy, e.newProject(t, "")
}
