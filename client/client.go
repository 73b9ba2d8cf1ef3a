// Package client is the Go client of the billing service: payments and
// subscriptions through a project's own Stripe account.
//
//	c := client.New("https://billing.example.com", client.Credentials{
//		APIKey: apiKey, SecretKey: secretKey, TenantID: tenantID, ProjectID: projectID,
//	}, client.WithEnvironment(client.Test))
//	cus, err := c.CreateCustomer(ctx, client.CustomerRequest{Email: "ada@example.com"})
//	sub, err := c.GetSubscription(ctx, "ada@example.com") // nil when there is none
//	for cus, err := range c.ListCustomers(ctx, client.ListCustomersParams{}) { ... }
//
// Every answer other than 2xx is returned as a *Error with the service's code,
// message, field and request id. The package depends on the standard library
// only.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Credentials are a project's four credentials, sent with every call.
type Credentials struct {
	APIKey    string // x-api-key, the project's public key (pk_...)
	SecretKey string // x-secret-key, shown once when the project is created
	TenantID  string // x-tenant-id
	ProjectID string // x-project-id
}

// Environment is one of a project's two Stripe accounts.
type Environment string

// The environments.
const (
	Test Environment = "test"
	Live Environment = "live"
)

// Client calls the service for one project. It is safe for concurrent use.
type Client struct {
	base     string
	creds    Credentials
	defaults settings
}

// settings are what Options change: the client's defaults, and per call.
type settings struct {
	env            Environment
	buyerToken     string
	idempotencyKey string
	http           *http.Client
}

// Option changes a Client when given to New, or one call when given to a
// method. A call's options apply on top of the client's.
type Option func(*settings)

// WithEnvironment selects the Stripe environment, Test unless said.
func WithEnvironment(env Environment) Option {
	return func(s *settings) { s.env = env }
}

// WithBuyerToken sends the end user's token (a JWT your identity provider
// issued), as the buyer endpoints require: checkout, payment intents and
// the customer portal. It is usually given per call.
func WithBuyerToken(token string) Option {
	return func(s *settings) { s.buyerToken = token }
}

// WithIdempotencyKey makes a create or update safe to retry: Stripe answers
// a repeated key with the first call's result. It applies to one call;
// given to New it is ignored.
func WithIdempotencyKey(key string) Option {
	return func(s *settings) { s.idempotencyKey = key }
}

// WithHTTPClient makes calls with h instead of http.DefaultClient, for
// timeouts, proxies or instrumentation. A nil h changes nothing.
func WithHTTPClient(h *http.Client) Option {
	return func(s *settings) {
		if h != nil {
			s.http = h
		}
	}
}

// New returns a client of the service at baseURL, such as
// "http://localhost:8080", for the project the credentials name.
func New(baseURL string, creds Credentials, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), creds: creds,
		defaults: settings{env: Test, http: http.DefaultClient}}
	for _, o := range opts {
		o(&c.defaults)
	}
	c.defaults.idempotencyKey = ""
	return c
}

// callSettings returns the client's settings with a call's options applied.
func (c *Client) callSettings(opts []Option) settings {
	s := c.defaults
	for _, o := range opts {
		o(&s)
	}
	return s
}

// request is one call to the service.
type request struct {
	method string
	path   string
	query  url.Values
	body   any
	// noEnvironment leaves out ?environment=, for the calls that take none.
	noEnvironment bool
}

// do sends r and decodes a 2xx answer into out (when not nil); any other
// answer is a *Error.
func (c *Client) do(ctx context.Context, r request, out any, opts []Option) error {
	s := c.callSettings(opts)
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	if !r.noEnvironment && q.Get("environment") == "" {
		q.Set("environment", string(s.env))
	}
	u := c.base + r.path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("billing: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("x-api-key", c.creds.APIKey)
	req.Header.Set("x-secret-key", c.creds.SecretKey)
	req.Header.Set("x-tenant-id", c.creds.TenantID)
	req.Header.Set("x-project-id", c.creds.ProjectID)
	if s.buyerToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.buyerToken)
	}
	if s.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", s.idempotencyKey)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("billing: %s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("billing: %s %s: read answer: %w", r.method, r.path, err)
	}
	if resp.StatusCode/100 != 2 {
		return newError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("billing: %s %s: decode answer: %w", r.method, r.path, err)
	}
	return nil
}

// maxResponseBytes bounds an answer; the service's largest is a page of 100
// objects.
const maxResponseBytes = 16 << 20
