package client

import (
	"context"
	"iter"
	"net/url"
	"strconv"
	"time"
)

// CreateCheckoutSession creates a Checkout Session for the buyer named by
// WithBuyerToken.
func (c *Client) CreateCheckoutSession(ctx context.Context, p CreateCheckoutSessionRequest, opts ...Option) (*CheckoutSession, error) {
	return call[CheckoutSession](ctx, c, request{method: "POST", path: "/v1/stripe/checkout/session", body: p}, opts)
}

// GetCheckoutSession returns the status of a session this project created
// for the buyer named by WithBuyerToken.
func (c *Client) GetCheckoutSession(ctx context.Context, id string, opts ...Option) (*CheckoutSession, error) {
	return call[CheckoutSession](ctx, c, request{method: "GET", path: "/v1/stripe/checkout/session/" + url.PathEscape(id)}, opts)
}

// CreatePaymentIntent creates a PaymentIntent for the buyer named by
// WithBuyerToken.
func (c *Client) CreatePaymentIntent(ctx context.Context, p CreatePaymentIntentRequest, opts ...Option) (*PaymentIntent, error) {
	return call[PaymentIntent](ctx, c, request{method: "POST", path: "/v1/stripe/payment/intent", body: p}, opts)
}

// CreatePortalSession opens Stripe's customer portal for a customer of the
// buyer named by WithBuyerToken.
func (c *Client) CreatePortalSession(ctx context.Context, p CreatePortalSessionRequest, opts ...Option) (*PortalSession, error) {
	return call[PortalSession](ctx, c, request{method: "POST", path: "/v1/stripe/customer-portal/session", body: p}, opts)
}

// CreateCustomer creates a Stripe customer of the project.
func (c *Client) CreateCustomer(ctx context.Context, p CustomerRequest, opts ...Option) (*Customer, error) {
	return call[Customer](ctx, c, request{method: "POST", path: "/v1/stripe/customers", body: p}, opts)
}

// GetCustomer returns a customer of the project; another project's is a
// not-found *Error.
func (c *Client) GetCustomer(ctx context.Context, id string, opts ...Option) (*Customer, error) {
	return call[Customer](ctx, c, request{method: "GET", path: customerPath(id)}, opts)
}

// UpdateCustomer changes the fields given in p; the others stay as they are.
func (c *Client) UpdateCustomer(ctx context.Context, id string, p CustomerRequest, opts ...Option) (*Customer, error) {
	return call[Customer](ctx, c, request{method: "PUT", path: customerPath(id), body: p}, opts)
}

// DeleteCustomer deletes a customer of the project.
func (c *Client) DeleteCustomer(ctx context.Context, id string, opts ...Option) error {
	return c.do(ctx, request{method: "DELETE", path: customerPath(id)}, nil, opts)
}

func customerPath(id string) string { return "/v1/stripe/customers/" + url.PathEscape(id) }

// ListCustomers returns the project's customers, newest first, fetching
// pages as the loop goes on. An error ends the sequence.
func (c *Client) ListCustomers(ctx context.Context, p ListCustomersParams, opts ...Option) iter.Seq2[*Customer, error] {
	q := pageQuery(p.Limit, p.StartingAfter)
	if p.Email != "" {
		q.Set("email", p.Email)
	}
	return list(ctx, c, "/v1/stripe/customers", q, opts, func(c *Customer) string { return c.ID })
}

// GetSubscription returns the current subscription (active, trialing or
// past due) of the customer with this email, or nil when there is none.
func (c *Client) GetSubscription(ctx context.Context, customerEmail string, opts ...Option) (*Subscription, error) {
	var out struct {
		Subscription *Subscription `json:"subscription"`
	}
	err := c.do(ctx, request{method: "GET", path: "/v1/customer/subscription",
		query: url.Values{"customerEmail": {customerEmail}}}, &out, opts)
	return out.Subscription, err
}

// ListWebhookEvents returns the Stripe events the service received for the
// project, newest first, with their processing state.
func (c *Client) ListWebhookEvents(ctx context.Context, p ListWebhookEventsParams, opts ...Option) iter.Seq2[*WebhookEvent, error] {
	return list(ctx, c, "/v1/webhooks/events", pageQuery(p.Limit, p.StartingAfter), opts, func(e *WebhookEvent) string { return e.ID })
}

// GetStripeSetup returns the environment's stored Stripe keys, masked.
func (c *Client) GetStripeSetup(ctx context.Context, opts ...Option) (*StripeSetup, error) {
	return call[StripeSetup](ctx, c, request{method: "GET", path: "/v1/setup/stripe"}, opts)
}

// PutStripeSetup stores the environment's Stripe keys.
func (c *Client) PutStripeSetup(ctx context.Context, p StripeSetupRequest, opts ...Option) (*StripeSetup, error) {
	return call[StripeSetup](ctx, c, request{method: "PUT", path: "/v1/setup/stripe", body: p}, opts)
}

// GetAuthSetup returns how the project's buyer tokens are verified.
func (c *Client) GetAuthSetup(ctx context.Context, opts ...Option) (*AuthSetup, error) {
	return call[AuthSetup](ctx, c, request{method: "GET", path: "/v1/setup/auth", noEnvironment: true}, opts)
}

// PutAuthSetup configures how the project's buyer tokens are verified.
func (c *Client) PutAuthSetup(ctx context.Context, p AuthSetupRequest, opts ...Option) (*AuthSetup, error) {
	return call[AuthSetup](ctx, c, request{method: "PUT", path: "/v1/setup/auth", body: p, noEnvironment: true}, opts)
}

// GetUsage returns the project's calls counted per environment, endpoint,
// status class and UTC day.
func (c *Client) GetUsage(ctx context.Context, p UsageParams, opts ...Option) ([]UsageCount, error) {
	q := url.Values{}
	if !p.From.IsZero() {
		q.Set("from", p.From.UTC().Format(time.DateOnly))
	}
	if !p.To.IsZero() {
		q.Set("to", p.To.UTC().Format(time.DateOnly))
	}
	if p.Environment != "" {
		q.Set("environment", string(p.Environment))
	}
	var out struct {
		Data []UsageCount `json:"data"`
	}
	err := c.do(ctx, request{method: "GET", path: "/v1/usage", query: q, noEnvironment: true}, &out, opts)
	return out.Data, err
}

// StartSync starts a resync of the project's mirror from Stripe for the
// environment, or returns the one already queued or running. Follow it with
// GetSyncJob until Done.
func (c *Client) StartSync(ctx context.Context, opts ...Option) (*SyncJob, error) {
	return call[SyncJob](ctx, c, request{method: "POST", path: "/v1/sync"}, opts)
}

// GetSyncJob returns a resync job of the project.
func (c *Client) GetSyncJob(ctx context.Context, id string, opts ...Option) (*SyncJob, error) {
	return call[SyncJob](ctx, c, request{method: "GET", path: "/v1/sync/" + url.PathEscape(id), noEnvironment: true}, opts)
}

// call makes a request whose answer is one T.
func call[T any](ctx context.Context, c *Client, r request, opts []Option) (*T, error) {
	out := new(T)
	if err := c.do(ctx, r, out, opts); err != nil {
		return nil, err
	}
	return out, nil
}

func pageQuery(limit int, startingAfter string) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if startingAfter != "" {
		q.Set("starting_after", startingAfter)
	}
	return q
}

// list pages through a list endpoint with starting_after, yielding each
// object; id returns an object's id, the cursor of the next page.
func list[T any](ctx context.Context, c *Client, path string, query url.Values, opts []Option, id func(*T) string) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		for {
			var page struct {
				Data    []T  `json:"data"`
				HasMore bool `json:"has_more"`
			}
			if err := c.do(ctx, request{method: "GET", path: path, query: q}, &page, opts); err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Data {
				if !yield(&page.Data[i], nil) {
					return
				}
			}
			if !page.HasMore || len(page.Data) == 0 {
				return
			}
			q.Set("starting_after", id(&page.Data[len(page.Data)-1]))
		}
	}
}
