package stripeadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/customer"
	"github.com/stripe/stripe-go/v76/form"
	"github.com/stripe/stripe-go/v76/price"
	"github.com/stripe/stripe-go/v76/product"
	"github.com/stripe/stripe-go/v76/subscription"
	"golang.org/x/time/rate"

	"github.com/stackfordevs/billing"
)

// listPageSize is the page size of list walks, Stripe's maximum.
const listPageSize = 100

// maxIdempotencyKey is the longest idempotency key Stripe accepts.
const maxIdempotencyKey = 255

// Client calls Stripe with one project's key for one environment. Get one
// from Adapter.Client. It is safe for concurrent use.
//
// Every method returns Stripe's failures as *billing.Error values:
// EINVALID for a request Stripe rejects (400) or a declined card (402, with
// StripeCode such as card_declined), ENOTFOUND for an unknown object,
// EFORBIDDEN for a key Stripe rejects (401) or one without permission (403),
// ECONFLICT for a concurrent use of an idempotency key, ERATELIMITED, ESTRIPE
// when Stripe fails or cannot be reached, and ETIMEOUT when it does not
// answer in time. A canceled context is returned wrapped, for errors.Is. An
// error returned by a list's callback is returned as is.
type Client struct {
	api       *stripeclient.API
	projectID string
	env       billing.Environment
	// callTimeout bounds one call, stripe-go's retries included.
	callTimeout time.Duration
	// lists sends list requests through the project's list rate limiter.
	lists *limitedBackend
}

// CreateCheckoutSession creates a Checkout Session. In subscription mode,
// p.SubscriptionMetadata and p.TrialPeriodDays go to the subscription it
// creates; a trial in another mode is an EINVALID error. An empty idemKey is
// replaced by a generated one.
func (c *Client) CreateCheckoutSession(ctx context.Context, p billing.CheckoutSessionParams, idemKey string) (*billing.CheckoutSession, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripe.CheckoutSessionParams{
		Mode:                optString(p.Mode),
		SuccessURL:          optString(p.SuccessURL),
		CancelURL:           optString(p.CancelURL),
		CustomerEmail:       optString(p.CustomerEmail),
		Customer:            optString(p.Customer),
		ClientReferenceID:   optString(p.ClientReferenceID),
		Currency:            optString(p.Currency),
		AllowPromotionCodes: p.AllowPromotionCodes,
	}
	for _, li := range p.LineItems {
		item := &stripe.CheckoutSessionLineItemParams{Price: stripe.String(li.Price)}
		if li.Quantity > 0 {
			item.Quantity = stripe.Int64(li.Quantity)
		}
		params.LineItems = append(params.LineItems, item)
	}
	if len(p.Metadata) > 0 {
		params.Metadata = p.Metadata
	}
	if p.Mode == string(stripe.CheckoutSessionModeSubscription) {
		if len(p.SubscriptionMetadata) > 0 || p.TrialPeriodDays != nil {
			params.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{TrialPeriodDays: p.TrialPeriodDays}
			if len(p.SubscriptionMetadata) > 0 {
				params.SubscriptionData.Metadata = p.SubscriptionMetadata
			}
		}
	} else if p.TrialPeriodDays != nil {
		return nil, billing.FieldErrorf("trial_period_days", "A trial period applies only in subscription mode.")
	}
	if err := setWrite(ctx, &params.Params, idemKey); err != nil {
		return nil, err
	}

	s, err := c.api.CheckoutSessions.New(params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&s.APIResource, c.projectID, c.env, decodeCheckoutSession)
}

// GetCheckoutSession returns a Checkout Session. Its customer, subscription
// and payment intent are ids. An unknown id is ENOTFOUND.
func (c *Client) GetCheckoutSession(ctx context.Context, id string) (*billing.CheckoutSession, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Checkout session not found.")
	}
	params := &stripe.CheckoutSessionParams{}
	params.Context = ctx
	s, err := c.api.CheckoutSessions.Get(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&s.APIResource, c.projectID, c.env, decodeCheckoutSession)
}

// CreatePaymentIntent creates a PaymentIntent with automatic payment methods
// enabled, for the caller to confirm with Stripe Elements and the returned
// client secret. An empty idemKey is replaced by a generated one.
func (c *Client) CreatePaymentIntent(ctx context.Context, p billing.PaymentIntentParams, idemKey string) (*billing.PaymentIntent, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripe.PaymentIntentParams{
		Amount:       stripe.Int64(p.Amount),
		Currency:     optString(p.Currency),
		Description:  optString(p.Description),
		ReceiptEmail: optString(p.ReceiptEmail),
		Customer:     optString(p.Customer),
		AutomaticPaymentMethods: &stripe.PaymentIntentAutomaticPaymentMethodsParams{
			Enabled: stripe.Bool(true),
		},
	}
	if len(p.Metadata) > 0 {
		params.Metadata = p.Metadata
	}
	if err := setWrite(ctx, &params.Params, idemKey); err != nil {
		return nil, err
	}

	pi, err := c.api.PaymentIntents.New(params)
	if err != nil {
		return nil, translateError(err)
	}
	return paymentIntent(pi, c.projectID, c.env, p.Metadata), nil
}

// paymentIntent maps a Stripe payment intent, its strings cleaned; sent is
// the metadata the request sent, for a user id Stripe did not echo.
func paymentIntent(pi *stripe.PaymentIntent, projectID string, env billing.Environment, sent map[string]string) *billing.PaymentIntent {
	out := &billing.PaymentIntent{
		ID:           clean(pi.ID),
		ProjectID:    projectID,
		Environment:  env,
		UserID:       clean(pi.Metadata["user_id"]),
		Amount:       pi.Amount,
		Currency:     clean(string(pi.Currency)),
		Description:  clean(pi.Description),
		ReceiptEmail: clean(pi.ReceiptEmail),
		Status:       clean(string(pi.Status)),
		ClientSecret: pi.ClientSecret,
		CreatedAt:    unixTime(pi.Created),
	}
	if out.UserID == "" {
		out.UserID = sent["user_id"]
	}
	if pi.Customer != nil {
		out.CustomerID = clean(pi.Customer.ID)
	}
	return out
}

// bound returns ctx limited to the client's call timeout, so that a Stripe
// that does not answer ends in ETIMEOUT whatever stripe-go retries.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.callTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.callTimeout)
}

// CreatePortalSession creates a customer portal session and returns its URL.
// An empty idemKey is replaced by a generated one.
func (c *Client) CreatePortalSession(ctx context.Context, customerID, returnURL, idemKey string) (string, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripe.BillingPortalSessionParams{
		Customer:  stripe.String(customerID),
		ReturnURL: optString(returnURL),
	}
	if err := setWrite(ctx, &params.Params, idemKey); err != nil {
		return "", err
	}
	s, err := c.api.BillingPortalSessions.New(params)
	if err != nil {
		return "", translateError(err)
	}
	return clean(s.URL), nil
}

// CreateCustomer creates a customer. An empty idemKey is replaced by a
// generated one.
func (c *Client) CreateCustomer(ctx context.Context, p billing.CustomerParams, idemKey string) (*billing.Customer, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := customerParams(p)
	if err := setWrite(ctx, &params.Params, idemKey); err != nil {
		return nil, err
	}
	cus, err := c.api.Customers.New(params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&cus.APIResource, c.projectID, c.env, decodeCustomer)
}

// GetPaymentIntent returns a payment intent with its client secret. An
// unknown id is ENOTFOUND.
func (c *Client) GetPaymentIntent(ctx context.Context, id string) (*billing.PaymentIntent, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Payment intent not found.")
	}
	params := &stripe.PaymentIntentParams{}
	params.Context = ctx
	pi, err := c.api.PaymentIntents.Get(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	if pi.Metadata["project_id"] != "" && pi.Metadata["project_id"] != c.projectID {
		return nil, billing.Errorf(billing.ENOTFOUND, "Payment intent not found.")
	}
	return paymentIntent(pi, c.projectID, c.env, nil), nil
}

// GetCustomer returns a customer. A deleted customer is returned with
// Deleted set and no other field; an unknown id is ENOTFOUND.
func (c *Client) GetCustomer(ctx context.Context, id string) (*billing.Customer, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Customer not found.")
	}
	params := &stripe.CustomerParams{}
	params.Context = ctx
	cus, err := c.api.Customers.Get(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&cus.APIResource, c.projectID, c.env, decodeCustomer)
}

// UpdateCustomer changes the non-nil fields of p; metadata keys are merged
// by Stripe, and a key set to "" is removed.
func (c *Client) UpdateCustomer(ctx context.Context, id string, p billing.CustomerParams, idemKey string) (*billing.Customer, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Customer not found.")
	}
	params := customerParams(p)
	if err := setWrite(ctx, &params.Params, idemKey); err != nil {
		return nil, err
	}
	cus, err := c.api.Customers.Update(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&cus.APIResource, c.projectID, c.env, decodeCustomer)
}

// DeleteCustomer deletes a customer, which also cancels its subscriptions.
// It returns the customer as Stripe answers the deletion: Deleted set, and
// EventAt Stripe's time of the answer.
func (c *Client) DeleteCustomer(ctx context.Context, id string) (*billing.Customer, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Customer not found.")
	}
	params := &stripe.CustomerParams{}
	params.Context = ctx
	cus, err := c.api.Customers.Del(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	out, err := decodeResponse(&cus.APIResource, c.projectID, c.env, decodeCustomer)
	if err != nil {
		return nil, err
	}
	out.Deleted = true
	return out, nil
}

// GetProduct reads a product from Stripe (for a plan name the mirror
// lacks). A deleted product is returned with Deleted set; an unknown id is
// ENOTFOUND.
func (c *Client) GetProduct(ctx context.Context, id string) (*billing.Product, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Product not found.")
	}
	params := &stripe.ProductParams{}
	params.Context = ctx
	p, err := c.api.Products.Get(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&p.APIResource, c.projectID, c.env, decodeProduct)
}

// GetSubscription reads a subscription from Stripe, mapped as a webhook event
// would map it. Like every object this Client returns, its EventAt is
// Stripe's time of the answer (its Date header), or, when Stripe sent none,
// the latest of the object's own timestamps: never the local clock.
func (c *Client) GetSubscription(ctx context.Context, id string) (*billing.Subscription, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if id == "" {
		return nil, billing.Errorf(billing.ENOTFOUND, "Subscription not found.")
	}
	params := &stripe.SubscriptionParams{}
	params.Context = ctx
	s, err := c.api.Subscriptions.Get(id, params)
	if err != nil {
		return nil, translateError(err)
	}
	return decodeResponse(&s.APIResource, c.projectID, c.env, decodeSubscription)
}

// ListCustomers calls fn with every customer of the account, walking all
// pages. It stops at the first error fn returns and returns it.
func (c *Client) ListCustomers(ctx context.Context, fn func(billing.Customer) error) error {
	params := &stripe.CustomerListParams{}
	c.listParams(ctx, &params.ListParams)
	it := customer.Client{B: c.lists, Key: c.api.Customers.Key}.List(params)
	return walk(it.Iter, func() *stripe.APIResponse { return it.CustomerList().LastResponse },
		func() string { return it.Customer().ID },
		visitor(c, decodeCustomer, fn))
}

// ListSubscriptions calls fn with every subscription of the account, of any
// status, walking all pages. It stops at the first error fn returns and
// returns it.
func (c *Client) ListSubscriptions(ctx context.Context, fn func(billing.Subscription) error) error {
	params := &stripe.SubscriptionListParams{Status: stripe.String("all")}
	c.listParams(ctx, &params.ListParams)
	it := subscription.Client{B: c.lists, Key: c.api.Subscriptions.Key}.List(params)
	return walk(it.Iter, func() *stripe.APIResponse { return it.SubscriptionList().LastResponse },
		func() string { return it.Subscription().ID },
		visitor(c, decodeSubscription, fn))
}

// ListProducts calls fn with every product of the account, walking all
// pages. It stops at the first error fn returns and returns it.
func (c *Client) ListProducts(ctx context.Context, fn func(billing.Product) error) error {
	params := &stripe.ProductListParams{}
	c.listParams(ctx, &params.ListParams)
	it := product.Client{B: c.lists, Key: c.api.Products.Key}.List(params)
	return walk(it.Iter, func() *stripe.APIResponse { return it.ProductList().LastResponse },
		func() string { return it.Product().ID },
		visitor(c, decodeProduct, fn))
}

// ListPrices calls fn with every price of the account, walking all pages. It
// stops at the first error fn returns and returns it.
func (c *Client) ListPrices(ctx context.Context, fn func(billing.Price) error) error {
	params := &stripe.PriceListParams{}
	c.listParams(ctx, &params.ListParams)
	it := price.Client{B: c.lists, Key: c.api.Prices.Key}.List(params)
	return walk(it.Iter, func() *stripe.APIResponse { return it.PriceList().LastResponse },
		func() string { return it.Price().ID },
		visitor(c, decodePrice, fn))
}

func (c *Client) listParams(ctx context.Context, p *stripe.ListParams) {
	p.Context = ctx
	p.Limit = stripe.Int64(listPageSize)
}

// visitor adapts a list callback to the raw objects walk yields.
func visitor[T any](c *Client, decode decoder[T], fn func(T) error) func(json.RawMessage, time.Time) error {
	return func(raw json.RawMessage, at time.Time) error {
		v, err := decode(raw, c.projectID, c.env, at)
		if errors.Is(err, errForeign) {
			return nil // another project's object in a shared account
		} else if err != nil {
			return billing.Errorf(billing.ESTRIPE, "Stripe returned an unreadable object.")
		}
		return fn(v)
	}
}

// walk visits the raw JSON of every object an iterator yields, reading each
// page's objects from the page's body, with the Stripe time of the page. It
// returns visit's errors as they are and translates the iterator's.
func walk(it *stripe.Iter, page func() *stripe.APIResponse, id func() string, visit func(json.RawMessage, time.Time) error) error {
	var (
		cur  *stripe.APIResponse
		byID map[string]json.RawMessage
		at   time.Time
	)
	for it.Next() {
		if resp := page(); resp != cur || byID == nil {
			cur = resp
			var err error
			if byID, err = indexPage(resp); err != nil {
				return err
			}
			at = stripeTime(resp)
		}
		raw, ok := byID[id()]
		if !ok {
			return billing.Errorf(billing.ESTRIPE, "Stripe returned an unreadable list.")
		}
		if err := visit(raw, at); err != nil {
			return err
		}
	}
	return translateError(it.Err())
}

// indexPage returns the objects of a list page by id.
func indexPage(resp *stripe.APIResponse) (map[string]json.RawMessage, error) {
	if resp == nil {
		return nil, billing.Errorf(billing.ESTRIPE, "Stripe returned an unreadable list.")
	}
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(resp.RawJSON, &page); err != nil {
		return nil, billing.Errorf(billing.ESTRIPE, "Stripe returned an unreadable list.")
	}
	byID := make(map[string]json.RawMessage, len(page.Data))
	for _, raw := range page.Data {
		var o struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &o) == nil && o.ID != "" {
			byID[o.ID] = raw
		}
	}
	return byID, nil
}

// decoder maps a Stripe object's JSON into a domain type.
type decoder[T any] func(b []byte, projectID string, env billing.Environment, at time.Time) (T, error)

// decodeResponse maps the raw body of a Stripe response, stamped with the
// response's Stripe time.
func decodeResponse[T any](r *stripe.APIResource, projectID string, env billing.Environment, decode decoder[T]) (*T, error) {
	if r.LastResponse == nil {
		return nil, billing.Errorf(billing.ESTRIPE, "Stripe returned an unreadable object.")
	}
	v, err := decode(r.LastResponse.RawJSON, projectID, env, stripeTime(r.LastResponse))
	if errors.Is(err, errForeign) {
		return nil, billing.Errorf(billing.ENOTFOUND, "No such object for this project.")
	} else if err != nil {
		return nil, billing.Errorf(billing.ESTRIPE, "Stripe returned an unreadable object.")
	}
	return &v, nil
}

// stripeTime returns the time at which Stripe answered, from the response's
// Date header (whole seconds, Stripe's clock), or the zero time when there
// is none. Objects read from Stripe are ordered against webhook events by
// it: both are Stripe's time, so a local clock ahead of Stripe's cannot make
// a read hide a genuine event.
func stripeTime(resp *stripe.APIResponse) time.Time {
	if resp == nil || resp.Header == nil {
		return time.Time{}
	}
	t, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// limitedBackend waits for a rate limiter before each request.
type limitedBackend struct {
	stripe.Backend
	limit *rate.Limiter
}

func (b *limitedBackend) wait(p *stripe.Params) error {
	ctx := context.Background()
	if p != nil && p.Context != nil {
		ctx = p.Context
	}
	if err := b.limit.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The wait would outlast the context's deadline.
		return fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
	}
	return nil
}

// Call implements stripe.Backend.
func (b *limitedBackend) Call(method, path, key string, params stripe.ParamsContainer, v stripe.LastResponseSetter) error {
	var p *stripe.Params
	if params != nil {
		p = params.GetParams()
	}
	if err := b.wait(p); err != nil {
		return err
	}
	return b.Backend.Call(method, path, key, params, v)
}

// CallRaw implements stripe.Backend.
func (b *limitedBackend) CallRaw(method, path, key string, body *form.Values, params *stripe.Params, v stripe.LastResponseSetter) error {
	if err := b.wait(params); err != nil {
		return err
	}
	return b.Backend.CallRaw(method, path, key, body, params, v)
}

func customerParams(p billing.CustomerParams) *stripe.CustomerParams {
	params := &stripe.CustomerParams{
		Email:       p.Email,
		Name:        p.Name,
		Description: p.Description,
		Phone:       p.Phone,
	}
	if len(p.Metadata) > 0 {
		params.Metadata = p.Metadata
	}
	return params
}

// setWrite sets the context and idempotency key of a create. An empty key
// is replaced by a random one, so that stripe-go's retries and ours never
// create twice.
func setWrite(ctx context.Context, p *stripe.Params, idemKey string) error {
	idemKey = strings.TrimSpace(idemKey)
	if idemKey == "" {
		idemKey = NewIdempotencyKey()
	}
	if len(idemKey) > maxIdempotencyKey {
		return billing.FieldErrorf("Idempotency-Key", "The idempotency key must be at most %d characters.", maxIdempotencyKey)
	}
	p.Context = ctx
	p.SetIdempotencyKey(idemKey)
	return nil
}

// NewIdempotencyKey returns a random idempotency key, as the Client uses
// when given none.
func NewIdempotencyKey() string {
	return "billing-" + uuid.NewString()
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return stripe.String(s)
}
