package client

import "time"

// The types below are the JSON objects of openapi.yaml, under the same
// names; a test holds each one to its schema. Optional request fields are
// left out when empty.

// LineItem is one price and quantity of a checkout session.
type LineItem struct {
	Price    string `json:"price"`
	Quantity int64  `json:"quantity"`
}

// Checkout session modes.
const (
	ModePayment      = "payment"
	ModeSubscription = "subscription"
	ModeSetup        = "setup"
)

// CreateCheckoutSessionRequest creates a Stripe Checkout Session for the
// buyer. Mode is ModePayment, ModeSubscription or ModeSetup; LineItems are
// required in payment and subscription mode.
type CreateCheckoutSessionRequest struct {
	Mode                string            `json:"mode"`
	LineItems           []LineItem        `json:"line_items,omitempty"`
	SuccessURL          string            `json:"success_url"`
	CancelURL           string            `json:"cancel_url,omitempty"`
	CustomerEmail       string            `json:"customer_email,omitempty"`
	Customer            string            `json:"customer,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	AllowPromotionCodes bool              `json:"allow_promotion_codes,omitempty"`
	TrialPeriodDays     int64             `json:"trial_period_days,omitempty"`
	Currency            string            `json:"currency,omitempty"`
}

// CheckoutSession is a Checkout Session; send the buyer to URL.
type CheckoutSession struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	URL           string `json:"url"`
	Mode          string `json:"mode"`
	Status        string `json:"status"`         // open, complete or expired
	PaymentStatus string `json:"payment_status"` // paid, unpaid or no_payment_required
	Customer      string `json:"customer"`
	CustomerEmail string `json:"customer_email"`
	Subscription  string `json:"subscription"`
	PaymentIntent string `json:"payment_intent"`
	AmountTotal   int64  `json:"amount_total"`
	Currency      string `json:"currency"`
}

// CreatePaymentIntentRequest creates a PaymentIntent for a custom payment
// form. Amount is in the currency's minor unit.
type CreatePaymentIntentRequest struct {
	Amount       int64             `json:"amount"`
	Currency     string            `json:"currency"`
	Description  string            `json:"description,omitempty"`
	ReceiptEmail string            `json:"receipt_email,omitempty"`
	Customer     string            `json:"customer,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// PaymentIntent is what Stripe Elements needs to take the payment.
type PaymentIntent struct {
	ClientSecret    string `json:"client_secret"`
	PaymentIntentID string `json:"payment_intent_id"`
	Status          string `json:"status"`
	PublishableKey  string `json:"publishable_key"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
}

// CreatePortalSessionRequest opens Stripe's customer portal for a customer
// of the buyer.
type CreatePortalSessionRequest struct {
	Customer  string `json:"customer"`
	ReturnURL string `json:"return_url"`
}

// PortalSession is a customer portal session; send the customer to URL.
type PortalSession struct {
	URL string `json:"url"`
}

// CustomerRequest creates a customer, or updates the fields given.
type CustomerRequest struct {
	Email       string            `json:"email,omitempty"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Phone       string            `json:"phone,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// Customer is a Stripe customer of the project.
type Customer struct {
	ID          string            `json:"id"`
	Object      string            `json:"object"`
	Email       string            `json:"email"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Phone       string            `json:"phone"`
	Metadata    map[string]string `json:"metadata"`
	Created     int64             `json:"created"` // Unix seconds
}

// ListCustomersParams select customers, newest first. Limit is the page
// size (10 when zero); the iterator fetches further pages itself.
type ListCustomersParams struct {
	Email         string
	Limit         int
	StartingAfter string
}

// Subscription statuses that grant access.
const (
	StatusActive   = "active"
	StatusTrialing = "trialing"
	StatusPastDue  = "past_due"
)

// Subscription is a customer's current subscription, from the service's
// mirror of Stripe.
type Subscription struct {
	ID                   string     `json:"id"`
	TenantID             string     `json:"tenantId"`
	PlanID               string     `json:"planId"` // the price id of the first item
	Status               string     `json:"status"` // StatusActive, StatusTrialing or StatusPastDue
	CurrentPeriodEnd     time.Time  `json:"currentPeriodEnd"`
	StripeSubscriptionID string     `json:"stripeSubscriptionId"`
	CancelAtPeriodEnd    bool       `json:"cancelAtPeriodEnd"`
	TrialEnd             *time.Time `json:"trialEnd"`
	Plan                 Plan       `json:"plan"`
}

// Plan names what a subscription is for.
type Plan struct {
	Name string `json:"name"`
}

// WebhookEvent is a Stripe event the service received for the project.
type WebhookEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	APIVersion string    `json:"api_version"`
	Status     string    `json:"status"` // applied, ignored or failed
	Error      string    `json:"error"`  // why a failed event could not be applied
	Created    time.Time `json:"created"`
	ReceivedAt time.Time `json:"received_at"`
}

// ListWebhookEventsParams page through received events, newest first.
type ListWebhookEventsParams struct {
	Limit         int
	StartingAfter string
}

// StripeSetupRequest stores an environment's Stripe keys: test keys in
// Test, live keys in Live.
type StripeSetupRequest struct {
	SecretKey      string `json:"secret_key"`
	PublishableKey string `json:"publishable_key"`
	WebhookSecret  string `json:"webhook_secret,omitempty"`
	RefetchObjects bool   `json:"refetch_objects,omitempty"`
}

// StripeSetup is what is stored for an environment; secrets show only their
// last four characters.
type StripeSetup struct {
	Environment    Environment `json:"environment"`
	Configured     bool        `json:"configured"`
	SecretKey      string      `json:"secret_key"`
	PublishableKey string      `json:"publishable_key"`
	WebhookSecret  string      `json:"webhook_secret"`
	WebhookURL     string      `json:"webhook_url"`
	RefetchObjects bool        `json:"refetch_objects"`
	LastEventAt    *time.Time  `json:"last_event_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
}

// AuthSetupRequest says how buyer tokens are verified: a JWKS URL, or an
// HS256 secret of at least 32 characters; Issuer and Audience, when set,
// must match the token's.
type AuthSetupRequest struct {
	JWKSURL     string `json:"jwks_url,omitempty"`
	HS256Secret string `json:"hs256_secret,omitempty"`
	Issuer      string `json:"issuer,omitempty"`
	Audience    string `json:"audience,omitempty"`
}

// AuthSetup is the stored buyer-token verification; an HS256 secret shows
// only its last four characters.
type AuthSetup struct {
	Configured  bool      `json:"configured"`
	Method      string    `json:"method"` // jwks or hs256
	JWKSURL     string    `json:"jwks_url"`
	HS256Secret string    `json:"hs256_secret"`
	Issuer      string    `json:"issuer"`
	Audience    string    `json:"audience"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// UsageParams select usage counts. From and To are UTC days, inclusive
// (the last 30 days when zero); an empty Environment counts both.
type UsageParams struct {
	From, To    time.Time
	Environment Environment
}

// UsageCount is the number of calls of one endpoint, environment and status
// class on one UTC day.
type UsageCount struct {
	ProjectID   string      `json:"project_id"`
	Environment Environment `json:"environment"`
	Endpoint    string      `json:"endpoint"`     // such as "POST /v1/stripe/customers"
	StatusClass string      `json:"status_class"` // 2xx, 3xx, 4xx or 5xx
	Day         string      `json:"day"`          // YYYY-MM-DD
	Count       int64       `json:"count"`
}

// SyncJob is a resync of the project's mirror from Stripe for one
// environment, started by StartSync.
type SyncJob struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"` // sync_job
	ProjectID   string      `json:"project_id"`
	Environment Environment `json:"environment"`
	Origin      string      `json:"origin"` // api, admin, cli or schedule
	State       string      `json:"state"`  // queued, running, succeeded or failed
	Counts      SyncCounts  `json:"counts"`
	Attempts    int         `json:"attempts"`
	Error       *string     `json:"error"` // why it failed; nil unless it did
	CreatedAt   time.Time   `json:"created_at"`
	StartedAt   *time.Time  `json:"started_at"`
	FinishedAt  *time.Time  `json:"finished_at"`
}

// Done reports whether the job has finished, successfully or not.
func (j *SyncJob) Done() bool { return j.State == "succeeded" || j.State == "failed" }

// SyncCounts says how many objects of each kind a resync has read so far.
type SyncCounts struct {
	Customers     int `json:"customers"`
	Products      int `json:"products"`
	Prices        int `json:"prices"`
	Subscriptions int `json:"subscriptions"`
}
