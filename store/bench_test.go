package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// eachBackend runs fn as a sub-benchmark on a fresh database of each backend.
func eachBackend(b *testing.B, fn func(b *testing.B, db *store.DB)) {
	for _, backend := range storetest.Backends() {
		b.Run(backend, func(b *testing.B) {
			fn(b, storetest.MustOpenDSN(b, storetest.NewDSN(b, backend), sealer))
		})
	}
}

// seedSubscriptions stores n customers, each with a subscription, half of
// the emails known only from the customer.
func seedSubscriptions(b *testing.B, db *store.DB, p *billing.Project, n int) {
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{
		Products: []billing.Product{{ID: "prod_1", Name: "Gold", EventAt: t0}},
		Prices:   []billing.Price{{ID: "price_1", ProductID: "prod_1", EventAt: t0}},
	}))
	for start := 0; start < n; start += 500 {
		var change billing.MirrorChange
		for i := start; i < start+500 && i < n; i++ {
			email := fmt.Sprintf("user%d@example.com", i)
			change.Customers = append(change.Customers, billing.Customer{ID: fmt.Sprintf("cus_%d", i), Email: email, EventAt: t0})
			sub := billing.Subscription{ID: fmt.Sprintf("sub_%d", i), CustomerID: fmt.Sprintf("cus_%d", i),
				Status: "active", PriceID: "price_1", CurrentPeriodEnd: at(1000 + i), EventAt: t0}
			if i%2 == 0 {
				sub.Email = email
			}
			change.Subscriptions = append(change.Subscriptions, sub)
		}
		must(db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, change))
	}
}

func BenchmarkFindActiveSubscriptionByEmail(b *testing.B) {
	eachBackend(b, func(b *testing.B, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(b, db)
		const n = 10_000
		seedSubscriptions(b, db, p, n)
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1) % n
				s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, fmt.Sprintf("User%d@example.com", i))
				if err != nil || s.PlanName != "Gold" {
					b.Fatalf("lookup %d: %v %+v", i, err, s)
				}
			}
		})
	})
}

func BenchmarkApplyEvent(b *testing.B) {
	eachBackend(b, func(b *testing.B, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(b, db)
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1))
				ev := event(p, fmt.Sprintf("evt_%d", i), at(i))
				cus := fmt.Sprintf("cus_%d", i%100)
				_, err := db.ApplyEvent(ctx, ev, billing.MirrorChange{
					Customers: []billing.Customer{{ID: cus, Email: cus + "@example.com", EventAt: at(i)}},
					Subscriptions: []billing.Subscription{{ID: fmt.Sprintf("sub_%d", i%100), CustomerID: cus,
						Status: "active", CurrentPeriodEnd: at(i + 1000), EventAt: at(i)}},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
