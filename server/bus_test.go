package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/ratelimit"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// TestInvalidationAcrossInstances runs two instances on one database with a
// Redis bus: a webhook applied by one is visible at once in the other's
// (long-lived) subscription cache, and a secret rotated on one stops working
// on the other.
func TestInvalidationAcrossInstances(t *testing.T) {
	u := redisURL(t)
	// The instances share a channel of their own, as one deployment.
	prefix := "billing-test-" + randHex(4) + ":"
	newBus := func(t *testing.T) *bus.Bus {
		rdb, _ := ratelimit.NewRedisClient(u)
		r := bus.NewRedis(rdb, bus.RedisOptions{Prefix: prefix})
		t.Cleanup(func() { r.Close(); rdb.Close() })
		return bus.New(r)
	}
	eachEnv(t, func(t *testing.T, a *testEnv) {
		ctx := context.Background()
		b := newTestEnv(t, a.DB, func(c *serverConfig) { c.Bus = newBus(t); c.SubscriptionCacheTTL = time.Hour })
		p := a.newProject(t, "")
		email := "bus-" + randHex(4) + "@example.com"
		status := func() *gen.Subscription {
			resp, err := b.API.GetCustomerSubscriptionWithResponse(ctx, &gen.GetCustomerSubscriptionParams{CustomerEmail: openapi_types.Email(email)}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("status on b: %v %s", err, body(resp))
			}
			return resp.JSON200.Subscription
		}
		if status() != nil {
			t.Fatal("got a subscription before any event")
		}
		cus := "cus_bus" + randHex(4)
		p.mustDeliver(t, stripetest.Event(t, "customer.created", map[string]any{
			"id": "evt_bus_c" + randHex(4), "data.object.id": cus, "data.object.email": email,
		}), gen.WebhookAckStatusApplied)
		p.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			CustomerID: cus, Status: "active", SubscriptionID: "sub_bus" + randHex(4),
		}), gen.WebhookAckStatusApplied)
		deadline := time.Now().Add(5 * time.Second)
		for status() == nil {
			if time.Now().After(deadline) {
				t.Fatal("instance b still answers from its cache after the webhook applied on a")
			}
			time.Sleep(20 * time.Millisecond)
		}

		t.Run("RotatedSecret", func(t *testing.T) {
			if resp, _ := b.do(t, "GET", "/v1/setup/auth", p.headers(), nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d", resp.StatusCode)
			}
			rot, _ := a.API.AdminRotateProjectSecretWithResponse(ctx, p.ProjectID, admin)
			a.secret(rot.JSON200.SecretKey)
			b.secret(rot.JSON200.SecretKey)
			deadline := time.Now().Add(5 * time.Second)
			for {
				resp, _ := b.do(t, "GET", "/v1/setup/auth", p.headers(), nil)
				if resp.StatusCode == http.StatusUnauthorized {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the old secret still works on instance b")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}, func(c *serverConfig) { c.Bus = newBus(t); c.SubscriptionCacheTTL = time.Hour })
}
