package mirror

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
)

// resyncBatch is how many objects a resync writes in one transaction.
const resyncBatch = 100

// Resync reads every product, price, customer and subscription (and later
// other mirrored kinds) of the project's Stripe account for env and writes
// them through the mirror, calling progress after each written batch with
// the running counts.
//
// Products and prices go first so that plan names resolve, customers before
// subscriptions so that emails do. What was read is written under
// store.FromStripe: it fills the mirror and replaces older state, never
// state a newer webhook event wrote. Each batch is its own transaction and
// is announced once committed, so a resync that fails half way keeps (and
// announces) what it read; it returns the counts so far with the error.
// progress may be nil.
func (m *Mirror) Resync(ctx context.Context, projectID string, env billing.Environment, progress func(billing.SyncCounts)) (billing.SyncCounts, error) {
	var n billing.SyncCounts
	acct, err := m.accounts.Account(ctx, projectID, env)
	if err != nil {
		return n, err
	}
	var batch billing.MirrorChange
	size := 0
	flush := func() error {
		if size == 0 {
			return nil
		}
		_, err := m.write(ctx, store.Write{ProjectID: projectID, Environment: env, Origin: store.FromStripe, Change: batch})
		batch, size = billing.MirrorChange{}, 0
		if err == nil && progress != nil {
			progress(n)
		}
		return err
	}
	add := func() error {
		size++
		if size >= resyncBatch {
			return flush()
		}
		return nil
	}
	st := acct.Stripe
	err = st.ListProducts(ctx, func(p billing.Product) error {
		p.ProjectID, p.Environment = projectID, env
		batch.Products = append(batch.Products, p)
		n.Products++
		return add()
	})
	if err == nil {
		err = st.ListPrices(ctx, func(p billing.Price) error {
			p.ProjectID, p.Environment = projectID, env
			batch.Prices = append(batch.Prices, p)
			n.Prices++
			return add()
		})
	}
	if err == nil {
		err = st.ListCustomers(ctx, func(c billing.Customer) error {
			c.ProjectID, c.Environment = projectID, env
			batch.Customers = append(batch.Customers, c)
			n.Customers++
			return add()
		})
	}
	if err == nil {
		err = st.ListSubscriptions(ctx, func(s billing.Subscription) error {
			s.ProjectID, s.Environment = projectID, env
			batch.Subscriptions = append(batch.Subscriptions, s)
			n.Subscriptions++
			return add()
		})
	}
	if err != nil {
		// Keep what was read before the failure.
		if ferr := flush(); ferr != nil {
			m.logger.WarnContext(ctx, "resync: last batch not written", "project_id", projectID, "error", ferr.Error())
		}
		return n, err
	}
	return n, flush()
}
