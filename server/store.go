package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/intents"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/setuppage"
	"github.com/stackfordevs/billing/store"
)

// Store is the storage the server needs: the mirror's, through which every
// change to mirrored objects goes, and the rest. Lookups that find nothing
// return ENOTFOUND; unique-key clashes return ECONFLICT; an unreachable
// database returns EUNAVAILABLE and a value it refuses EINVALID.
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

	// The create intents (see internal/intents).
	intents.Store

	// The setup page's sessions (see setuppage).
	setuppage.Sessions
}

// intentStore completes create intents through the mirror when the created
// object is a mirrored one (a customer), so that the change is announced and
// anything written with mirror changes is written with it; other records go
// to the store.
type intentStore struct {
	Store
	mirror *mirror.Mirror
}

// CompleteIntent implements intents.Store.
func (s intentStore) CompleteIntent(ctx context.Context, projectID string, env billing.Environment, key, objectID string, record any) error {
	if c, ok := record.(billing.Customer); ok {
		return s.mirror.SaveCustomer(ctx, c, func(tx *store.Tx) error { return tx.CompleteIntent(key, objectID) })
	}
	return s.Store.CompleteIntent(ctx, projectID, env, key, objectID, record)
}
