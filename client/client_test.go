package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stackfordevs/billing/client"
)

// These cases are answers the service itself never gives; the service's
// own answers are tested against the real server in server/sdk_test.go.

func TestErrorFromAnotherServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<h1>upstream down</h1>"))
	}))
	defer srv.Close()
	_, err := client.New(srv.URL+"/", client.Credentials{}).GetCustomer(context.Background(), "cus_1")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway || apiErr.Code != "" ||
		apiErr.Message != "Bad Gateway: <h1>upstream down</h1>" {
		t.Errorf("got %#v, want a 502 *client.Error with the page's text", err)
	}
}

func TestRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("X-Request-Id", "req_header")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"Too many requests.","request_id":"req_body"}}`))
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, client.Credentials{}).CreateCustomer(context.Background(), client.CustomerRequest{})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != 7*time.Second || apiErr.Code != client.CodeRateLimited || apiErr.RequestID != "req_body" {
		t.Fatalf("got %#v, want a rate limit with RetryAfter 7s", err)
	}
	if got, want := apiErr.Error(), "billing: 429 rate_limited: Too many requests. (request req_body)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNetworkErrorIsNotAnAPIError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := client.New(url, client.Credentials{}).GetCustomer(context.Background(), "cus_1")
	var apiErr *client.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Errorf("got %v, want a transport error that is not a *client.Error", err)
	}
}
