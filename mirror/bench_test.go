package mirror_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// BenchmarkCurrentSubscription measures the access answer once the
// project's environment is indexed, for known and unknown customers alike:
// what every subscription-status request costs the mirror. It asserts no
// timing.
func BenchmarkCurrentSubscription(b *testing.B) {
	ctx := context.Background()
	h := newHarness(b, storetest.MustOpenDB(b, storetest.FakeSealer{}))
	const n = 1000
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(subs ...billing.Subscription) {
		_, err := h.db.Apply(ctx, store.Write{ProjectID: h.p.ID, Environment: billing.EnvTest, Origin: store.FromStripe,
			Change: billing.MirrorChange{Subscriptions: subs}})
		if err != nil {
			b.Fatal(err)
		}
	}
	sub := func(id, email string) billing.Subscription {
		return billing.Subscription{ID: id, Email: email, Status: "active", CurrentPeriodEnd: at.Add(30 * 24 * time.Hour), EventAt: at}
	}
	var subs []billing.Subscription
	for i := range n {
		subs = append(subs, sub(fmt.Sprintf("sub_%d", i), fmt.Sprintf("user%d@example.com", i)))
	}
	write(subs...)
	// Miss until the index is built: a subscription written behind the
	// mirror's back is then not seen.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		probe := fmt.Sprintf("probe%d@example.com", i)
		write(sub(fmt.Sprintf("sub_probe%d", i), probe))
		if i > 20 && h.current(b, probe) == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the project was never indexed")
		}
	}
	emails := make([]string, 2*n) // half of them unknown
	for i := range emails {
		emails[i] = fmt.Sprintf("user%d@example.com", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := h.m.CurrentSubscription(ctx, h.p.ID, billing.EnvTest, billing.Who{Email: emails[i%len(emails)]}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkIngest measures a webhook event through Ingest on SQLite:
// signature, parsing, the ledger and the mirror's write with its change
// report. It asserts no timing.
func BenchmarkIngest(b *testing.B) {
	h := newHarness(b, storetest.MustOpenDB(b, storetest.FakeSealer{}))
	h.stripe.products["prod_test_default"] = billing.Product{ID: "prod_test_default", Name: "Default", Active: true}
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		payload := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{EventID: fmt.Sprintf("evt_bench%d", i),
			SubscriptionID: fmt.Sprintf("sub_bench%d", i), CustomerID: "cus_bench", Created: at})
		if _, err := h.deliver(b, payload); err != nil {
			b.Fatal(err)
		}
	}
}
