package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
)

// fuzzOperations are the JSON bodies the request decoder is fuzzed on: a
// route, and the generated type the handler receives.
var fuzzOperations = []struct {
	route string
	bind  func(c echo.Context) (any, error)
}{
	{"/v1/stripe/payment/intent", func(c echo.Context) (any, error) {
		var v gen.CreatePaymentIntentRequest
		return &v, c.Bind(&v)
	}},
	{"/v1/stripe/checkout/session", func(c echo.Context) (any, error) {
		var v gen.CreateCheckoutSessionRequest
		return &v, c.Bind(&v)
	}},
	{"/v1/stripe/customers", func(c echo.Context) (any, error) {
		var v gen.CustomerRequest
		return &v, c.Bind(&v)
	}},
	{"/v1/admin/tenants", func(c echo.Context) (any, error) {
		var v gen.NameRequest
		return &v, c.Bind(&v)
	}},
}

// FuzzRequestDecoder runs the request validator and the binder on any body
// and content type. A body is either refused with a 4xx that the service
// means (never a panic or an internal error), or bound to exactly what was
// validated: valid UTF-8 without NUL bytes, and no member the schema does
// not define, in any letter case.
func FuzzRequestDecoder(f *testing.F) {
	spec, table := specRoutes(f)
	v := newValidator(spec, table)
	e := echo.New()
	e.Binder = exactBinder{}
	for _, seed := range []struct {
		op   uint8
		ct   string
		body string
	}{
		{0, "application/json", `{"amount":100,"currency":"usd"}`},
		{0, "application/json", `{"amount":100,"currency":"usd","Amount":-500}`},
		{1, "APPLICATION/JSON", `{"mode":"payment","success_url":"https://a.example/s","line_items":[{"price":"p","quantity":1}]}`},
		{2, "application/json; charset=utf-8", `{"name":"a\u0000b","metadata":{"k":"v"}}`},
		{2, "text/plain", `{"name":"x"}`},
		{3, "application/json", "{\"name\":\"\xff\"}"},
	} {
		f.Add(seed.op, seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, which uint8, contentType string, body []byte) {
		op := fuzzOperations[int(which)%len(fuzzOperations)]
		req := httptest.NewRequest(http.MethodPost, op.route, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		c := e.NewContext(req, httptest.NewRecorder())
		c.SetPath(op.route)
		var bound any
		err := v.middleware(func(c echo.Context) error {
			var err error
			bound, err = op.bind(c)
			return err
		})(c)
		if err != nil {
			var be *billing.Error
			if !errors.As(err, &be) {
				t.Fatalf("got %v (%T), want a *billing.Error", err, err)
			}
			if s := ErrorStatus(be.Code); s < 400 || s >= 500 {
				t.Fatalf("got %d %v for a client's body", s, be)
			}
			return
		}
		if !utf8.Valid(body) || bytes.IndexByte(body, 0) >= 0 {
			t.Fatalf("accepted a body that is not clean UTF-8: %q", body)
		}
		out, _ := json.Marshal(bound)
		if bytes.Contains(out, []byte(`\u0000`)) {
			t.Fatalf("bound a NUL byte: %s", out)
		}
		// Every member name of the body (at the top level) is one the
		// operation's schema defines, spelled exactly.
		var members map[string]json.RawMessage
		if json.Unmarshal(body, &members) == nil {
			props := spec.Paths.Value(op.route).Post.RequestBody.Value.Content.Get("application/json").Schema.Value.Properties
			for name := range members {
				if _, ok := props[name]; !ok {
					t.Fatalf("accepted member %q, which the schema of %s does not define", name, op.route)
				}
			}
		}
		_, _ = io.Copy(io.Discard, req.Body)
	})
}

// TestMemoBounded checks that the memo of validated GETs holds no more
// entries and bytes than its bounds, whatever is added.
func TestMemoBounded(t *testing.T) {
	m := newMemo(100, 10_000)
	for i := range 5000 {
		m.add(strings.Repeat("k", i%700) + string(rune('a'+i%26)) + strconv.Itoa(i))
		if n, b := m.size(); n > 100 || b > 10_000 {
			t.Fatalf("after %d additions: %d entries, %d bytes", i+1, n, b)
		}
	}
	m.add("kept")
	if !m.has("kept") {
		t.Error("the last addition is not held")
	}
}
