package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// TestApplyChanges checks that a write reports exactly the objects it
// created, changed or deleted, with the previous status of subscriptions.
func TestApplyChanges(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		write := func(origin store.Origin, change billing.MirrorChange) store.Applied {
			t.Helper()
			res, err := db.Apply(ctx, store.Write{ProjectID: p.ID, Environment: billing.EnvTest, Origin: origin, Change: change})
			must(t, err)
			return res
		}
		sub := func(status string, at int) billing.Subscription {
			return billing.Subscription{ID: "sub_1", CustomerID: "cus_1", Status: status, PriceID: "price_1",
				CurrentPeriodEnd: t0.Add(30 * 24 * time.Hour), EventAt: t0.Add(time.Duration(at) * time.Second)}
		}
		check := func(step string, got store.Applied, want ...billing.ObjectChange) {
			t.Helper()
			if !slices.Equal(got.Changes, want) {
				t.Errorf("%s: got changes %+v, want %+v", step, got.Changes, want)
			}
		}
		created := billing.ObjectChange{Kind: billing.KindSubscription, ID: "sub_1", Op: billing.Created, Status: "trialing", CustomerID: "cus_1"}
		check("Created", write(store.FromEvent, billing.MirrorChange{Subscriptions: []billing.Subscription{sub("trialing", 1)}}), created)
		check("Older", write(store.FromEvent, billing.MirrorChange{Subscriptions: []billing.Subscription{sub("canceled", 0)}}))
		// The same state again, newer: written, but no change.
		res := write(store.FromStripe, billing.MirrorChange{Subscriptions: []billing.Subscription{sub("trialing", 2)}})
		check("Unchanged", res)
		if res.Written != 1 {
			t.Errorf("Unchanged: written %d, want 1", res.Written)
		}
		check("Updated", write(store.FromEvent, billing.MirrorChange{Subscriptions: []billing.Subscription{sub("active", 3)}}),
			billing.ObjectChange{Kind: billing.KindSubscription, ID: "sub_1", Op: billing.Updated, Status: "active",
				PreviousStatus: "trialing", CustomerID: "cus_1"})

		customer := billing.Customer{ID: "cus_1", Email: "a@x.com", EventAt: t0}
		check("CustomerCreated", write(store.FromService, billing.MirrorChange{Customers: []billing.Customer{customer}}),
			billing.ObjectChange{Kind: billing.KindCustomer, ID: "cus_1", Op: billing.Created, CustomerID: "cus_1"})
		customer.Email = "b@x.com"
		check("CustomerUpdated", write(store.FromService, billing.MirrorChange{Customers: []billing.Customer{customer}}),
			billing.ObjectChange{Kind: billing.KindCustomer, ID: "cus_1", Op: billing.Updated, CustomerID: "cus_1"})
		customer.Deleted = true
		check("CustomerDeleted", write(store.FromService, billing.MirrorChange{Customers: []billing.Customer{customer}}),
			billing.ObjectChange{Kind: billing.KindCustomer, ID: "cus_1", Op: billing.Deleted, CustomerID: "cus_1"})
		check("DeletedAgain", write(store.FromService, billing.MirrorChange{Customers: []billing.Customer{customer}}))

		// A checkout session gives its customer to its buyer: the customer
		// changes owner.
		check("SessionClaims", write(store.FromStripe, billing.MirrorChange{
			Customers: []billing.Customer{{ID: "cus_2", Email: "c@x.com", EventAt: t0}}}),
			billing.ObjectChange{Kind: billing.KindCustomer, ID: "cus_2", Op: billing.Created, CustomerID: "cus_2"})
		check("Session", write(store.FromStripe, billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{
			ID: "cs_1", UserID: "user_1", CustomerID: "cus_2", Status: "complete", EventAt: t0}}),
			billing.ObjectChange{Kind: billing.KindCheckoutSession, ID: "cs_1", Op: billing.Created, Status: "complete", CustomerID: "cus_2"},
			billing.ObjectChange{Kind: billing.KindCustomer, ID: "cus_2", Op: billing.Updated, CustomerID: "cus_2"})
		check("ProductCreated", write(store.FromEvent, billing.MirrorChange{Products: []billing.Product{{ID: "prod_1", Name: "Gold", EventAt: t0}}}),
			billing.ObjectChange{Kind: billing.KindProduct, ID: "prod_1", Op: billing.Created})
	})
}

// TestApplyInTx checks the hook that runs inside a write's transaction: it
// sees the write's rows and what changed, and its failure undoes all.
func TestApplyInTx(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		ev := event(p, "evt_hook", t0)
		change := billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: "sub_hook", Status: "active", EventAt: t0}}}
		errHook := errors.New("hook failed")
		var seen []billing.ObjectChange
		hook := func(fail bool) func(tx *store.Tx, changes []billing.ObjectChange) error {
			return func(tx *store.Tx, changes []billing.ObjectChange) error {
				seen = changes
				if tx.Event == nil || tx.Event.ID != "evt_hook" || tx.ProjectID != p.ID {
					t.Errorf("tx: got event %+v of %s", tx.Event, tx.ProjectID)
				}
				s, err := tx.FindSubscription("sub_hook")
				if err != nil || s.Status != "active" {
					t.Errorf("read in the transaction: got %+v, %v", s, err)
				}
				if fail {
					return errHook
				}
				return nil
			}
		}
		_, err := db.Apply(ctx, store.Write{ProjectID: p.ID, Environment: billing.EnvTest, Event: &ev, Change: change, InTx: hook(true)})
		if !errors.Is(err, errHook) {
			t.Fatalf("failing hook: got %v, want its error", err)
		}
		if _, err := db.FindSubscription(ctx, p.ID, billing.EnvTest, "sub_hook"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("after a failing hook: got %v, want nothing written", err)
		}
		if _, err := db.FindWebhookEvent(ctx, p.ID, billing.EnvTest, "evt_hook"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("ledger after a failing hook: got %v, want nothing written", err)
		}
		res, err := db.Apply(ctx, store.Write{ProjectID: p.ID, Environment: billing.EnvTest, Event: &ev, Change: change, InTx: hook(false)})
		must(t, err)
		if len(res.Changes) != 1 || !slices.Equal(seen, res.Changes) {
			t.Errorf("hook saw %+v, result %+v", seen, res.Changes)
		}
		seen = nil
		res, err = db.Apply(ctx, store.Write{ProjectID: p.ID, Environment: billing.EnvTest, Event: &ev, Change: change, InTx: hook(false)})
		must(t, err)
		if !res.Duplicate || seen != nil {
			t.Errorf("duplicate: got %+v, hook saw %+v; want a duplicate without the hook", res, seen)
		}
	})
}

// TestApplyChangesConcurrent writes new objects from many transactions at
// once: each object is reported created exactly once.
func TestApplyChangesConcurrent(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		const objects, writers = 20, 6
		var mu sync.Mutex
		created := map[string]int{}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range objects {
					res, err := db.Apply(ctx, store.Write{ProjectID: p.ID, Environment: billing.EnvTest, Origin: store.FromStripe,
						Change: billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: fmt.Sprintf("sub_%02d", i),
							Status: fmt.Sprintf("s%d", w), EventAt: t0}}}})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, ch := range res.Changes {
						if ch.Op == billing.Created {
							created[ch.ID]++
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for i := range objects {
			if id := fmt.Sprintf("sub_%02d", i); created[id] != 1 {
				t.Errorf("%s: reported created %d times, want once", id, created[id])
			}
		}
	})
}
