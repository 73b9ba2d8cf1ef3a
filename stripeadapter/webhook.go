package stripeadapter

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stackfordevs/billing"
)

// DefaultWebhookTolerance is how old a webhook signature's timestamp may be
// when VerifyWebhook is given no tolerance.
const DefaultWebhookTolerance = webhook.DefaultTolerance

// Messages of VerifyWebhook's errors.
const (
	msgMissingSignature = "Missing Stripe-Signature header."
	msgBadSignature     = "Invalid Stripe signature."
	msgStaleSignature   = "Stripe signature timestamp is outside the tolerance."
)

// ErrUnprocessable is wrapped by the error ParseEvent returns for a genuine
// event of a known type whose object it cannot read. The event should be
// stored as failed rather than retried; test with errors.Is.
var ErrUnprocessable = errors.New("unprocessable Stripe event")

// VerifyWebhook checks the Stripe-Signature header of a webhook payload
// against a project's signing secret. Any one of several v1 signatures may
// match (Stripe sends two while a secret is rolled). The signature's
// timestamp may be at most tolerance old, or ahead of the clock;
// 0 means DefaultWebhookTolerance.
//
// Failures are EINVALID *billing.Error values: a missing header, a bad
// signature, or a timestamp outside the tolerance. An empty secret matches
// nothing.
func VerifyWebhook(payload []byte, sigHeader, secret string, tolerance time.Duration) error {
	return VerifyWebhookAt(payload, sigHeader, secret, tolerance, time.Now())
}

// VerifyWebhookAt is VerifyWebhook with the current time given.
func VerifyWebhookAt(payload []byte, sigHeader, secret string, tolerance time.Duration, now time.Time) error {
	if strings.TrimSpace(sigHeader) == "" {
		return signatureError(msgMissingSignature)
	}
	if secret == "" {
		return signatureError(msgBadSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	// stripe-go refuses only old timestamps; one far ahead would let a
	// captured signature be replayed for longer than the tolerance.
	if ts, ok := signatureTime(sigHeader); ok && ts.After(now.Add(tolerance)) {
		return signatureError(msgStaleSignature)
	}
	err := webhook.ValidatePayloadWithTolerance(payload, sigHeader, secret, tolerance)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, webhook.ErrNotSigned):
		return signatureError(msgMissingSignature)
	case errors.Is(err, webhook.ErrTooOld):
		return signatureError(msgStaleSignature)
	default:
		return signatureError(msgBadSignature)
	}
}

// signatureTime returns the t= timestamp of a Stripe-Signature header.
func signatureTime(header string) (time.Time, bool) {
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

func signatureError(msg string) *billing.Error {
	return &billing.Error{Code: billing.EINVALID, Param: "Stripe-Signature", Message: msg}
}

// Parsed is what ParseEvent reads from one webhook event.
type Parsed struct {
	// Event is the event to store. Its Payload is the payload given to
	// ParseEvent, not a copy; Status, Error and ReceivedAt are left to the
	// caller.
	Event billing.WebhookEvent
	// Change is what the event writes to the mirror; every object in it has
	// EventAt set to the event's created time. The products a subscription's
	// items carry expanded are mirrored too. A Customer taken from a
	// checkout session carries only ID, Email and UserID, and should be
	// merged into a stored customer rather than replace it.
	Change billing.MirrorChange
	// RefreshSubscriptions are subscriptions the event concerns without
	// carrying them (an invoice's, or a completed checkout session's). The
	// caller reads them from Stripe with GetSubscription.
	RefreshSubscriptions []string
}

// rawEvent is the envelope of a Stripe event, of any API version.
type rawEvent struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Data       struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// EventTypes returns the Stripe event types the service mirrors: the ones to
// enable on a project's webhook endpoint. ParseEvent maps each of them to a
// change of the mirror (or to objects to read); other types are stored and
// acknowledged only.
func EventTypes() []string {
	return []string{
		"checkout.session.completed",
		"checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed",
		"checkout.session.expired",
		"customer.created",
		"customer.updated",
		"customer.deleted",
		"customer.subscription.created",
		"customer.subscription.updated",
		"customer.subscription.deleted",
		"customer.subscription.paused",
		"customer.subscription.resumed",
		"customer.subscription.trial_will_end",
		"invoice.paid",
		"invoice.payment_succeeded",
		"invoice.payment_failed",
		"product.created",
		"product.updated",
		"product.deleted",
		"price.created",
		"price.updated",
		"price.deleted",
	}
}

// ParseEvent reads a Stripe event of any API version into the event to store
// and the change it makes to the mirror of a project's environment. It does
// not check the signature: call VerifyWebhook first.
//
// Mapped types: checkout.session.*, customer.created|updated|deleted,
// customer.subscription.*, invoice.paid|payment_failed|payment_succeeded,
// product.* and price.*. Other types give an empty change and no error.
//
// Every string read is cleaned of NUL bytes and invalid UTF-8. An object
// tagged (metadata.project_id) with another project is not mirrored: the
// event gives an empty change.
//
// A payload that is not a JSON event with an id and a type is an EINVALID
// *billing.Error. An event of a mapped type whose object cannot be read
// returns an error wrapping ErrUnprocessable, with Parsed.Event still set.
func ParseEvent(payload []byte, projectID string, env billing.Environment) (Parsed, error) {
	var e rawEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return Parsed{}, billing.Errorf(billing.EINVALID, "The webhook payload is not a Stripe event.")
	}
	cleanStrings(reflect.ValueOf(&e))
	if e.ID == "" || e.Type == "" || (e.Object != "" && e.Object != "event") {
		return Parsed{}, billing.Errorf(billing.EINVALID, "The webhook payload is not a Stripe event.")
	}

	at := unixTime(e.Created)
	p := Parsed{Event: billing.WebhookEvent{
		ProjectID:   projectID,
		Environment: env,
		ID:          e.ID,
		Type:        e.Type,
		APIVersion:  e.APIVersion,
		Created:     at,
		Payload:     payload,
	}}
	if err := p.apply(e.Type, e.Data.Object, at); errors.Is(err, errForeign) {
		p.Change, p.RefreshSubscriptions = billing.MirrorChange{}, nil
	} else if err != nil {
		return p, fmt.Errorf("%w: %s %s: %s", ErrUnprocessable, e.Type, e.ID, clean(err.Error()))
	}
	return p, nil
}

// apply maps the event's object into p.Change.
func (p *Parsed) apply(typ string, obj json.RawMessage, at time.Time) error {
	projectID, env := p.Event.ProjectID, p.Event.Environment
	switch {
	case strings.HasPrefix(typ, "checkout.session."):
		return p.applyCheckoutSession(typ, obj, at)

	case typ == "customer.created" || typ == "customer.updated" || typ == "customer.deleted":
		c, err := decodeCustomer(obj, projectID, env, at)
		if err != nil {
			return err
		}
		if typ == "customer.deleted" {
			c.Deleted = true
		}
		p.Change.Customers = append(p.Change.Customers, c)

	case strings.HasPrefix(typ, "customer.subscription."):
		return p.applySubscription(obj, at)

	case typ == "invoice.paid" || typ == "invoice.payment_failed" || typ == "invoice.payment_succeeded":
		var inv rawInvoice
		if err := decodeObject(obj, "invoice", &inv, &inv.ID, &inv.Object); err != nil {
			return err
		}
		sub := inv.Subscription
		if sub.ID == "" && inv.Parent != nil && inv.Parent.SubscriptionDetails != nil {
			sub = inv.Parent.SubscriptionDetails.Subscription
		}
		return p.applySubscriptionRef(sub, at)

	case typ == "product.created" || typ == "product.updated" || typ == "product.deleted":
		prod, err := decodeProduct(obj, projectID, env, at)
		if err != nil {
			return err
		}
		if typ == "product.deleted" {
			prod.Deleted = true
		}
		p.Change.Products = append(p.Change.Products, prod)

	case typ == "price.created" || typ == "price.updated" || typ == "price.deleted":
		price, err := decodePrice(obj, projectID, env, at)
		if err != nil {
			return err
		}
		if typ == "price.deleted" {
			price.Deleted = true
		}
		p.Change.Prices = append(p.Change.Prices, price)
	}
	return nil
}

func (p *Parsed) applyCheckoutSession(typ string, obj json.RawMessage, at time.Time) error {
	var r rawCheckoutSession
	if err := decodeObject(obj, "checkout.session", &r, &r.ID, &r.Object); err != nil {
		return err
	}
	if r.Metadata.foreign(p.Event.ProjectID) {
		return errForeign
	}
	s := r.session(p.Event.ProjectID, p.Event.Environment, at)
	p.Change.CheckoutSession = &s

	if r.Customer.ID != "" {
		email := r.CustomerEmail
		if r.CustomerDetails != nil && r.CustomerDetails.Email != "" {
			email = r.CustomerDetails.Email
		}
		p.Change.Customers = append(p.Change.Customers, billing.Customer{
			ID:          r.Customer.ID,
			ProjectID:   p.Event.ProjectID,
			Environment: p.Event.Environment,
			Email:       email,
			UserID:      s.UserID,
			EventAt:     at,
		})
	}
	if typ == "checkout.session.completed" {
		return p.applySubscriptionRef(r.Subscription, at)
	}
	return nil
}

// applySubscription mirrors a subscription object, and the products its
// items carry expanded.
func (p *Parsed) applySubscription(obj json.RawMessage, at time.Time) error {
	s, products, err := decodeSubscriptionProducts(obj, p.Event.ProjectID, p.Event.Environment, at)
	if err != nil {
		return err
	}
	p.Change.Subscriptions = append(p.Change.Subscriptions, s)
	p.Change.Products = append(p.Change.Products, products...)
	return nil
}

// applySubscriptionRef mirrors an expanded subscription, or asks the caller
// to refresh one given by id.
func (p *Parsed) applySubscriptionRef(sub expandable, at time.Time) error {
	switch {
	case sub.Object != nil:
		if err := p.applySubscription(sub.Object, at); errors.Is(err, errForeign) {
			return nil
		} else if err != nil {
			return fmt.Errorf("subscription: %w", err)
		}
	case sub.ID != "":
		p.RefreshSubscriptions = append(p.RefreshSubscriptions, sub.ID)
	}
	return nil
}
