package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// withSubscriptionCacheTTL keeps subscription answers cached for d.
func withSubscriptionCacheTTL(d time.Duration) envOption {
	return func(c *serverConfig) { c.SubscriptionCacheTTL = d }
}

// customerEvent is a customer.created event for a customer id and email.
func customerEvent(t testing.TB, id, email string) []byte {
	return stripetest.Event(t, "customer.created", map[string]any{
		"id": "evt_" + id, "data.object.id": id, "data.object.email": email, "data.object.metadata": map[string]any{}})
}

func TestGetCustomerSubscription(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		ctx := context.Background()
		p := e.newProject(t, "")
		now := time.Now().Truncate(time.Second)
		day := 24 * time.Hour
		p.mustDeliver(t, customerEvent(t, "cus_many", "Many@Example.com"), "applied")
		for _, s := range []struct {
			id, status string
			end        time.Duration
		}{
			{"sub_a_active", "active", 10 * day},
			{"sub_b_trialing", "trialing", 40 * day},
			{"sub_c_past_due", "past_due", 20 * day},
			{"sub_d_canceled", "canceled", 100 * day},
			{"sub_e_incomplete", "incomplete", 200 * day},
			{"sub_f_unpaid", "unpaid", 300 * day},
			{"sub_g_paused", "paused", 400 * day},
		} {
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: s.id, CustomerID: "cus_many", Status: s.status, Created: now.Add(-time.Hour),
				CurrentPeriodEnd: now.Add(s.end), PriceID: "price_many", ProductID: "prod_many"}), "applied")
		}
		p.mustDeliver(t, stripetest.Event(t, "product.updated", map[string]any{
			"id": "evt_prod_many", "data.object.id": "prod_many", "data.object.name": "Many Plan"}), "applied")
		stripeCalls := fs.count()

		t.Run("SeedShape", func(t *testing.T) {
			status, b := p.subscriptionStatus(t, "many@example.com")
			if status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", status, b)
			}
			// The trialing subscription ends last; a trial shows its end.
			sub := e.subscription(t, p.ProjectID, "sub_b_trialing")
			want := seedJSON(p.TenantID, "sub_b_trialing", "price_many", "trialing", now.Add(40*day).Unix(), false, "Many Plan")
			if sub.TrialEnd != nil {
				t.Fatalf("fixture has a trial end: %v", sub.TrialEnd)
			}
			sameJSON(t, b, want)
		})
		t.Run("CaseInsensitive", func(t *testing.T) {
			for _, email := range []string{"MANY@EXAMPLE.COM", "many@example.com", "Many@Example.com"} {
				if got := p.currentSubscription(t, email); got == nil || got.Id != "sub_b_trialing" {
					t.Errorf("%s: got %+v, want sub_b_trialing", email, got)
				}
			}
		})
		t.Run("None", func(t *testing.T) {
			status, b := p.subscriptionStatus(t, "nobody@example.com")
			if status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", status, b)
			}
			sameJSON(t, b, `{"subscription":null}`)
		})
		t.Run("OnlyEndedOrIncomplete", func(t *testing.T) {
			p.mustDeliver(t, customerEvent(t, "cus_ended", "ended@example.com"), "applied")
			for _, st := range []string{"canceled", "incomplete", "incomplete_expired", "unpaid", "paused"} {
				p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					SubscriptionID: "sub_ended_" + st, CustomerID: "cus_ended", Status: st, ProductID: "prod_many"}), "applied")
			}
			if got := p.currentSubscription(t, "ended@example.com"); got != nil {
				t.Errorf("got %+v, want none", got)
			}
		})
		t.Run("LatestPeriodEndWins", func(t *testing.T) {
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_a_active", CustomerID: "cus_many", Status: "active", Created: now.Add(-time.Minute),
				CurrentPeriodEnd: now.Add(50 * day), PriceID: "price_many", ProductID: "prod_many"}), "applied")
			if got := p.currentSubscription(t, "many@example.com"); got == nil || got.Id != "sub_a_active" ||
				!got.CurrentPeriodEnd.Equal(now.Add(50*day)) {
				t.Errorf("got %+v, want sub_a_active ending %v", got, now.Add(50*day))
			}
		})
		t.Run("OtherProjectAndEnvironment", func(t *testing.T) {
			other := e.newProject(t, p.TenantID)
			if got := other.currentSubscription(t, "many@example.com"); got != nil {
				t.Errorf("another project of the tenant: got %+v, want none", got)
			}
			live := gen.EnvironmentLive
			p.setLiveKeys(t)
			resp, err := e.API.GetCustomerSubscriptionWithResponse(ctx, &gen.GetCustomerSubscriptionParams{
				CustomerEmail: "many@example.com", Environment: &live}, p.creds)
			if err != nil || resp.JSON200 == nil || resp.JSON200.Subscription != nil {
				t.Errorf("live environment: got %v %s, want null", err, body(resp))
			}
		})
		t.Run("NoStripeCall", func(t *testing.T) {
			if got := fs.count() - stripeCalls; got != 0 {
				t.Errorf("Stripe calls while answering: got %d, want 0", got)
			}
		})
		t.Run("ErrEmail", func(t *testing.T) {
			for name, query := range map[string]string{
				"Missing":     "",
				"Empty":       "&customerEmail=",
				"NotAnEmail":  "&customerEmail=not-an-email",
				"NoDomain":    "&customerEmail=" + url.QueryEscape("ada@"),
				"DisplayName": "&customerEmail=" + url.QueryEscape("Ada <ada@example.com>"),
				"TooLong":     "&customerEmail=" + url.QueryEscape(longLocalPart()+"@example.com"),
			} {
				t.Run(name, func(t *testing.T) {
					resp, b := e.do(t, http.MethodGet, "/v1/customer/subscription?environment=test"+query, p.headers(), nil)
					wantError(t, resp, b, http.StatusBadRequest, "customerEmail")
				})
			}
		})
		t.Run("ErrCredentials", func(t *testing.T) {
			resp, _ := e.do(t, http.MethodGet, "/v1/customer/subscription?customerEmail=many@example.com", nil, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("got %d, want 401", resp.StatusCode)
			}
		})
	})
}

func longLocalPart() string {
	b := make([]byte, 520)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

// TestGetCustomerSubscriptionCache shows that answers are cached, and that
// a webhook that changes the mirror is visible on the very next call.
func TestGetCustomerSubscriptionCache(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		ctx := context.Background()
		p := e.newProject(t, "")
		base := time.Now().Add(-time.Hour).Truncate(time.Second)
		p.mustDeliver(t, customerEvent(t, "cus_cache", "cache@example.com"), "applied")
		event := func(status string, at time.Duration) []byte {
			return stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_cache", CustomerID: "cus_cache", Status: status, Created: base.Add(at)})
		}
		p.mustDeliver(t, event("active", 0), "applied")
		if got := p.currentSubscription(t, "cache@example.com"); got == nil || got.Status != "active" {
			t.Fatalf("got %+v, want active", got)
		}

		// A change behind the service's back is not seen while cached:
		// the cache is real.
		err := e.DB.UpsertFromStripe(ctx, p.ProjectID, billing.EnvTest, billing.MirrorChange{Subscriptions: []billing.Subscription{{
			ID: "sub_cache", CustomerID: "cus_cache", Status: "trialing", CurrentPeriodEnd: base.Add(48 * time.Hour), EventAt: base.Add(time.Second)}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.currentSubscription(t, "cache@example.com"); got == nil || got.Status != "active" {
			t.Fatalf("cached answer: got %+v, want active", got)
		}

		t.Run("WebhookInvalidates", func(t *testing.T) {
			p.mustDeliver(t, event("past_due", 2*time.Second), "applied")
			if got := p.currentSubscription(t, "cache@example.com"); got == nil || got.Status != "past_due" {
				t.Errorf("after the webhook: got %+v, want past_due", got)
			}
			p.mustDeliver(t, event("canceled", 3*time.Second), "applied")
			if got := p.currentSubscription(t, "cache@example.com"); got != nil {
				t.Errorf("after cancellation: got %+v, want none", got)
			}
		})
		t.Run("NullInvalidated", func(t *testing.T) {
			if got := p.currentSubscription(t, "later@example.com"); got != nil {
				t.Fatalf("got %+v, want none", got)
			}
			p.mustDeliver(t, customerEvent(t, "cus_later", "later@example.com"), "applied")
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_later", CustomerID: "cus_later"}), "applied")
			if got := p.currentSubscription(t, "later@example.com"); got == nil || got.Id != "sub_later" {
				t.Errorf("after the webhook: got %+v, want sub_later", got)
			}
		})
	}, withSubscriptionCacheTTL(time.Hour))
}
