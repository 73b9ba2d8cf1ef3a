package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// stripeRequest is one request the stand-in for Stripe received.
type stripeRequest struct {
	Method, Path string
	Form         url.Values
}

// fakeStripe stands in for Stripe's API with state: it serves the objects
// a test puts in it, pages through lists as Stripe does, and records every
// request it receives.
type fakeStripe struct {
	*httptest.Server
	mu       sync.Mutex
	objects  map[string]string   // path, such as /v1/subscriptions/sub_1 -> JSON
	lists    map[string][]string // path, such as /v1/customers -> objects in order
	failWith int                 // when set, every request gets this status
	requests []stripeRequest
}

func newFakeStripe(t testing.TB) *fakeStripe {
	t.Helper()
	f := &fakeStripe{objects: map[string]string{}, lists: map[string][]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.requests = append(f.requests, stripeRequest{Method: r.Method, Path: r.URL.Path, Form: r.Form})
	failWith := f.failWith
	obj, isObj := f.objects[r.URL.Path]
	list, isList := f.lists[r.URL.Path]
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	switch {
	case failWith != 0:
		w.WriteHeader(failWith)
		fmt.Fprint(w, `{"error":{"type":"api_error","message":"The stand-in is failing on purpose."}}`)
	case r.Method == http.MethodGet && isObj:
		fmt.Fprint(w, obj)
	case r.Method == http.MethodGet && isList:
		f.page(w, r, list)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/billing_portal/sessions":
		fmt.Fprintf(w, `{"id":"bps_fake","object":"billing_portal.session","customer":%q,"livemode":false,
			"return_url":%q,"url":"https://billing.stripe.com/p/session/test_fake"}`, r.Form.Get("customer"), r.Form.Get("return_url"))
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such object: '%s'"}}`,
			strings.TrimPrefix(r.URL.Path, "/v1/"))
	}
}

// page answers one page of a list, honouring limit and starting_after.
func (f *fakeStripe) page(w http.ResponseWriter, r *http.Request, list []string) {
	limit := 10
	if n, err := strconv.Atoi(r.Form.Get("limit")); err == nil && n > 0 {
		limit = n
	}
	start := 0
	if after := r.Form.Get("starting_after"); after != "" {
		start = -1
		for i, o := range list {
			if objectID(o) == after {
				start = i + 1
			}
		}
		if start < 0 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"type":"invalid_request_error","message":"starting_after names no object"}}`)
			return
		}
	}
	end := min(start+limit, len(list))
	fmt.Fprintf(w, `{"object":"list","url":%q,"has_more":%t,"data":[%s]}`,
		r.URL.Path, end < len(list), strings.Join(list[start:end], ","))
}

func objectID(obj string) string {
	var o struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(obj), &o)
	return o.ID
}

// put makes path (such as /v1/subscriptions/sub_1) answer obj.
func (f *fakeStripe) put(path, obj string) {
	f.mu.Lock()
	f.objects[path] = obj
	f.mu.Unlock()
}

// setList makes path (such as /v1/customers) list objs.
func (f *fakeStripe) setList(path string, objs []string) {
	f.mu.Lock()
	f.lists[path] = objs
	f.mu.Unlock()
}

// fail makes every request answer status; 0 stops failing.
func (f *fakeStripe) fail(status int) {
	f.mu.Lock()
	f.failWith = status
	f.mu.Unlock()
}

// seen returns the requests received so far.
func (f *fakeStripe) seen() []stripeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stripeRequest(nil), f.requests...)
}

// count returns how many requests were received so far.
func (f *fakeStripe) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// eachStripeEnv runs fn on every storage backend with a fresh stand-in for
// Stripe behind the app.
func eachStripeEnv(t *testing.T, fn func(t *testing.T, e *testEnv, fs *fakeStripe), opts ...envOption) {
	t.Helper()
	ring := newKeyring(t)
	storetest.EachDB(t, ring, func(t *testing.T, db *store.DB) {
		fs := newFakeStripe(t)
		all := append([]envOption{withStripe(fs.URL, stripeadapter.Config{MaxNetworkRetries: -1})}, opts...)
		fn(t, newTestEnv(t, db, all...), fs)
	})
}

// webhookPath is the URL path at which a project receives its events.
func webhookPath(projectID string, env billing.Environment) string {
	return "/v1/stripe/webhook/" + projectID + "?environment=" + string(env)
}

// postWebhook posts a body with a Stripe-Signature header (none when sig is
// empty) as Stripe does. It may be called from any goroutine.
func (e *testEnv) postWebhook(path string, payload []byte, sig string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(string(payload)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// deliver signs payload with the project's test signing secret, now, and
// posts it to the project's test webhook URL.
func (p *testProject) deliver(t testing.TB, payload []byte) (int, gen.WebhookAck, []byte) {
	t.Helper()
	body, sig := stripetest.SignedPayload(t, payload, p.WebhookKey, time.Time{})
	status, b, err := p.e.postWebhook(webhookPath(p.ProjectID, billing.EnvTest), body, sig)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	var ack gen.WebhookAck
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &ack); err != nil {
			t.Fatalf("deliver: ack %s: %v", b, err)
		}
	}
	return status, ack, b
}

// mustDeliver delivers payload and fails unless it is acknowledged with
// the status want (applied, ignored or failed) and not as a duplicate.
func (p *testProject) mustDeliver(t testing.TB, payload []byte, want gen.WebhookAckStatus) {
	t.Helper()
	status, ack, b := p.deliver(t, payload)
	if status != http.StatusOK || !ack.Received || deref(ack.Duplicate) || deref(ack.Status) != want {
		t.Fatalf("deliver %s: got %d %s, want 200 with status %q", eventID(payload), status, b, want)
	}
}

func eventID(payload []byte) string { return objectID(string(payload)) }

// ledger returns every stored event of the project's environment, newest
// first.
func (e *testEnv) ledger(t testing.TB, projectID string, env billing.Environment) []billing.WebhookEvent {
	t.Helper()
	var all []billing.WebhookEvent
	after := ""
	for {
		evs, more, err := e.DB.ListWebhookEvents(context.Background(), projectID, env, 100, after)
		if err != nil {
			t.Fatalf("list webhook events: %v", err)
		}
		all = append(all, evs...)
		if !more {
			return all
		}
		after = evs[len(evs)-1].ID
	}
}

// subscription reads a subscription from the mirror; nil when it is not
// there.
func (e *testEnv) subscription(t testing.TB, projectID, id string) *billing.Subscription {
	t.Helper()
	s, err := e.DB.FindSubscription(context.Background(), projectID, billing.EnvTest, id)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil
	} else if err != nil {
		t.Fatalf("find subscription %s: %v", id, err)
	}
	return s
}

// subscriptionStatus asks the API for the subscription of an email and
// returns the raw body.
func (p *testProject) subscriptionStatus(t testing.TB, email string) (int, []byte) {
	t.Helper()
	resp, b := p.e.do(t, http.MethodGet, "/v1/customer/subscription?environment=test&customerEmail="+url.QueryEscape(email), p.headers(), nil)
	return resp.StatusCode, b
}

// currentSubscription asks the API for the subscription of an email; nil
// when the answer is {"subscription": null}.
func (p *testProject) currentSubscription(t testing.TB, email string) *gen.Subscription {
	t.Helper()
	status, b := p.subscriptionStatus(t, email)
	if status != http.StatusOK {
		t.Fatalf("subscription of %s: got %d %s, want 200", email, status, b)
	}
	var resp gen.SubscriptionResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("subscription of %s: %s: %v", email, b, err)
	}
	return resp.Subscription
}

// subscriptionObject returns the data.object of a subscription event, as
// Stripe's API returns the subscription.
func subscriptionObject(t testing.TB, event []byte) string {
	t.Helper()
	var ev struct {
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatalf("event: %v", err)
	}
	return string(ev.Data.Object)
}
