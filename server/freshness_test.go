package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/testclock"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// TestCustomerEmailChangeAnswers changes a customer's email through the API
// and asks for the subscription by the new email: the answer is the
// subscription at once, although "none" was just answered for that email.
func TestCustomerEmailChangeAnswers(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		p := e.newProject(t, "")
		test := gen.EnvironmentTest
		em := openapi_types.Email("before@example.com")
		created, err := e.API.CreateCustomerWithResponse(ctx, &gen.CreateCustomerParams{Environment: &test},
			gen.CustomerRequest{Email: &em}, p.creds)
		if err != nil || created.JSON200 == nil {
			t.Fatalf("create customer: %v %s", err, body(created))
		}
		cus := created.JSON200.Id
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_email_change", CustomerID: cus, Created: time.Now().Add(-time.Minute)}), "applied")
		if got := p.currentSubscription(t, "before@example.com"); got == nil || got.Id != "sub_email_change" {
			t.Fatalf("old email: got %+v, want sub_email_change", got)
		}
		if got := p.currentSubscription(t, "after@example.com"); got != nil {
			t.Fatalf("new email before the change: got %+v, want none", got)
		}
		after := openapi_types.Email("After@Example.com")
		upd, err := e.API.UpdateCustomerWithResponse(ctx, cus, &gen.UpdateCustomerParams{Environment: &test},
			gen.CustomerRequest{Email: &after}, p.creds)
		if err != nil || upd.JSON200 == nil {
			t.Fatalf("update customer: %v %s", err, body(upd))
		}
		if got := p.currentSubscription(t, "after@example.com"); got == nil || got.Id != "sub_email_change" {
			t.Errorf("new email after the change: got %+v, want sub_email_change", got)
		}
		if got := p.currentSubscription(t, "before@example.com"); got != nil {
			t.Errorf("old email after the change: got %+v, want none", got)
		}
		del, err := e.API.DeleteCustomerWithResponse(ctx, cus, &gen.DeleteCustomerParams{Environment: &test}, p.creds)
		if err != nil || del.JSON200 == nil {
			t.Fatalf("delete customer: %v %s", err, body(del))
		}
		if got := p.currentSubscription(t, "after@example.com"); got != nil {
			t.Errorf("deleted customer's email: got %+v, want none", got)
		}
	}, withSubscriptionCacheTTL(time.Hour))
}

// TestInstancesConvergeWithoutRedis runs two instances on one database and
// no Redis. Instance one applies a cancellation and an activation; instance
// two, which had indexed the project, may answer the old state until its
// answers expire (30 s of its clock), and the new one from then on.
func TestInstancesConvergeWithoutRedis(t *testing.T) {
	eachEnv(t, func(t *testing.T, one *testEnv) {
		clk := testclock.New(time.Now())
		two := newTestEnv(t, one.DB, func(c *serverConfig) { c.Now = clk.Now })
		p := one.newProject(t, "")
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		p.mustDeliver(t, customerEvent(t, "cus_conv_old", "old@example.com"), "applied")
		p.mustDeliver(t, customerEvent(t, "cus_conv_new", "new@example.com"), "applied")
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_conv_old", CustomerID: "cus_conv_old", Created: at}), "applied")

		onTwo := func(email string) *gen.Subscription {
			t.Helper()
			resp, err := two.API.GetCustomerSubscriptionWithResponse(context.Background(),
				&gen.GetCustomerSubscriptionParams{CustomerEmail: openapi_types.Email(email)}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("status on two: %v %s", err, body(resp))
			}
			return resp.JSON200.Subscription
		}
		if got := onTwo("old@example.com"); got == nil {
			t.Fatal("two: no subscription before the change")
		}
		// Instance two indexes the project after a burst of misses (in the
		// background): a subscription written behind both instances' backs
		// is missed only by an answer from the index.
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			onTwo(fmt.Sprintf("miss%d@example.com", i))
			probe := fmt.Sprintf("probe%d@example.com", i)
			_, err := one.DB.Apply(context.Background(), store.Write{ProjectID: p.ProjectID, Environment: billing.EnvTest,
				Origin: store.FromStripe, Change: billing.MirrorChange{Subscriptions: []billing.Subscription{{
					ID: fmt.Sprintf("sub_probe%d", i), Email: probe, Status: "active", CurrentPeriodEnd: time.Now().Add(time.Hour), EventAt: at}}}})
			if err != nil {
				t.Fatal(err)
			}
			if i > 20 && onTwo(probe) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("instance two never indexed the project")
			}
		}

		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_conv_old", CustomerID: "cus_conv_old", Status: "canceled", Created: at.Add(time.Minute)}), "applied")
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_conv_new", CustomerID: "cus_conv_new", Created: at.Add(time.Minute)}), "applied")
		if got := p.currentSubscription(t, "old@example.com"); got != nil {
			t.Errorf("one, at once: got %+v, want none", got)
		}
		clk.Advance(30 * time.Second)
		if got := onTwo("old@example.com"); got != nil {
			t.Errorf("two, after the expiry: got %+v, want none", got)
		}
		if got := onTwo("new@example.com"); got == nil || got.Id != "sub_conv_new" {
			t.Errorf("two, after the expiry: got %+v, want sub_conv_new", got)
		}
	})
}

// TestCancelAtAnswers delivers a subscription canceled through the customer
// portal (cancel_at at the period's end, cancel_at_period_end false): the
// answer says it ends at the period's end.
func TestCancelAtAnswers(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		end := at.Add(30 * 24 * time.Hour)
		p.mustDeliver(t, customerEvent(t, "cus_portal", "portal@example.com"), "applied")
		p.mustDeliver(t, stripetest.Event(t, "customer.subscription.updated.2025-03-31", map[string]any{
			"id": "evt_portal_cancel", "created": at.Unix(), "data.object.id": "sub_portal", "data.object.customer": "cus_portal",
			"data.object.status": "active", "data.object.trial_end": nil,
			"data.object.cancel_at_period_end": false, "data.object.cancel_at": end.Unix(),
			"data.object.items.data.0.current_period_end": end.Unix(), "data.object.items.data.1.current_period_end": end.Unix(),
		}), "applied")
		got := p.currentSubscription(t, "portal@example.com")
		if got == nil || !got.CancelAtPeriodEnd || !got.CurrentPeriodEnd.Equal(end) {
			t.Errorf("got %+v, want cancelAtPeriodEnd true, ending %v", got, end)
		}
	})
}

// TestPlanNameFromStripe delivers a subscription whose product no event
// has brought: the service reads the product from Stripe (stripe-mock has
// one for any id) and names the plan.
func TestPlanNameFromStripe(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		p.mustDeliver(t, customerEvent(t, "cus_unnamed", "unnamed@example.com"), "applied")
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_unnamed", CustomerID: "cus_unnamed", PriceID: "price_unnamed", ProductID: "prod_never_sent"}), "applied")
		got := p.currentSubscription(t, "unnamed@example.com")
		if want := e.stripeProductName(t, "prod_never_sent"); got == nil || got.Plan.Name != want {
			t.Errorf("got %+v, want the plan named %q", got, want)
		}
	})
}

// TestLapsedPeriodReread answers for a subscription whose period ended two
// hours ago without a renewal event: the service re-reads it from Stripe,
// which renewed it, and answers the renewed period; it does not read it
// again on the next call.
func TestLapsedPeriodReread(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		p := e.newProject(t, "")
		created := time.Now().Add(-31 * 24 * time.Hour).Truncate(time.Second)
		ended := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
		renewed := ended.Add(30 * 24 * time.Hour)
		p.mustDeliver(t, customerEvent(t, "cus_lapsed", "lapsed@example.com"), "applied")
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_lapsed", CustomerID: "cus_lapsed", Created: created, CurrentPeriodEnd: ended}), "applied")
		fs.put("/v1/subscriptions/sub_lapsed", subscriptionObject(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_lapsed", CustomerID: "cus_lapsed", Created: ended, CurrentPeriodEnd: renewed})))
		for range 3 {
			got := p.currentSubscription(t, "lapsed@example.com")
			if got == nil || !got.CurrentPeriodEnd.Equal(renewed) {
				t.Fatalf("got %+v, want the period Stripe renewed, ending %v", got, renewed)
			}
		}
		if n := stripeGets(fs, "/v1/subscriptions/sub_lapsed"); n != 1 {
			t.Errorf("Stripe reads: got %d, want 1", n)
		}
	})
}
