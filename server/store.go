package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/intents"
	"github.com/stackfordevs/billing/setuppage"
	"github.com/stackfordevs/billing/store"
)

// Store is the storage the server needs. Lookups that find nothing return
// ENOTFOUND; unique-key clashes return ECONFLICT; an unreachable database
// returns EUNAVAILABLE and a value it refuses EINVALID.
type Store interface {
	Ping(ctx context.Context) error

	CreateTenant(ctx context.Context, t *billing.Tenant) error
	CreateProject(ctx context.Context, p *billing.Project) error
	FindProjectByID(ctx context.Context, id string) (*billing.Project, error)
	FindProjectByAPIKey(ctx context.Context, key string) (*billing.Project, error)
	UpdateProjectSecret(ctx context.Context, projectID string, hash []byte) error

	PutStripeSettings(ctx context.Context, s billing.StripeSettings) error
	FindStripeSettings(ctx context.Context, projectID string, env billing.Environment) (*billing.StripeSettings, error)
	PutAuthSettings(ctx context.Context, s billing.AuthSettings) error
	FindAuthSettings(ctx context.Context, projectID string) (*billing.AuthSettings, error)

	UpsertCustomer(ctx context.Context, c billing.Customer) error
	FindCustomer(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Customer, error)
	ListCustomers(ctx context.Context, f billing.CustomerFilter) ([]billing.Customer, bool, error)
	DeleteCustomer(ctx context.Context, projectID string, env billing.Environment, id string) error

	CreateCheckoutSession(ctx context.Context, cs billing.CheckoutSession) error
	FindCheckoutSession(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.CheckoutSession, error)
	UpdateCheckoutSession(ctx context.Context, cs billing.CheckoutSession) error
	CreatePaymentIntent(ctx context.Context, pi billing.PaymentIntent) error

	ApplyEvent(ctx context.Context, ev billing.WebhookEvent, change billing.MirrorChange) (store.ApplyResult, error)
	UpsertFromStripe(ctx context.Context, projectID string, env billing.Environment, change billing.MirrorChange) error
	ListWebhookEvents(ctx context.Context, projectID string, env billing.Environment, limit int, startingAfter string) ([]billing.WebhookEvent, bool, error)
	FindWebhookEvent(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.WebhookEvent, error)
	FindActiveSubscriptionByEmail(ctx context.Context, projectID string, env billing.Environment, email string) (*billing.Subscription, error)
	ActiveSubscriptionsByEmail(ctx context.Context, projectID string, env billing.Environment) (map[string]billing.Subscription, error)

	AddUsage(ctx context.Context, counts []billing.UsageCount) error
	ListUsage(ctx context.Context, projectID string, env billing.Environment, fromDay, toDay string) ([]billing.UsageCount, error)

	// The create intents (see internal/intents).
	intents.Store

	// The setup page's sessions (see setuppage).
	setuppage.Sessions
}
