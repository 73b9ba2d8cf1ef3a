package store_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// TestActiveSubscriptionsByEmail checks that the bulk index answers every
// email exactly as the one-email lookup does.
func TestActiveSubscriptionsByEmail(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		r := rand.New(rand.NewSource(7))
		at := time.Now().Truncate(time.Second)
		statuses := []string{"active", "trialing", "past_due", "canceled", "incomplete", "unpaid"}
		var change billing.MirrorChange
		emails := map[string]bool{}
		for i := 0; i < 60; i++ {
			email := fmt.Sprintf("User%d@Example.com", i%25)
			emails[strings.ToLower(email)] = true
			cus := fmt.Sprintf("cus_%d", i%40)
			if i%3 == 0 {
				change.Customers = append(change.Customers, billing.Customer{
					ID: cus, ProjectID: p.ID, Environment: billing.EnvTest, Email: email, EventAt: at})
			}
			sub := billing.Subscription{
				ID: fmt.Sprintf("sub_%d", i), ProjectID: p.ID, Environment: billing.EnvTest, CustomerID: cus,
				Status: statuses[r.Intn(len(statuses))], PriceID: "price_1",
				CurrentPeriodEnd: at.Add(time.Duration(r.Intn(5)) * 24 * time.Hour), EventAt: at,
			}
			if i%2 == 0 {
				sub.Email = email
			}
			change.Subscriptions = append(change.Subscriptions, sub)
		}
		if err := db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, change); err != nil {
			t.Fatal(err)
		}
		index, err := db.ActiveSubscriptionsByEmail(ctx, p.ID, billing.EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		emails["nobody@example.com"] = true
		for email := range emails {
			want, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, email)
			got, ok := index[email]
			switch {
			case billing.ErrorCode(err) == billing.ENOTFOUND:
				if ok {
					t.Errorf("%s: index has %s, lookup has none", email, got.ID)
				}
			case err != nil:
				t.Fatal(err)
			case !ok || got.ID != want.ID || got.PlanName != want.PlanName || !got.CurrentPeriodEnd.Equal(want.CurrentPeriodEnd):
				t.Errorf("%s: index has %+v, lookup has %+v", email, got, want)
			}
		}
		if live, err := db.ActiveSubscriptionsByEmail(ctx, p.ID, billing.EnvLive); err != nil || len(live) != 0 {
			t.Errorf("live: got %v %v, want empty", live, err)
		}
	})
}
