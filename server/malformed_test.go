package server_test

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	billing "github.com/stackfordevs/billing"
)

// malformed is one way of breaking a well-formed request.
type malformed struct {
	name  string
	apply func(r anyRequest, h http.Header) (method, path string, header http.Header, body io.Reader)
}

// withBody returns the request with its body replaced.
func withBody(body, contentType string) func(r anyRequest, h http.Header) (string, string, http.Header, io.Reader) {
	return func(r anyRequest, h http.Header) (string, string, http.Header, io.Reader) {
		h = h.Clone()
		h.Set("Content-Type", contentType)
		return r.method, r.path, h, strings.NewReader(body)
	}
}

// withPath returns the request with its path or query changed by edit.
func withPath(edit func(path string) string) func(r anyRequest, h http.Header) (string, string, http.Header, io.Reader) {
	return func(r anyRequest, h http.Header) (string, string, http.Header, io.Reader) {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		return r.method, edit(r.path), h, body
	}
}

// withHeader returns the request with one header set.
func withHeader(name, value string) func(r anyRequest, h http.Header) (string, string, http.Header, io.Reader) {
	return func(r anyRequest, h http.Header) (string, string, http.Header, io.Reader) {
		h = h.Clone()
		h[http.CanonicalHeaderKey(name)] = []string{value}
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		return r.method, r.path, h, body
	}
}

// addQuery appends a query parameter to a path.
func addQuery(path, kv string) string {
	if strings.Contains(path, "?") {
		return path + "&" + kv
	}
	return path + "?" + kv
}

// breakPathParam puts suffix into the last path segment that is an id.
func breakPathParam(path, suffix string) string {
	p, q, _ := strings.Cut(path, "?")
	segs := strings.Split(p, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		if strings.Contains(segs[i], "_") {
			segs[i] += suffix
			break
		}
	}
	out := strings.Join(segs, "/")
	if q != "" {
		out += "?" + q
	}
	return out
}

var malformedRequests = []malformed{
	{"UnknownQueryParameter", withPath(func(p string) string { return addQuery(p, "pad="+strings.Repeat("p", 500)) })},
	{"NULInQuery", withPath(func(p string) string { return addQuery(p, "environment=te%00st") })},
	{"InvalidUTF8InQuery", withPath(func(p string) string { return addQuery(p, "environment=%ff%fe") })},
	{"BadQueryEscape", withPath(func(p string) string { return addQuery(p, "environment=%zz") })},
	{"RepeatedParameter", withPath(func(p string) string { return addQuery(addQuery(p, "environment=test"), "environment=live") })},
	{"NULInPathID", withPath(func(p string) string { return breakPathParam(p, "%00") })},
	{"InvalidUTF8InPathID", withPath(func(p string) string { return breakPathParam(p, "%ff%fe") })},
	{"EncodedSlashInPathID", withPath(func(p string) string { return breakPathParam(p, "%2F..%2F") })},
	{"LongPathID", withPath(func(p string) string { return breakPathParam(p, strings.Repeat("x", 300)) })},
	{"NotJSON", withBody(`{"name":`, "application/json")},
	{"Array", withBody(`[{"name":"x"}]`, "application/json")},
	{"Null", withBody(`null`, "application/json")},
	{"WrongTypes", withBody(`{"name":42,"amount":"100","mode":7,"metadata":"x","line_items":{}}`, "application/json")},
	{"UnknownMember", withBody(`{"nmae":"typo"}`, "application/json")},
	{"CaseVariantMember", withBody(`{"Name":"x","Amount":-1,"Mode":"payment"}`, "application/json")},
	{"NULInMember", withBody(`{"name":"a\u0000","customer":"cus_\u0000","metadata":{"k":"\u0000"}}`, "application/json")},
	{"InvalidUTF8InBody", withBody("{\"name\":\"\xff\xfe\"}", "application/json")},
	{"LoneSurrogate", withBody(`{"name":"\ud800"}`, "application/json")},
	{"HugeNumber", withBody(`{"amount":1e400,"currency":"usd"}`, "application/json")},
	{"DeepNesting", withBody(`{"metadata":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`, "application/json")},
	{"TextPlain", withBody(`{"name":"x"}`, "text/plain")},
	{"NoContentType", withBody(`{"name":"x"}`, "")},
	{"EmptyBody", withBody(``, "application/json")},
	{"IdempotencyKeyInvalidUTF8", withHeader("Idempotency-Key", "k\xff\xfe")},
	{"IdempotencyKeyTooLong", withHeader("Idempotency-Key", strings.Repeat("k", 300))},
	{"APIKeyInvalidUTF8", withHeader("x-api-key", "pk_\xff\xfe")},
	{"APIKeyLong", withHeader("x-api-key", strings.Repeat("k", 5000))},
	{"BearerGarbage", withHeader("Authorization", "Bearer \xff\xfe.\x01.x")},
	{"StripeSignatureGarbage", withHeader("Stripe-Signature", "t=99999999999999999999,v1=\xff")},
}

// TestMalformedRequests sends every operation every kind of malformed
// input, on every database: each is answered without a 5xx. (A change that
// leaves an operation's request valid, such as a header it does not read,
// is answered as the valid request is.)
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		customer := p.receiveCustomer(t, "cus_malformed"+randHex(4), "malformed@example.com", "user_a")
		session := "cs_test_malformed" + randHex(4)
		p.recordSession(t, billing.EnvTest, session, "user_a")
		reqs := requestsFor(p, customer, session)
		ops := make([]string, 0, len(reqs))
		for op := range reqs {
			ops = append(ops, op)
		}
		// The operations that end the fixture's objects or credentials
		// go last.
		last := map[string]int{"deleteCustomer": 1, "adminRotateProjectSecret": 2}
		sort.Slice(ops, func(i, j int) bool {
			if last[ops[i]] != last[ops[j]] {
				return last[ops[i]] < last[ops[j]]
			}
			return ops[i] < ops[j]
		})
		statuses := map[int]int{}
		n := 0
		for _, op := range ops {
			r := reqs[op]
			h := r.headers(t, p)
			for _, m := range malformedRequests {
				method, path, header, body := m.apply(r, h)
				req, err := http.NewRequest(method, e.URL+path, body)
				if err != nil {
					continue // a request Go's client cannot send
				}
				req.Header = header
				// Each request from its own client address, so that the
				// failed-authentication throttle does not answer for them.
				n++
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", n/250, n%250+1))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue // refused by the client itself (a header byte it will not send)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				statuses[resp.StatusCode]++
				if resp.StatusCode >= 500 {
					t.Errorf("%s %s: got %d %s", op, m.name, resp.StatusCode, b)
				}
			}
		}
		t.Logf("statuses: %v", fmt.Sprint(statuses))
	}, withTrustedProxies("127.0.0.1/32"))
}
