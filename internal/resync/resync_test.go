package resync_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/resync"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// source is an in-memory Stripe account.
type source struct {
	customers     []billing.Customer
	products      []billing.Product
	prices        []billing.Price
	subscriptions []billing.Subscription
	// failAfter, when set, makes the subscription walk fail after that
	// many subscriptions.
	failAfter int
	calls     []string
}

var errStripe = billing.Errorf(billing.ESTRIPE, "Stripe failed.")

func each[T any](objs []T, fn func(T) error) error {
	for _, o := range objs {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (s *source) ListCustomers(ctx context.Context, fn func(billing.Customer) error) error {
	s.calls = append(s.calls, "customers")
	return each(s.customers, fn)
}

func (s *source) ListProducts(ctx context.Context, fn func(billing.Product) error) error {
	s.calls = append(s.calls, "products")
	return each(s.products, fn)
}

func (s *source) ListPrices(ctx context.Context, fn func(billing.Price) error) error {
	s.calls = append(s.calls, "prices")
	return each(s.prices, fn)
}

func (s *source) ListSubscriptions(ctx context.Context, fn func(billing.Subscription) error) error {
	s.calls = append(s.calls, "subscriptions")
	for i, sub := range s.subscriptions {
		if s.failAfter > 0 && i == s.failAfter {
			return errStripe
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

// recorder is a Store that keeps every batch.
type recorder struct {
	batches []billing.MirrorChange
	err     error
}

func (r *recorder) UpsertFromStripe(ctx context.Context, projectID string, env billing.Environment, change billing.MirrorChange) error {
	if r.err != nil {
		return r.err
	}
	r.batches = append(r.batches, change)
	return nil
}

func (r *recorder) size(i int) int {
	c := r.batches[i]
	return len(c.Customers) + len(c.Products) + len(c.Prices) + len(c.Subscriptions)
}

// account returns a source with n of each kind, read at readAt, written
// for another project and environment (which Run must override).
func account(n int, readAt time.Time) *source {
	s := &source{}
	for i := range n {
		s.products = append(s.products, billing.Product{ID: fmt.Sprintf("prod_%03d", i), Name: fmt.Sprintf("Plan %d", i),
			Active: true, ProjectID: "prj_other", Environment: billing.EnvLive, EventAt: readAt})
		s.prices = append(s.prices, billing.Price{ID: fmt.Sprintf("price_%03d", i), ProductID: fmt.Sprintf("prod_%03d", i),
			Active: true, ProjectID: "prj_other", Environment: billing.EnvLive, EventAt: readAt})
		s.customers = append(s.customers, billing.Customer{ID: fmt.Sprintf("cus_%03d", i), Email: fmt.Sprintf("c%d@example.com", i),
			ProjectID: "prj_other", Environment: billing.EnvLive, EventAt: readAt, Created: readAt})
		s.subscriptions = append(s.subscriptions, billing.Subscription{ID: fmt.Sprintf("sub_%03d", i), CustomerID: fmt.Sprintf("cus_%03d", i),
			PriceID: fmt.Sprintf("price_%03d", i), ProductID: fmt.Sprintf("prod_%03d", i), Status: "active",
			CurrentPeriodEnd: readAt.Add(720 * time.Hour), ProjectID: "prj_other", Environment: billing.EnvLive, EventAt: readAt})
	}
	return s
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	readAt := time.Now().Truncate(time.Second)

	t.Run("CountsAndBatches", func(t *testing.T) {
		src, st := account(130, readAt), &recorder{}
		n, err := resync.Run(ctx, src, st, "prj_1", billing.EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		want := resync.Counts{Customers: 130, Products: 130, Prices: 130, Subscriptions: 130}
		if n != want {
			t.Errorf("counts: got %+v, want %+v", n, want)
		}
		// Plan names and emails resolve: products, prices and customers
		// are read before subscriptions.
		if want := []string{"products", "prices", "customers", "subscriptions"}; !slices.Equal(src.calls, want) {
			t.Errorf("order: got %v, want %v", src.calls, want)
		}
		total := 0
		for i := range st.batches {
			if st.size(i) > 100 {
				t.Errorf("batch %d: got %d objects, want at most 100", i, st.size(i))
			}
			total += st.size(i)
		}
		if total != 4*130 || len(st.batches) != 6 {
			t.Errorf("got %d objects in %d batches, want 520 in 6", total, len(st.batches))
		}
		for _, b := range st.batches {
			for _, s := range b.Subscriptions {
				if s.ProjectID != "prj_1" || s.Environment != billing.EnvTest {
					t.Fatalf("subscription %s: got scope %s/%s, want prj_1/test", s.ID, s.ProjectID, s.Environment)
				}
			}
			for _, c := range b.Customers {
				if c.ProjectID != "prj_1" || c.Environment != billing.EnvTest {
					t.Fatalf("customer %s: got scope %s/%s, want prj_1/test", c.ID, c.ProjectID, c.Environment)
				}
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		st := &recorder{}
		n, err := resync.Run(ctx, &source{}, st, "prj_1", billing.EnvTest)
		if err != nil || n != (resync.Counts{}) || len(st.batches) != 0 {
			t.Errorf("got %+v, %v and %d batches; want nothing", n, err, len(st.batches))
		}
	})

	t.Run("ErrSource", func(t *testing.T) {
		src, st := account(150, readAt), &recorder{}
		src.failAfter = 120
		n, err := resync.Run(ctx, src, st, "prj_1", billing.EnvTest)
		if !errors.Is(err, errStripe) {
			t.Fatalf("got %v, want the Stripe error", err)
		}
		if n.Subscriptions != 120 {
			t.Errorf("subscriptions read: got %d, want 120", n.Subscriptions)
		}
	})

	t.Run("ErrStore", func(t *testing.T) {
		wantErr := errors.New("database is down")
		_, err := resync.Run(ctx, account(3, readAt), &recorder{err: wantErr}, "prj_1", billing.EnvTest)
		if !errors.Is(err, wantErr) {
			t.Errorf("got %v, want %v", err, wantErr)
		}
	})
}

// TestRunOrderingRule runs a sync against the real store: what was read
// from Stripe fills the mirror, but never overwrites state that a newer
// webhook event wrote.
func TestRunOrderingRule(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		readAt := time.Now().Add(-time.Minute).Truncate(time.Second)

		// A webhook event newer than the read has canceled sub_001.
		_, err := db.ApplyEvent(ctx, billing.WebhookEvent{ProjectID: p.ID, Environment: billing.EnvTest, ID: "evt_newer",
			Type: "customer.subscription.deleted", Created: readAt.Add(10 * time.Second)},
			billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: "sub_001", CustomerID: "cus_001",
				PriceID: "price_001", Status: "canceled", EventAt: readAt.Add(10 * time.Second)}}})
		if err != nil {
			t.Fatal(err)
		}
		// An event older than the read has sub_002 past due.
		_, err = db.ApplyEvent(ctx, billing.WebhookEvent{ProjectID: p.ID, Environment: billing.EnvTest, ID: "evt_older",
			Type: "customer.subscription.updated", Created: readAt.Add(-time.Hour)},
			billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: "sub_002", Status: "past_due",
				EventAt: readAt.Add(-time.Hour)}}})
		if err != nil {
			t.Fatal(err)
		}

		n, err := resync.Run(ctx, account(250, readAt), db, p.ID, billing.EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		if n.Subscriptions != 250 || n.Customers != 250 {
			t.Errorf("counts: got %+v, want 250 of each", n)
		}
		for i := range 250 {
			id := fmt.Sprintf("sub_%03d", i)
			s, err := db.FindSubscription(ctx, p.ID, billing.EnvTest, id)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			want := "active"
			if id == "sub_001" {
				want = "canceled"
			}
			if s.Status != want {
				t.Errorf("%s: got status %q, want %q", id, s.Status, want)
			}
			if id != "sub_001" && s.PlanName != fmt.Sprintf("Plan %d", i) {
				t.Errorf("%s: got plan %q, want %q", id, s.PlanName, fmt.Sprintf("Plan %d", i))
			}
		}
		got, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, "C249@example.com")
		if err != nil || got.ID != "sub_249" {
			t.Errorf("by email: got %+v, %v; want sub_249", got, err)
		}
		if _, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvLive, "c249@example.com"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("live environment: got %v, want not found", err)
		}
	})
}
