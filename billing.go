// Package billing holds the domain types and error codes shared by the
// store, the Stripe adapter and the HTTP server. It imports none of them.
package billing

import (
	"context"
	"strings"
	"time"
)

// Environment selects which of a project's Stripe accounts a call uses.
type Environment string

// The two environments every project has.
const (
	EnvTest Environment = "test"
	EnvLive Environment = "live"
)

// Valid reports whether e is test or live.
func (e Environment) Valid() bool { return e == EnvTest || e == EnvLive }

// Tenant is an organisation that owns projects.
type Tenant struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Project is an application of a tenant with its own API credentials.
type Project struct {
	ID       string
	TenantID string
	Name     string
	// APIKey is the public key id sent as x-api-key.
	APIKey string
	// SecretHash is the SHA-256 of the project's secret key; the secret
	// itself is never stored.
	SecretHash []byte
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// StripeSettings are a project's Stripe keys for one environment. The store
// encrypts SecretKey and WebhookSecret at rest; in memory they are plain.
type StripeSettings struct {
	ProjectID      string
	Environment    Environment
	SecretKey      string
	PublishableKey string
	WebhookSecret  string
	// RefetchObjects makes the webhook receiver re-read from Stripe every
	// subscription and customer an event names, and store what Stripe says
	// now rather than the event's copy.
	RefetchObjects bool
	UpdatedAt      time.Time
}

// AuthSettings say how a project's buyer tokens are verified: a JWKS URL or
// an HS256 shared secret (encrypted at rest), plus optional issuer and audience.
type AuthSettings struct {
	ProjectID   string
	JWKSURL     string
	HS256Secret string
	Issuer      string
	Audience    string
	UpdatedAt   time.Time
}

// AuditEntry records one setup or admin change. Detail never holds a secret.
type AuditEntry struct {
	ID        int64
	TenantID  string
	ProjectID string
	Actor     string
	Action    string
	Detail    string
	CreatedAt time.Time
}

// Customer is a Stripe customer known to a project, either created through
// the service or received through a webhook or a sync.
type Customer struct {
	ID          string // Stripe id, cus_...
	ProjectID   string
	Environment Environment
	Email       string
	Name        string
	Description string
	Phone       string
	Metadata    map[string]string
	// UserID is the buyer (token sub, or metadata.user_id) the customer belongs to.
	UserID  string
	Deleted bool
	// Created is Stripe's creation time of the object.
	Created time.Time
	// EventAt is the created time of the Stripe event (or the time of the
	// Stripe read) that last wrote this record; older writes never win.
	EventAt   time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// CustomerFilter selects customers of one project and environment for a list,
// newest first.
type CustomerFilter struct {
	ProjectID     string
	Environment   Environment
	Email         string // optional, case-insensitive exact match
	StartingAfter string // optional customer id cursor
	Limit         int    // 1-100
}

// LineItem is one price and quantity of a checkout session.
type LineItem struct {
	Price    string
	Quantity int64
}

// CheckoutSession is a Stripe Checkout Session created through the service.
type CheckoutSession struct {
	ID              string
	ProjectID       string
	Environment     Environment
	UserID          string // buyer sub
	Mode            string // payment, subscription, setup
	Status          string
	PaymentStatus   string
	CustomerID      string
	CustomerEmail   string
	SubscriptionID  string
	PaymentIntentID string
	AmountTotal     int64
	Currency        string
	URL             string
	Created         time.Time
	EventAt         time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// CheckoutSessionParams is what a caller asks for when creating a session.
type CheckoutSessionParams struct {
	LineItems           []LineItem
	Mode                string
	SuccessURL          string
	CancelURL           string
	CustomerEmail       string
	Customer            string
	Currency            string
	AllowPromotionCodes *bool
	TrialPeriodDays     *int64
	ClientReferenceID   string
	// Metadata goes on the session; SubscriptionMetadata, in subscription
	// mode, on the subscription it creates.
	Metadata             map[string]string
	SubscriptionMetadata map[string]string
}

// PaymentIntent is a Stripe PaymentIntent created through the service.
type PaymentIntent struct {
	ID           string
	ProjectID    string
	Environment  Environment
	UserID       string
	CustomerID   string
	Amount       int64
	Currency     string
	Description  string
	ReceiptEmail string
	Status       string
	ClientSecret string // returned to the caller, never stored
	CreatedAt    time.Time
}

// PaymentIntentParams is what a caller asks for when creating a payment intent.
type PaymentIntentParams struct {
	Amount       int64
	Currency     string
	Description  string
	ReceiptEmail string
	Customer     string
	Metadata     map[string]string
}

// CustomerParams creates or updates a Stripe customer. On update, nil fields
// are left unchanged.
type CustomerParams struct {
	Email       *string
	Name        *string
	Description *string
	Phone       *string
	Metadata    map[string]string
}

// Subscription is the local mirror of a Stripe subscription.
type Subscription struct {
	ID          string // Stripe id, sub_...
	ProjectID   string
	Environment Environment
	CustomerID  string
	Email       string // customer's email when known
	UserID      string // buyer sub from metadata.user_id when known
	PriceID     string // first item's price
	ProductID   string // first item's product
	PlanName    string // product name (or price nickname) when known
	Status      string
	// CurrentPeriodStart and CurrentPeriodEnd bound the period being paid
	// for: the subscription's own up to API version 2025-02-24, the items'
	// (the item that ends last) from 2025-03-31 on.
	CurrentPeriodStart time.Time
	CurrentPeriodEnd   time.Time
	// CancelAtPeriodEnd is Stripe's cancel_at_period_end flag as sent; see
	// EndsAtPeriodEnd for whether the subscription renews.
	CancelAtPeriodEnd bool
	// CancelAt is when the subscription is set to end (the customer portal
	// cancels this way), CanceledAt when it was canceled, EndedAt when it
	// ended; nil when Stripe sent none.
	CancelAt   *time.Time
	CanceledAt *time.Time
	EndedAt    *time.Time
	TrialEnd   *time.Time
	Items      []SubscriptionItem
	Created    time.Time
	EventAt    time.Time
	UpdatedAt  time.Time
}

// EndsAtPeriodEnd reports whether the subscription will not renew: it is
// set to cancel at the period's end, or to be canceled (cancel_at) at or
// before the current period ends.
func (s *Subscription) EndsAtPeriodEnd() bool {
	if s.CancelAtPeriodEnd {
		return true
	}
	return s.CancelAt != nil && !s.CancelAt.IsZero() &&
		(s.CurrentPeriodEnd.IsZero() || !s.CancelAt.After(s.CurrentPeriodEnd))
}

// SubscriptionItem is one price of a subscription.
type SubscriptionItem struct {
	ID        string `json:"id"`
	PriceID   string `json:"price_id"`
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
	// Interval ("day", "week", "month", "year") and IntervalCount say how
	// often the price recurs; empty and 0 for a one-time price.
	Interval      string `json:"interval,omitempty"`
	IntervalCount int64  `json:"interval_count,omitempty"`
	// CurrentPeriodStart and CurrentPeriodEnd (Unix seconds) are the item's
	// own period, sent from API version 2025-03-31 on.
	CurrentPeriodStart int64 `json:"current_period_start,omitempty"`
	CurrentPeriodEnd   int64 `json:"current_period_end,omitempty"`
}

// Product is the local mirror of a Stripe product, kept for plan names.
type Product struct {
	ID          string
	ProjectID   string
	Environment Environment
	Name        string
	Active      bool
	Deleted     bool
	EventAt     time.Time
}

// Price is the local mirror of a Stripe price, kept for plan names.
type Price struct {
	ID          string
	ProjectID   string
	Environment Environment
	ProductID   string
	Nickname    string
	Active      bool
	Deleted     bool
	EventAt     time.Time
}

// Event processing states of a stored webhook event.
const (
	EventApplied = "applied" // the mirror was updated
	EventIgnored = "ignored" // stored and acknowledged; type not mirrored
	EventFailed  = "failed"  // permanently unprocessable; stored for the operator
)

// WebhookEvent is one Stripe event as received, stored raw.
type WebhookEvent struct {
	ProjectID   string
	Environment Environment
	ID          string // Stripe event id, evt_...
	Type        string
	APIVersion  string
	Created     time.Time // Stripe's event created time
	Payload     []byte
	Status      string // EventApplied, EventIgnored or EventFailed
	Error       string // why it failed, when it did
	ReceivedAt  time.Time
}

// MirrorChange is what one event (or one Stripe read) writes to the mirror.
// Every object in it carries the EventAt that orders it against other writes.
type MirrorChange struct {
	Customers       []Customer
	Subscriptions   []Subscription
	Products        []Product
	Prices          []Price
	CheckoutSession *CheckoutSession
}

// Empty reports whether the change writes nothing.
func (c MirrorChange) Empty() bool {
	return len(c.Customers) == 0 && len(c.Subscriptions) == 0 && len(c.Products) == 0 &&
		len(c.Prices) == 0 && c.CheckoutSession == nil
}

// ObjectKind names a kind of mirrored Stripe object.
type ObjectKind string

// The kinds of mirrored objects.
const (
	KindCustomer        ObjectKind = "customer"
	KindSubscription    ObjectKind = "subscription"
	KindProduct         ObjectKind = "product"
	KindPrice           ObjectKind = "price"
	KindCheckoutSession ObjectKind = "checkout_session"
)

// ChangeOp says what a write did to a mirrored object.
type ChangeOp string

// What a write can do to a mirrored object.
const (
	Created ChangeOp = "created" // the mirror did not have it
	Updated ChangeOp = "updated" // its stored state changed
	Deleted ChangeOp = "deleted" // it is now marked deleted (customers, products, prices)
)

// ObjectChange is one mirrored object that a write created, changed or
// deleted. A write that left an object as it was (an older event, a re-read
// that found nothing new) is no change.
type ObjectChange struct {
	Kind ObjectKind
	ID   string
	Op   ChangeOp
	// Status is the object's status after the write, PreviousStatus before
	// it ("" when created): subscriptions and checkout sessions only.
	Status         string
	PreviousStatus string
	// CustomerID is the customer the object belongs to (for a customer,
	// its own id), when known.
	CustomerID string
}

// SyncCounts says how many objects of each kind a resync read.
type SyncCounts struct {
	Customers     int `json:"customers"`
	Products      int `json:"products"`
	Prices        int `json:"prices"`
	Subscriptions int `json:"subscriptions"`
}

// Who names the customer an access question is about, by exactly one of
// its email (compared case-insensitively), its buyer's user id (the token's
// sub, as in metadata.user_id) or its Stripe id (cus_...).
type Who struct {
	Email      string
	UserID     string
	CustomerID string
}

// Normalized returns w with the email in the form emails are compared in.
func (w Who) Normalized() Who {
	w.Email = NormalizeEmail(w.Email)
	return w
}

// Valid reports whether exactly one of w's fields is set.
func (w Who) Valid() bool {
	n := 0
	for _, v := range []string{w.Email, w.UserID, w.CustomerID} {
		if v != "" {
			n++
		}
	}
	return n == 1
}

// UsageCount is a number of calls of one project, environment, endpoint,
// status class ("2xx", "4xx", "5xx") and UTC day ("2006-01-02").
type UsageCount struct {
	ProjectID   string
	Environment Environment
	Endpoint    string
	StatusClass string
	Day         string
	Count       int64
}

// SetupSession is a person signed in to the setup page. The session's
// token is kept only in the browser's cookie; the store keys the session by
// the token's SHA-256.
type SetupSession struct {
	TokenHash []byte
	ProjectID string
	// Fingerprint identifies the project's secret at sign-in: a rotated
	// secret ends the session.
	Fingerprint string
	ExpiresAt   time.Time
	CreatedAt   time.Time
}

// Intent states.
const (
	// IntentPending: recorded before the Stripe call; the call may or may
	// not have created the object.
	IntentPending = "pending"
	// IntentCompleted: the object exists in Stripe and is recorded locally.
	IntentCompleted = "completed"
)

// Intent records a create the service is about to make in Stripe, keyed by
// the project, the environment and the idempotency key the Stripe call
// carries. It is written before the call and completed after it, so that
// no Stripe object exists without its record, and a retry with the same key
// neither creates twice nor loses the object.
type Intent struct {
	ProjectID   string
	Environment Environment
	// IdempotencyKey is the key sent to Stripe: the caller's
	// Idempotency-Key, or one the service made.
	IdempotencyKey string
	// Operation names what is created, such as "customer.create".
	Operation string
	// Fingerprint is a digest of the request (operation, buyer and
	// parameters): the same key with another request is refused.
	Fingerprint string
	// UserID is the buyer (token sub) the object is created for, if any.
	UserID string
	State  string // IntentPending or IntentCompleted
	// ObjectID is the Stripe id, once completed.
	ObjectID  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NormalizeEmail returns the form in which emails are compared: trimmed and
// lower-cased.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

type actorKey struct{}

// WithActor returns a context that names who makes a change, for the audit log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFromContext returns the actor set by WithActor, or "system".
func ActorFromContext(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}
