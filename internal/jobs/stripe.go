package jobs

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/resync"
	"github.com/stackfordevs/billing/stripeadapter"
)

// ResyncStore is what StripeResyncer reads keys from and writes to.
type ResyncStore interface {
	resync.Store
	FindStripeSettings(ctx context.Context, projectID string, env billing.Environment) (*billing.StripeSettings, error)
}

// StripeResyncer is a Resyncer that reads the project's Stripe account with
// its stored key and writes through internal/resync.
type StripeResyncer struct {
	Store  ResyncStore
	Stripe *stripeadapter.Adapter
}

// Resync implements Resyncer. A project without Stripe keys for env is
// EFORBIDDEN.
func (r *StripeResyncer) Resync(ctx context.Context, projectID string, env billing.Environment, progress func(billing.SyncCounts)) (billing.SyncCounts, error) {
	st, err := r.Store.FindStripeSettings(ctx, projectID, env)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return billing.SyncCounts{}, billing.Errorf(billing.EFORBIDDEN, "Stripe is not configured for %s.", env)
	} else if err != nil {
		return billing.SyncCounts{}, err
	}
	client := r.Stripe.Client(projectID, env, st.SecretKey)
	n, err := resync.RunWithProgress(ctx, client, r.Store, projectID, env, func(c resync.Counts) {
		if progress != nil {
			progress(billing.SyncCounts(c))
		}
	})
	return billing.SyncCounts(n), err
}
