package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// The fixture story: a buyer (user_42) subscribes to Premium through
// Checkout. Its ids, as in stripeadapter/stripetest/testdata.
const (
	storyCustomer     = "cus_PZoYq2YbJ3mK8c"
	storySubscription = "sub_1OkQlzLz8sXh3kVbq2Fq7mNd"
	storySession      = "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ"
	storyBuyer        = "user_42"
)

// customerCreated is the fixture customer without an owner in its
// metadata, so that only the checkout session can give it one.
func customerCreated(t testing.TB) []byte {
	return stripetest.Event(t, "customer.created", map[string]any{"data.object.metadata": map[string]any{}})
}

// putStorySubscription makes the stand-in serve the story's subscription,
// active, as Stripe's API would return it now.
func putStorySubscription(t testing.TB, fs *fakeStripe) {
	obj := subscriptionObject(t, stripetest.Event(t, "customer.subscription.updated.2023-10-16", map[string]any{
		"data.object.cancel_at_period_end": false}))
	fs.put("/v1/subscriptions/"+storySubscription, obj)
}

// portal asks for a portal session for customer as the buyer sub.
func (p *testProject) portal(t testing.TB, sub, email, customer string) *gen.CreatePortalSessionResponse {
	t.Helper()
	resp, err := p.e.API.CreatePortalSessionWithResponse(context.Background(), &gen.CreatePortalSessionParams{},
		gen.CreatePortalSessionRequest{Customer: customer, ReturnUrl: "https://app.example.com/account"}, p.buyer(t, sub, email))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (e *testEnv) customer(t testing.TB, projectID, id string) *billing.Customer {
	t.Helper()
	c, err := e.DB.FindCustomer(context.Background(), projectID, billing.EnvTest, id)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil
	} else if err != nil {
		t.Fatalf("find customer %s: %v", id, err)
	}
	return c
}

// stripeGets counts the stand-in's GET requests for path.
func stripeGets(fs *fakeStripe, path string) int {
	n := 0
	for _, r := range fs.seen() {
		if r.Method == http.MethodGet && r.Path == path {
			n++
		}
	}
	return n
}

func TestWebhookCheckoutStory(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		putStorySubscription(t, fs)
		checkOwned := func(t *testing.T, p *testProject) {
			t.Helper()
			c := e.customer(t, p.ProjectID, storyCustomer)
			if c == nil || c.UserID != storyBuyer {
				t.Fatalf("customer: got %+v, want owned by %s", c, storyBuyer)
			}
			if resp := p.portal(t, storyBuyer, "", storyCustomer); resp.JSON200 == nil || !strings.HasPrefix(resp.JSON200.Url, "https://billing.stripe.com/") {
				t.Errorf("portal for the buyer: got %s, want 200 with a URL", body(resp))
			}
			if resp := p.portal(t, "user_7", "someone@example.com", storyCustomer); resp.StatusCode() != http.StatusNotFound {
				t.Errorf("portal for another buyer: got %s, want 404", body(resp))
			}
		}
		checkCustomer := func(t *testing.T, p *testProject) {
			t.Helper()
			c := e.customer(t, p.ProjectID, storyCustomer)
			if c == nil || c.Name != "Grace Hopper" || c.Email != "buyer@example.com" || c.Phone != "+14155550123" ||
				c.Description != "Created through Checkout" || c.UserID != storyBuyer {
				t.Errorf("customer: got %+v, want Grace Hopper <buyer@example.com> owned by %s", c, storyBuyer)
			}
		}

		t.Run("InOrder", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "product.updated", nil), "applied")
			p.mustDeliver(t, stripetest.Event(t, "price.created", nil), "applied")
			p.mustDeliver(t, customerCreated(t), "applied")
			if resp := p.portal(t, storyBuyer, "", storyCustomer); resp.StatusCode() != http.StatusNotFound {
				t.Fatalf("portal before checkout: got %s, want 404", body(resp))
			}
			before := stripeGets(fs, "/v1/subscriptions/"+storySubscription)
			p.mustDeliver(t, stripetest.Event(t, "checkout.session.completed.subscription", nil), "applied")
			if got := stripeGets(fs, "/v1/subscriptions/"+storySubscription) - before; got != 1 {
				t.Errorf("subscription reads for the session: got %d, want 1", got)
			}
			checkOwned(t, p)
			checkCustomer(t, p)
			cs, err := e.DB.FindCheckoutSession(context.Background(), p.ProjectID, billing.EnvTest, storySession)
			if err != nil || cs.Status != "complete" || cs.PaymentStatus != "paid" || cs.CustomerID != storyCustomer ||
				cs.SubscriptionID != storySubscription || cs.UserID != storyBuyer || cs.AmountTotal != 2900 {
				t.Errorf("session: got %+v, %v", cs, err)
			}
			got := p.currentSubscription(t, "buyer@example.com")
			if got == nil || got.Id != storySubscription || got.Status != "active" || got.Plan.Name != "Premium" ||
				got.PlanId != "price_1OkQd1Lz8sXh3kVbPremium" || got.CancelAtPeriodEnd {
				t.Errorf("subscription after checkout: got %+v, want active Premium", got)
			}
			p.mustDeliver(t, stripetest.Event(t, "invoice.paid", nil), "applied")
			// The update, older than the reads above, changes nothing.
			p.mustDeliver(t, stripetest.Event(t, "customer.subscription.updated.2023-10-16", nil), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.CancelAtPeriodEnd {
				t.Errorf("after an older event: got %+v, want the state read from Stripe", got)
			}
		})
		t.Run("SessionFirst", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "checkout.session.completed.subscription", nil), "applied")
			// The session alone makes the customer the buyer's and its
			// email known.
			checkOwned(t, p)
			if got := p.currentSubscription(t, "BUYER@example.com"); got == nil || got.Id != storySubscription {
				t.Errorf("subscription by the session's email: got %+v, want %s", got, storySubscription)
			}
			p.mustDeliver(t, customerCreated(t), "applied")
			checkCustomer(t, p)
			checkOwned(t, p)
		})
		t.Run("PaymentMode", func(t *testing.T) {
			p := e.newProject(t, "")
			n := fs.count()
			p.mustDeliver(t, stripetest.Event(t, "checkout.session.completed.payment", nil), "applied")
			cs, err := e.DB.FindCheckoutSession(context.Background(), p.ProjectID, billing.EnvTest, "cs_test_b9PaymentModeSession0000000000000000")
			if err != nil || cs.Status != "complete" || cs.PaymentIntentID != "pi_3OkRZzLz8sXh3kVb1aB2cD3e" || cs.Mode != "payment" {
				t.Errorf("session: got %+v, %v", cs, err)
			}
			if got := fs.count() - n; got != 0 {
				t.Errorf("Stripe calls: got %d, want 0", got)
			}
		})
	})
}

func TestWebhookSubscriptionEvents(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		p := e.newProject(t, "")
		p.mustDeliver(t, stripetest.Event(t, "customer.created", map[string]any{
			"id": "evt_cus_life", "data.object.id": "cus_life", "data.object.email": "life@example.com"}), "applied")
		base := time.Now().Add(-time.Hour).Truncate(time.Second)
		steps := []struct {
			typ, status string
			current     bool // whether the subscription is current (shown)
		}{
			{"customer.subscription.created", "incomplete", false},
			{"customer.subscription.updated", "active", true},
			{"customer.subscription.paused", "paused", false},
			{"customer.subscription.resumed", "active", true},
			{"customer.subscription.trial_will_end", "trialing", true},
			{"customer.subscription.updated", "past_due", true},
			{"customer.subscription.updated", "unpaid", false},
			{"customer.subscription.deleted", "canceled", false},
		}
		for i, step := range steps {
			t.Run(fmt.Sprintf("%d-%s", i, step.typ), func(t *testing.T) {
				shape := []string{"2023", "2025"}[i%2]
				p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					Type: step.typ, Shape: shape, SubscriptionID: "sub_life", CustomerID: "cus_life",
					Created: base.Add(time.Duration(i) * time.Minute), Status: step.status,
				}), "applied")
				got := p.currentSubscription(t, "life@example.com")
				switch {
				case step.current && (got == nil || string(got.Status) != step.status):
					t.Errorf("got %+v, want status %q", got, step.status)
				case !step.current && got != nil:
					t.Errorf("got %+v, want no current subscription while %s", got, step.status)
				}
				if s := e.subscription(t, p.ProjectID, "sub_life"); s == nil || s.Status != step.status {
					t.Errorf("mirror: got %+v, want %s", s, step.status)
				}
			})
		}
	})
}

func TestWebhookInvoices(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		t.Run("PaymentFailed", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, customerCreated(t), "applied")
			fs.put("/v1/subscriptions/"+storySubscription, subscriptionObject(t, stripetest.Event(t,
				"customer.subscription.updated.2023-10-16", map[string]any{"data.object.status": "past_due"})))
			p.mustDeliver(t, stripetest.Event(t, "invoice.paid", map[string]any{
				"id": "evt_inv_failed", "type": "invoice.payment_failed", "data.object.status": "open"}), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.Status != "past_due" {
				t.Errorf("got %+v, want past_due as read from Stripe", got)
			}
		})
		t.Run("Paid2025Shape", func(t *testing.T) {
			p := e.newProject(t, "")
			fs.put("/v1/subscriptions/sub_1R8xTcLz8sXh3kVb7Hk2pQrS",
				subscriptionObject(t, stripetest.Event(t, "customer.subscription.updated.2025-03-31", map[string]any{"data.object.status": "active"})))
			before := stripeGets(fs, "/v1/subscriptions/sub_1R8xTcLz8sXh3kVb7Hk2pQrS")
			p.mustDeliver(t, stripetest.Event(t, "invoice.paid.2025-03-31", nil), "applied")
			if got := stripeGets(fs, "/v1/subscriptions/sub_1R8xTcLz8sXh3kVb7Hk2pQrS") - before; got != 1 {
				t.Errorf("subscription reads: got %d, want 1", got)
			}
			s := e.subscription(t, p.ProjectID, "sub_1R8xTcLz8sXh3kVb7Hk2pQrS")
			if s == nil || s.Status != "active" || s.CurrentPeriodEnd.Unix() != 1746191999 || len(s.Items) != 2 {
				t.Errorf("got %+v, want active until 1746191999 with 2 items", s)
			}
		})
		t.Run("StripeDown", func(t *testing.T) {
			p := e.newProject(t, "")
			putStorySubscription(t, fs)
			ev := stripetest.Event(t, "invoice.paid", map[string]any{"id": "evt_inv_down"})
			fs.fail(http.StatusInternalServerError)
			status, _, b := p.deliver(t, ev)
			fs.fail(0)
			if status != http.StatusServiceUnavailable {
				t.Fatalf("Stripe failing: got %d %s, want 503", status, b)
			}
			if got := e.ledger(t, p.ProjectID, billing.EnvTest); len(got) != 0 {
				t.Fatalf("ledger: got %d events, want none", len(got))
			}
			p.mustDeliver(t, ev, "applied")
			if s := e.subscription(t, p.ProjectID, storySubscription); s == nil || s.Status != "active" {
				t.Errorf("after the retry: got %+v, want active", s)
			}
			// A duplicate needs no Stripe read, and is acknowledged while
			// Stripe fails.
			fs.fail(http.StatusInternalServerError)
			n := fs.count()
			status, ack, b := p.deliver(t, ev)
			fs.fail(0)
			if status != http.StatusOK || !deref(ack.Duplicate) || fs.count() != n {
				t.Errorf("duplicate while Stripe fails: got %d %s after %d Stripe calls, want 200 duplicate after none", status, b, fs.count()-n)
			}
		})
		t.Run("SubscriptionUnknownToStripe", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, stripetest.Event(t, "invoice.paid", map[string]any{
				"id": "evt_inv_gone", "data.object.subscription": "sub_gone"}), "ignored")
		})
	})
}

func TestWebhookOtherObjects(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		t.Run("Customers", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, customerCreated(t), "applied")
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_cus", CustomerID: storyCustomer}), "applied")
			p.mustDeliver(t, stripetest.Event(t, "customer.created", map[string]any{
				"id": "evt_cus_upd", "type": "customer.updated", "created": 1708000000, "data.object.email": "grace@example.com",
				"data.object.name": "Grace B. Hopper"}), "applied")
			if c := e.customer(t, p.ProjectID, storyCustomer); c == nil || c.Email != "grace@example.com" || c.Name != "Grace B. Hopper" {
				t.Errorf("updated customer: got %+v", c)
			}
			if got := p.currentSubscription(t, "grace@example.com"); got == nil || got.Id != "sub_cus" {
				t.Errorf("by the new email: got %+v, want sub_cus", got)
			}
			if got := p.currentSubscription(t, "buyer@example.com"); got != nil {
				t.Errorf("by the old email: got %+v, want none", got)
			}
			p.mustDeliver(t, stripetest.Event(t, "customer.deleted", nil), "applied")
			if c := e.customer(t, p.ProjectID, storyCustomer); c != nil {
				t.Errorf("deleted customer: got %+v, want not found", c)
			}
			// The creation, delivered late, does not bring it back.
			p.mustDeliver(t, stripetest.Event(t, "customer.created", map[string]any{"id": "evt_cus_late"}), "applied")
			if c := e.customer(t, p.ProjectID, storyCustomer); c != nil {
				t.Errorf("after a late creation: got %+v, want not found", c)
			}
		})
		t.Run("PlanNames", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, customerCreated(t), "applied")
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_plan",
				CustomerID: storyCustomer, PriceID: "price_1OkQd1Lz8sXh3kVbPremium", ProductID: "prod_PZoQ7bHcVw2Kx1"}), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.Plan.Name != "" {
				t.Errorf("before products and prices: got %+v, want no plan name", got)
			}
			p.mustDeliver(t, stripetest.Event(t, "price.created", nil), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.Plan.Name != "Premium monthly" {
				t.Errorf("with the price: got %+v, want its nickname", got)
			}
			p.mustDeliver(t, stripetest.Event(t, "product.updated", nil), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.Plan.Name != "Premium" {
				t.Errorf("with the product: got %+v, want Premium", got)
			}
			p.mustDeliver(t, stripetest.Event(t, "product.updated", map[string]any{
				"id": "evt_prod_renamed", "created": 1707990100, "data.object.name": "Premium Plus"}), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.Plan.Name != "Premium Plus" {
				t.Errorf("renamed: got %+v, want Premium Plus", got)
			}
			// An older rename, delivered late, loses.
			p.mustDeliver(t, stripetest.Event(t, "product.updated", map[string]any{
				"id": "evt_prod_old", "created": 1707990050, "data.object.name": "Premium Old"}), "applied")
			if got := p.currentSubscription(t, "buyer@example.com"); got == nil || got.Plan.Name != "Premium Plus" {
				t.Errorf("after an older rename: got %+v, want Premium Plus", got)
			}
		})
	})
}

func TestWebhookOrdering(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		base := time.Now().Add(-time.Hour).Truncate(time.Second)
		sub := func(status string, at time.Time) []byte {
			return stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_order", CustomerID: "cus_order", Created: at, Status: status})
		}
		t.Run("OlderNeverOverwrites", func(t *testing.T) {
			p := e.newProject(t, "")
			p.mustDeliver(t, sub("past_due", base.Add(2*time.Second)), "applied")
			p.mustDeliver(t, sub("active", base.Add(time.Second)), "applied")
			if s := e.subscription(t, p.ProjectID, "sub_order"); s == nil || s.Status != "past_due" || !s.EventAt.Equal(base.Add(2*time.Second)) {
				t.Errorf("got %+v, want past_due from the newer event", s)
			}
			p.mustDeliver(t, sub("canceled", base.Add(3*time.Second)), "applied")
			if s := e.subscription(t, p.ProjectID, "sub_order"); s == nil || s.Status != "canceled" {
				t.Errorf("got %+v, want canceled from the newest event", s)
			}
		})
		t.Run("TieReadsStripe", func(t *testing.T) {
			p := e.newProject(t, "")
			truth := subscriptionObject(t, sub("unpaid", base))
			fs.put("/v1/subscriptions/sub_order", truth)
			p.mustDeliver(t, sub("active", base.Add(500*time.Millisecond)), "applied")
			before := stripeGets(fs, "/v1/subscriptions/sub_order")
			p.mustDeliver(t, sub("past_due", base), "applied")
			if got := stripeGets(fs, "/v1/subscriptions/sub_order") - before; got != 1 {
				t.Errorf("Stripe reads on a tie: got %d, want 1", got)
			}
			if s := e.subscription(t, p.ProjectID, "sub_order"); s == nil || s.Status != "unpaid" {
				t.Errorf("got %+v, want unpaid as read from Stripe", s)
			}
		})
		t.Run("CustomerTieReadsStripe", func(t *testing.T) {
			p := e.newProject(t, "")
			fs.put("/v1/customers/"+storyCustomer, `{"id":"cus_PZoYq2YbJ3mK8c","object":"customer","email":"buyer@example.com",
				"name":"Read From Stripe","created":1707998394,"metadata":{}}`)
			p.mustDeliver(t, customerCreated(t), "applied")
			p.mustDeliver(t, stripetest.Event(t, "customer.created", map[string]any{"id": "evt_same_second",
				"type": "customer.updated", "data.object.name": "Same Second"}), "applied")
			if c := e.customer(t, p.ProjectID, storyCustomer); c == nil || c.Name != "Read From Stripe" {
				t.Errorf("got %+v, want the name read from Stripe", c)
			}
		})
		t.Run("RefetchObjectsReadsStripe", func(t *testing.T) {
			p := e.newProject(t, "")
			env := gen.EnvironmentTest
			refetch := true
			resp, err := e.API.PutStripeSetupWithResponse(context.Background(), &gen.PutStripeSetupParams{Environment: &env},
				gen.StripeSetupRequest{SecretKey: p.StripeKey, PublishableKey: p.PublishableKey, WebhookSecret: &p.WebhookKey, RefetchObjects: &refetch}, p.creds)
			if err != nil || resp.JSON200 == nil || !deref(resp.JSON200.RefetchObjects) {
				t.Fatalf("enable refetch: %v %s", err, body(resp))
			}
			refetched := func(status string, at time.Time) []byte {
				return stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					SubscriptionID: "sub_refetch", CustomerID: "cus_refetch", Created: at, Status: status})
			}
			fs.put("/v1/subscriptions/sub_refetch", subscriptionObject(t, refetched("unpaid", base)))
			before := stripeGets(fs, "/v1/subscriptions/sub_refetch")
			p.mustDeliver(t, refetched("active", base.Add(20*time.Second)), "applied")
			if got := stripeGets(fs, "/v1/subscriptions/sub_refetch") - before; got != 1 {
				t.Errorf("Stripe reads: got %d, want 1", got)
			}
			if s := e.subscription(t, p.ProjectID, "sub_refetch"); s == nil || s.Status != "unpaid" {
				t.Errorf("got %+v, want unpaid as read from Stripe", s)
			}
		})
		t.Run("NoStripeReadWithoutTie", func(t *testing.T) {
			p := e.newProject(t, "")
			reads := func() int {
				return stripeGets(fs, "/v1/subscriptions/sub_order") + stripeGets(fs, "/v1/customers/cus_order")
			}
			n := reads()
			p.mustDeliver(t, sub("active", base.Add(10*time.Second)), "applied")
			p.mustDeliver(t, sub("past_due", base.Add(11*time.Second)), "applied")
			p.mustDeliver(t, sub("unpaid", base.Add(9*time.Second)), "applied")
			if got := reads() - n; got != 0 {
				t.Errorf("Stripe reads: got %d, want 0", got)
			}
		})
	})
}
