package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// completedSession is a Checkout Session as Stripe returns it once the
// buyer has paid for a subscription.
func completedSession(id, customer, subscription, email string) string {
	return fmt.Sprintf(`{"id":%q,"object":"checkout.session","mode":"subscription","status":"complete",
		"payment_status":"paid","customer":%q,"customer_email":null,"customer_details":{"email":%q,"name":"Ada"},
		"subscription":%q,"payment_intent":null,"amount_total":2900,"currency":"usd","url":null,"created":%d,
		"client_reference_id":"user_refresh","metadata":{"user_id":"user_refresh"}}`,
		id, customer, email, subscription, time.Now().Add(-time.Minute).Unix())
}

// TestGetCheckoutSessionRefreshesSubscription shows that a success page that
// asks for its completed session finds the subscription at once, before any
// webhook arrives.
func TestGetCheckoutSessionRefreshesSubscription(t *testing.T) {
	eachStripeEnv(t, func(t *testing.T, e *testEnv, fs *fakeStripe) {
		ctx := context.Background()
		p := e.newProject(t, "")
		record := func(t *testing.T, id, user string) {
			t.Helper()
			err := e.DB.CreateCheckoutSession(ctx, billing.CheckoutSession{ID: id, ProjectID: p.ProjectID,
				Environment: billing.EnvTest, UserID: user, Mode: "subscription", Status: "open",
				URL: "https://checkout.stripe.com/c/pay/" + id, Created: time.Now().Add(-time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
		}
		get := func(t *testing.T, id, user string) *gen.GetCheckoutSessionResponse {
			t.Helper()
			resp, err := e.API.GetCheckoutSessionWithResponse(ctx, id, &gen.GetCheckoutSessionParams{}, p.buyer(t, user, ""))
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		sub := subscriptionObject(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			Shape: "2025", SubscriptionID: "sub_refresh", CustomerID: "cus_refresh", Status: "active",
			PriceID: "price_refresh", ProductID: "prod_refresh", Metadata: map[string]string{"user_id": "user_refresh"}}))

		t.Run("Completed", func(t *testing.T) {
			record(t, "cs_refresh", "user_refresh")
			fs.put("/v1/checkout/sessions/cs_refresh", completedSession("cs_refresh", "cus_refresh", "sub_refresh", "ada@example.com"))
			fs.put("/v1/subscriptions/sub_refresh", sub)
			fs.put("/v1/customers/cus_refresh", `{"id":"cus_refresh","object":"customer","email":"Ada@Example.com","name":"Ada",
				"created":1700000000,"metadata":{}}`)
			// Not known yet, and that answer is cached.
			if got := p.currentSubscription(t, "ada@example.com"); got != nil {
				t.Fatalf("before: got %+v, want none", got)
			}
			resp := get(t, "cs_refresh", "user_refresh")
			if resp.JSON200 == nil || deref(resp.JSON200.Status) != "complete" || deref(resp.JSON200.Subscription) != "sub_refresh" ||
				deref(resp.JSON200.Customer) != "cus_refresh" {
				t.Fatalf("session: got %s, want complete with sub_refresh", body(resp))
			}
			if n := stripeGets(fs, "/v1/subscriptions/sub_refresh"); n != 1 {
				t.Errorf("subscription reads: got %d, want 1", n)
			}
			s := e.subscription(t, p.ProjectID, "sub_refresh")
			if s == nil || s.Status != "active" || s.CustomerID != "cus_refresh" || s.UserID != "user_refresh" || s.PriceID != "price_refresh" {
				t.Fatalf("mirror: got %+v, want active sub_refresh of cus_refresh", s)
			}
			got := p.currentSubscription(t, "ada@example.com")
			if got == nil || got.Id != "sub_refresh" || got.Status != "active" || !got.CurrentPeriodEnd.Equal(s.CurrentPeriodEnd) {
				t.Errorf("by email: got %+v, want sub_refresh", got)
			}
			// The customer is the buyer's: the portal opens for it.
			if resp := p.portal(t, "user_refresh", "", "cus_refresh"); resp.JSON200 == nil {
				t.Errorf("portal: got %s, want 200", body(resp))
			}
		})
		t.Run("WebhookLaterIsOlder", func(t *testing.T) {
			// The subscription's creation event, delivered after the read,
			// is older than it and changes nothing.
			p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				Type: "customer.subscription.created", SubscriptionID: "sub_refresh", CustomerID: "cus_refresh",
				Status: "incomplete", Created: time.Now().Add(-time.Minute)}), "applied")
			if got := p.currentSubscription(t, "ada@example.com"); got == nil || got.Status != "active" {
				t.Errorf("got %+v, want active", got)
			}
		})
		t.Run("ErrOtherBuyer", func(t *testing.T) {
			n := fs.count()
			if resp := get(t, "cs_refresh", "user_other"); resp.StatusCode() != http.StatusNotFound {
				t.Errorf("got %s, want 404", body(resp))
			}
			if fs.count() != n {
				t.Errorf("Stripe calls for another buyer: got %d, want 0", fs.count()-n)
			}
		})
		t.Run("OpenSessionReadsNoSubscription", func(t *testing.T) {
			record(t, "cs_open", "user_refresh")
			fs.put("/v1/checkout/sessions/cs_open", `{"id":"cs_open","object":"checkout.session","mode":"subscription",
				"status":"open","payment_status":"unpaid","customer":null,"subscription":null,"url":"https://checkout.stripe.com/c/pay/cs_open"}`)
			n := fs.count()
			resp := get(t, "cs_open", "user_refresh")
			if resp.JSON200 == nil || deref(resp.JSON200.Status) != "open" {
				t.Fatalf("got %s, want open", body(resp))
			}
			if got := fs.count() - n; got != 1 {
				t.Errorf("Stripe calls: got %d, want 1 (the session)", got)
			}
		})
		t.Run("SubscriptionReadFails", func(t *testing.T) {
			record(t, "cs_gone", "user_refresh")
			fs.put("/v1/checkout/sessions/cs_gone", completedSession("cs_gone", "cus_gone", "sub_gone", "gone@example.com"))
			resp := get(t, "cs_gone", "user_refresh")
			if resp.JSON200 == nil || deref(resp.JSON200.Status) != "complete" {
				t.Errorf("got %s, want the session even though its subscription could not be read", body(resp))
			}
			if s := e.subscription(t, p.ProjectID, "sub_gone"); s != nil {
				t.Errorf("mirror: got %+v, want nothing", s)
			}
		})
	})
}
