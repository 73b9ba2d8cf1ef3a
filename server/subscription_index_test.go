package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// TestSubscriptionIndex shows that after a burst of misses the service
// answers every email of the project from memory, and that a webhook drops
// that index at once.
func TestSubscriptionIndex(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		p := e.newProject(t, "")
		status := func(email string) *gen.Subscription {
			t.Helper()
			resp, err := e.API.GetCustomerSubscriptionWithResponse(ctx,
				&gen.GetCustomerSubscriptionParams{CustomerEmail: openapi_types.Email(email)}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("status: %v %s", err, body(resp))
			}
			return resp.JSON200.Subscription
		}
		put := func(email, id string) {
			t.Helper()
			err := e.DB.UpsertFromStripe(ctx, p.ProjectID, billing.EnvTest, billing.MirrorChange{
				Subscriptions: []billing.Subscription{{ID: id, ProjectID: p.ProjectID, Environment: billing.EnvTest,
					CustomerID: "cus_" + id, Email: email, Status: "active", PriceID: "price_1",
					CurrentPeriodEnd: time.Now().Add(time.Hour), EventAt: time.Now()}},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		put("known@example.com", "sub_known")
		for i := 0; i < 20; i++ {
			if status(fmt.Sprintf("miss%d@example.com", i)) != nil {
				t.Fatal("got a subscription for an unknown email")
			}
		}
		// Written behind the service's back: only an answer from memory
		// misses it. The index is built in the background; a subscription
		// written after it was built is the one it cannot know.
		var late string
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			late = fmt.Sprintf("late%d@example.com", i)
			put(late, fmt.Sprintf("sub_late%d", i))
			if status(late) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the project's subscriptions were never indexed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if s := status("KNOWN@example.com"); s == nil || s.Id != "sub_known" {
			t.Errorf("indexed answer: got %+v, want sub_known", s)
		}
		// A webhook changes the mirror: the index is dropped at once.
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{}), gen.WebhookAckStatusApplied)
		if s := status(late); s == nil || s.Id != "sub_"+strings.TrimSuffix(late, "@example.com") {
			t.Errorf("after a webhook: got %+v, want the subscription of %s", s, late)
		}
	})
}
