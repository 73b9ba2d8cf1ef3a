package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/mirror"
)

// Store is the storage the server needs: the mirror's, through which every
// change to mirrored objects goes, and the rest. Lookups that find nothing
// return ENOTFOUND; unique-key clashes return ECONFLICT.
type Store interface {
	mirror.Store

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

	ListCustomers(ctx context.Context, f billing.CustomerFilter) ([]billing.Customer, bool, error)

	CreateCheckoutSession(ctx context.Context, cs billing.CheckoutSession) error
	FindCheckoutSession(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.CheckoutSession, error)
	CreatePaymentIntent(ctx context.Context, pi billing.PaymentIntent) error

	ListWebhookEvents(ctx context.Context, projectID string, env billing.Environment, limit int, startingAfter string) ([]billing.WebhookEvent, bool, error)

	AddUsage(ctx context.Context, counts []billing.UsageCount) error
	ListUsage(ctx context.Context, projectID string, env billing.Environment, fromDay, toDay string) ([]billing.UsageCount, error)
}
