// Package resync backfills a project's mirror from Stripe, for a project
// that connected its webhooks late or missed events.
package resync

import (
	"context"

	billing "github.com/stackfordevs/billing"
)

// Source lists every object of a kind from Stripe, page by page.
type Source interface {
	ListCustomers(ctx context.Context, fn func(billing.Customer) error) error
	ListProducts(ctx context.Context, fn func(billing.Product) error) error
	ListPrices(ctx context.Context, fn func(billing.Price) error) error
	ListSubscriptions(ctx context.Context, fn func(billing.Subscription) error) error
}

// Store receives what was read, under the mirror's ordering rule.
type Store interface {
	UpsertFromStripe(ctx context.Context, projectID string, env billing.Environment, change billing.MirrorChange) error
}

// Counts says how many objects of each kind were read.
type Counts struct {
	Customers     int `json:"customers"`
	Products      int `json:"products"`
	Prices        int `json:"prices"`
	Subscriptions int `json:"subscriptions"`
}

// batchSize is how many objects go to the store in one transaction.
const batchSize = 100

// Run reads every customer, product, price and subscription of the project's
// Stripe account for env and upserts them. Products and prices go first so
// that plan names resolve; customers before subscriptions so emails do.
func Run(ctx context.Context, src Source, st Store, projectID string, env billing.Environment) (Counts, error) {
	return RunWithProgress(ctx, src, st, projectID, env, nil)
}

// RunWithProgress is Run that calls progress, when not nil, with the counts
// so far after each batch is stored.
func RunWithProgress(ctx context.Context, src Source, st Store, projectID string, env billing.Environment, progress func(Counts)) (Counts, error) {
	var n Counts
	var batch billing.MirrorChange
	size := 0
	flush := func() error {
		if size == 0 {
			return nil
		}
		err := st.UpsertFromStripe(ctx, projectID, env, batch)
		batch, size = billing.MirrorChange{}, 0
		if err == nil && progress != nil {
			progress(n)
		}
		return err
	}
	add := func() error {
		size++
		if size >= batchSize {
			return flush()
		}
		return nil
	}
	err := src.ListProducts(ctx, func(p billing.Product) error {
		p.ProjectID, p.Environment = projectID, env
		batch.Products = append(batch.Products, p)
		n.Products++
		return add()
	})
	if err == nil {
		err = src.ListPrices(ctx, func(p billing.Price) error {
			p.ProjectID, p.Environment = projectID, env
			batch.Prices = append(batch.Prices, p)
			n.Prices++
			return add()
		})
	}
	if err == nil {
		err = src.ListCustomers(ctx, func(c billing.Customer) error {
			c.ProjectID, c.Environment = projectID, env
			batch.Customers = append(batch.Customers, c)
			n.Customers++
			return add()
		})
	}
	if err == nil {
		err = src.ListSubscriptions(ctx, func(s billing.Subscription) error {
			s.ProjectID, s.Environment = projectID, env
			batch.Subscriptions = append(batch.Subscriptions, s)
			n.Subscriptions++
			return add()
		})
	}
	if err != nil {
		return n, err
	}
	return n, flush()
}
