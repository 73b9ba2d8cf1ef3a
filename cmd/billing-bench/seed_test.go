package main

import (
	"context"
	"strings"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// TestSeed writes projects, subscriptions and ledger events the way the
// scale scenarios do, on every backend, and reads them back through the
// store: the rows must be what the service would have written.
func TestSeed(t *testing.T) {
	for _, backend := range storetest.Backends() {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			dsn := storetest.NewDSN(t, backend)
			st := storetest.MustOpenDSN(t, dsn, storetest.FakeSealer{})
			db := &database{Kind: backend, URL: dsn}
			if backend == storetest.SQLite {
				db.path = strings.TrimPrefix(dsn, "sqlite:")
			}
			w, err := openBulk(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer w.close()

			projects, err := createProjects(ctx, st, 12)
			if err != nil {
				t.Fatal(err)
			}
			before, err := w.tableBytes(ctx, "customers", "subscriptions")
			if err != nil {
				t.Fatal(err)
			}
			if err := seedSubscriptions(ctx, st, w, projects, 30); err != nil {
				t.Fatal(err)
			}
			after, err := w.tableBytes(ctx, "customers", "subscriptions")
			if err != nil {
				t.Fatal(err)
			}
			if after <= before {
				t.Errorf("tables took %d bytes before seeding and %d after", before, after)
			}
			if err := w.analyze(ctx); err != nil {
				t.Fatal(err)
			}
			last := projects[len(projects)-1]
			for _, i := range []int{0, 1, 29} { // email on the subscription, through the customer
				s, err := st.FindActiveSubscriptionByEmail(ctx, last.ProjectID, billing.EnvTest, seedEmail(i))
				if err != nil || s.PlanName != planName || s.Status != "active" {
					t.Errorf("subscription of %s: got %+v, %v; want an active %q one", seedEmail(i), s, err, planName)
				}
			}
			if _, err := st.FindActiveSubscriptionByEmail(ctx, last.ProjectID, billing.EnvTest, seedEmail(30)); billing.ErrorCode(err) != billing.ENOTFOUND {
				t.Errorf("unseeded email: got %v, want not found", err)
			}
			if got, err := st.FindStripeSettings(ctx, last.ProjectID, billing.EnvTest); err != nil || got.WebhookSecret != webhookSecret {
				t.Errorf("Stripe settings: got %+v, %v", got, err)
			}

			if err := seedLedger(ctx, w, last.ProjectID, 40); err != nil {
				t.Fatal(err)
			}
			evs, more, err := st.ListWebhookEvents(ctx, last.ProjectID, billing.EnvTest, 100, "")
			if err != nil || len(evs) != 40 || more {
				t.Fatalf("ledger: got %d events (more %v), %v; want 40", len(evs), more, err)
			}
			ev, err := st.FindWebhookEvent(ctx, last.ProjectID, billing.EnvTest, evs[0].ID)
			if err != nil || !strings.Contains(string(ev.Payload), `"id":"`+ev.ID+`"`) || ev.Status != billing.EventApplied {
				t.Errorf("seeded event: got %+v, %v", ev, err)
			}
			// None has expired: the service's pruner keeps them all.
			res, err := st.PruneExpired(ctx, 30*24*time.Hour, store.PruneOptions{})
			if err != nil || res.Total() != 0 {
				t.Errorf("pruning the seeded ledger: deleted %d, %v; want 0", res.Total(), err)
			}
		})
	}
}
