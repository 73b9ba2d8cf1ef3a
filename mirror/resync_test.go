package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// recordingStore is the real store that keeps every write, and fails them
// while err is set.
type recordingStore struct {
	*store.DB
	writes []store.Write
	err    error
}

func (r *recordingStore) Apply(ctx context.Context, w store.Write) (store.Applied, error) {
	if r.err != nil {
		return store.Applied{}, r.err
	}
	r.writes = append(r.writes, w)
	return r.DB.Apply(ctx, w)
}

func size(c billing.MirrorChange) int {
	return len(c.Customers) + len(c.Products) + len(c.Prices) + len(c.Subscriptions)
}

// account fills a Stripe account with n objects of each kind, written for
// another project and environment (which Resync must override).
func account(f *fakeStripe, n int, periodEnd time.Time) {
	for i := range n {
		f.products[fmt.Sprintf("prod_%03d", i)] = billing.Product{ID: fmt.Sprintf("prod_%03d", i), Name: fmt.Sprintf("Plan %d", i),
			Active: true, ProjectID: "prj_other", Environment: billing.EnvLive}
		f.prices[fmt.Sprintf("price_%03d", i)] = billing.Price{ID: fmt.Sprintf("price_%03d", i), ProductID: fmt.Sprintf("prod_%03d", i),
			Active: true, ProjectID: "prj_other", Environment: billing.EnvLive}
		f.customers[fmt.Sprintf("cus_%03d", i)] = billing.Customer{ID: fmt.Sprintf("cus_%03d", i), Email: fmt.Sprintf("c%d@example.com", i),
			ProjectID: "prj_other", Environment: billing.EnvLive}
		f.subscriptions[fmt.Sprintf("sub_%03d", i)] = billing.Subscription{ID: fmt.Sprintf("sub_%03d", i), CustomerID: fmt.Sprintf("cus_%03d", i),
			PriceID: fmt.Sprintf("price_%03d", i), ProductID: fmt.Sprintf("prod_%03d", i), Status: "active",
			CurrentPeriodEnd: periodEnd, ProjectID: "prj_other", Environment: billing.EnvLive}
	}
}

func TestResync(t *testing.T) {
	ctx := context.Background()
	periodEnd := time.Now().Add(720 * time.Hour).Truncate(time.Second)
	newResync := func(t *testing.T) (*harness, *recordingStore) {
		db := storetest.MustOpenDB(t, storetest.FakeSealer{})
		rec := &recordingStore{DB: db}
		h := newHarness(t, db)
		return h.instance(t, func(c *mirror.Config) { c.Store = rec }), rec
	}

	t.Run("CountsAndBatches", func(t *testing.T) {
		h, rec := newResync(t)
		account(h.stripe, 130, periodEnd)
		var progress []billing.SyncCounts
		n, err := h.m.Resync(ctx, h.p.ID, billing.EnvTest, func(c billing.SyncCounts) { progress = append(progress, c) })
		if err != nil {
			t.Fatal(err)
		}
		want := billing.SyncCounts{Customers: 130, Products: 130, Prices: 130, Subscriptions: 130}
		if n != want {
			t.Errorf("counts: got %+v, want %+v", n, want)
		}
		// Plan names and emails resolve: products, prices and customers
		// are read before subscriptions.
		if want := []string{"list products", "list prices", "list customers", "list subscriptions"}; !slices.Equal(h.stripe.calls, want) {
			t.Errorf("Stripe calls: got %v, want %v", h.stripe.calls, want)
		}
		total := 0
		for i, w := range rec.writes {
			if size(w.Change) > 100 || w.Origin != store.FromStripe || w.ProjectID != h.p.ID || w.Environment != billing.EnvTest {
				t.Errorf("write %d: got %d objects, %v, %s/%s; want at most 100 read from Stripe for the project", i,
					size(w.Change), w.Origin, w.ProjectID, w.Environment)
			}
			total += size(w.Change)
			for _, s := range w.Change.Subscriptions {
				if s.ProjectID != h.p.ID || s.Environment != billing.EnvTest {
					t.Fatalf("subscription %s: got scope %s/%s, want the project's test", s.ID, s.ProjectID, s.Environment)
				}
			}
		}
		if total != 4*130 || len(rec.writes) != 6 {
			t.Errorf("got %d objects in %d writes, want 520 in 6", total, len(rec.writes))
		}
		// Progress after each batch, with the running counts.
		if len(progress) != 6 || progress[0] != (billing.SyncCounts{Products: 100}) || progress[5] != want {
			t.Errorf("progress: got %+v", progress)
		}
		// Served from the mirror, with plan names, and no product read.
		if s := h.current(t, "C129@example.com"); s == nil || s.ID != "sub_129" || s.PlanName != "Plan 129" {
			t.Errorf("by email: got %+v, want sub_129 on Plan 129", s)
		}
		if n := h.stripe.count("get product"); n != 0 {
			t.Errorf("product reads: got %d, want none", n)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		h, rec := newResync(t)
		n, err := h.m.Resync(ctx, h.p.ID, billing.EnvTest, nil)
		if err != nil || n != (billing.SyncCounts{}) || len(rec.writes) != 0 {
			t.Errorf("got %+v, %v and %d writes; want nothing", n, err, len(rec.writes))
		}
	})

	t.Run("ErrStripe", func(t *testing.T) {
		h, _ := newResync(t)
		account(h.stripe, 150, periodEnd)
		h.stripe.failListAfter = 120
		n, err := h.m.Resync(ctx, h.p.ID, billing.EnvTest, nil)
		if !errors.Is(err, errStripe) {
			t.Fatalf("got %v, want the Stripe error", err)
		}
		if n.Subscriptions != 120 {
			t.Errorf("subscriptions read: got %d, want 120", n.Subscriptions)
		}
		// What was read before the failure is kept.
		if _, err := h.db.FindSubscription(ctx, h.p.ID, billing.EnvTest, "sub_119"); err != nil {
			t.Errorf("sub_119, read before the failure: %v", err)
		}
	})

	t.Run("ErrStore", func(t *testing.T) {
		h, rec := newResync(t)
		account(h.stripe, 3, periodEnd)
		rec.err = errors.New("database is down")
		if _, err := h.m.Resync(ctx, h.p.ID, billing.EnvTest, nil); !errors.Is(err, rec.err) {
			t.Errorf("got %v, want %v", err, rec.err)
		}
	})

	t.Run("ErrNotConfigured", func(t *testing.T) {
		h, _ := newResync(t)
		if _, err := h.m.Resync(ctx, h.p.ID, billing.EnvLive, nil); billing.ErrorCode(err) != billing.EFORBIDDEN {
			t.Errorf("got %v, want EFORBIDDEN", err)
		}
	})
}

// TestResyncOrderingRule runs a resync against the real store: what was
// read from Stripe fills the mirror, but never overwrites state that a
// newer webhook event wrote; the change is announced and answers see it.
func TestResyncOrderingRule(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		readAt := time.Now().Add(-time.Minute).Truncate(time.Second)
		h.stripe.now = func() time.Time { return readAt }
		account(h.stripe, 250, readAt.Add(720*time.Hour))

		// A webhook event newer than the read has canceled sub_001.
		_, err := db.ApplyEvent(ctx, billing.WebhookEvent{ProjectID: h.p.ID, Environment: billing.EnvTest, ID: "evt_newer",
			Type: "customer.subscription.deleted", Created: readAt.Add(10 * time.Second)},
			billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: "sub_001", CustomerID: "cus_001",
				PriceID: "price_001", Status: "canceled", EventAt: readAt.Add(10 * time.Second)}}})
		if err != nil {
			t.Fatal(err)
		}
		// An event older than the read has sub_002 past due.
		_, err = db.ApplyEvent(ctx, billing.WebhookEvent{ProjectID: h.p.ID, Environment: billing.EnvTest, ID: "evt_older",
			Type: "customer.subscription.updated", Created: readAt.Add(-time.Hour)},
			billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: "sub_002", Status: "past_due",
				EventAt: readAt.Add(-time.Hour)}}})
		if err != nil {
			t.Fatal(err)
		}
		// An answer cached before the resync.
		if s := h.current(t, "c249@example.com"); s != nil {
			t.Fatalf("before: got %+v, want none", s)
		}

		n, err := h.m.Resync(ctx, h.p.ID, billing.EnvTest, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.Subscriptions != 250 || n.Customers != 250 {
			t.Errorf("counts: got %+v, want 250 of each", n)
		}
		for i := range 250 {
			id := fmt.Sprintf("sub_%03d", i)
			s, err := db.FindSubscription(ctx, h.p.ID, billing.EnvTest, id)
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
		if keys := h.keys.take(); len(keys) == 0 || keys[0] != bus.MirrorKey(h.p.ID, billing.EnvTest) {
			t.Errorf("published %v, want the mirror's key", keys)
		}
		if s := h.current(t, "C249@example.com"); s == nil || s.ID != "sub_249" {
			t.Errorf("by email after the resync: got %+v, want sub_249", s)
		}
	})
}
