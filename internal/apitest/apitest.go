// Package apitest checks, in tests, that every HTTP response the service
// gives matches openapi.yaml: status declared, body valid against its schema.
package apitest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/stackfordevs/billing/gen"
)

// NewHTTPClient returns an http.Client whose every response from baseURL is
// validated against the embedded spec; a mismatch fails tb. Responses of
// routes outside the spec (docs, metrics, setup page) are not checked.
func NewHTTPClient(tb testing.TB, baseURL string) *http.Client {
	tb.Helper()
	spec, err := gen.GetSpec()
	if err != nil {
		tb.Fatalf("load spec: %v", err)
	}
	spec.Servers = openapi3.Servers{{URL: baseURL}}
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		tb.Fatalf("spec router: %v", err)
	}
	return &http.Client{Transport: &validatingTransport{tb: tb, router: router, next: http.DefaultTransport}}
}

type validatingTransport struct {
	tb     testing.TB
	router routers.Router
	next   http.RoundTripper
}

func (t *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.tb.Errorf("%s %s: response has no X-Request-Id", req.Method, req.URL.Path)
	}
	route, params, err := t.router.FindRoute(req)
	if err != nil {
		return resp, nil // not an API route
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.tb.Errorf("%s %s -> %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}
