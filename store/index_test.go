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

// TestActiveSubscriptionIndex checks that the bulk index answers every
// email, owner and customer id exactly as the one-customer lookup does.
func TestActiveSubscriptionIndex(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		r := rand.New(rand.NewSource(7))
		at := time.Now().Truncate(time.Second)
		statuses := []string{"active", "trialing", "past_due", "canceled", "incomplete", "unpaid"}
		var change billing.MirrorChange
		whos := map[billing.Who]bool{{Email: "nobody@example.com"}: true, {UserID: "nobody"}: true, {CustomerID: "cus_none"}: true}
		for i := 0; i < 60; i++ {
			email := fmt.Sprintf("User%d@Example.com", i%25)
			whos[billing.Who{Email: strings.ToLower(email)}] = true
			cus := fmt.Sprintf("cus_%d", i%40)
			whos[billing.Who{CustomerID: cus}] = true
			if i%3 == 0 {
				owner := fmt.Sprintf("user_%d", i%7)
				whos[billing.Who{UserID: owner}] = true
				change.Customers = append(change.Customers, billing.Customer{
					ID: cus, ProjectID: p.ID, Environment: billing.EnvTest, Email: email, UserID: owner, EventAt: at})
			}
			sub := billing.Subscription{
				ID: fmt.Sprintf("sub_%d", i), ProjectID: p.ID, Environment: billing.EnvTest, CustomerID: cus,
				Status: statuses[r.Intn(len(statuses))], PriceID: "price_1",
				CurrentPeriodEnd: at.Add(time.Duration(r.Intn(5)) * 24 * time.Hour), EventAt: at,
			}
			if i%2 == 0 {
				sub.Email = email
			}
			if i%5 == 0 {
				sub.UserID = fmt.Sprintf("user_%d", i%9)
				whos[billing.Who{UserID: sub.UserID}] = true
			}
			change.Subscriptions = append(change.Subscriptions, sub)
		}
		if err := db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, change); err != nil {
			t.Fatal(err)
		}
		index, err := db.ActiveSubscriptionIndex(ctx, p.ID, billing.EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		for who := range whos {
			want, err := db.FindActiveSubscription(ctx, p.ID, billing.EnvTest, who)
			got, ok := index[who]
			switch {
			case billing.ErrorCode(err) == billing.ENOTFOUND:
				if ok {
					t.Errorf("%+v: index has %s, lookup has none", who, got.ID)
				}
			case err != nil:
				t.Fatal(err)
			case !ok || got.ID != want.ID || got.PlanName != want.PlanName || !got.CurrentPeriodEnd.Equal(want.CurrentPeriodEnd):
				t.Errorf("%+v: index has %+v, lookup has %+v", who, got, want)
			}
		}
		if live, err := db.ActiveSubscriptionIndex(ctx, p.ID, billing.EnvLive); err != nil || len(live) != 0 {
			t.Errorf("live: got %v %v, want empty", live, err)
		}
		if _, err := db.FindActiveSubscription(ctx, p.ID, billing.EnvTest, billing.Who{Email: "a@x.com", UserID: "u"}); billing.ErrorCode(err) != billing.EINVALID {
			t.Errorf("two ways at once: got %v, want EINVALID", err)
		}
	})
}
