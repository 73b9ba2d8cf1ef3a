package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/stripemock"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// TestSeveralInstances runs two `billing serve` processes on one PostgreSQL
// and one Redis: the rate limit is shared, one webhook event delivered to
// both is applied once, and usage from both is counted.
func TestSeveralInstances(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" || os.Getenv("BILLING_TEST_REDIS_URL") == "" {
		t.Skip("needs BILLING_TEST_POSTGRES_URL and BILLING_TEST_REDIS_URL")
	}
	vars := map[string]string{
		"BILLING_DATABASE_URL":                storetest.NewDSN(t, storetest.Postgres),
		"BILLING_REDIS_URL":                   os.Getenv("BILLING_TEST_REDIS_URL"),
		"BILLING_MASTER_KEY":                  newMasterKey(t),
		"BILLING_STRIPE_API_BASE":             stripemock.Start(t),
		"BILLING_RATE_LIMIT_CREATES_PER_HOUR": "4",
		"BILLING_USAGE_FLUSH_INTERVAL":        "100ms",
	}
	a := startServe(t, vars)
	b := startServe(t, vars)
	creds := a.project(t)
	webhookSecret := processWebhookSecret
	a.putStripeKeys(t, creds, "sk_test_multi0123456789")

	t.Run("SharedRateLimit", func(t *testing.T) {
		var served, limited int
		for i := 0; i < 6; i++ {
			inst := []*serveProcess{a, b}[i%2]
			r := inst.call(t, "POST", "/v1/stripe/customers", creds.headers(), `{"email":"multi@example.com"}`)
			switch r.status {
			case http.StatusOK:
				served++
			case http.StatusTooManyRequests:
				limited++
				if r.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			default:
				t.Fatalf("got %d %s", r.status, r.body)
			}
		}
		if served != 4 || limited != 2 {
			t.Errorf("got %d served and %d limited, want 4 and 2", served, limited)
		}
	})

	t.Run("WebhookAppliedOnce", func(t *testing.T) {
		payload := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			EventID: "evt_multi_1", Created: time.Now(), SubscriptionID: "sub_multi_1",
			CustomerID: "cus_multi_1", Status: "active", PriceID: "price_multi", ProductID: "prod_multi",
			CurrentPeriodEnd: time.Now().Add(30 * 24 * time.Hour),
		})
		body, sig := stripetest.SignedPayload(t, payload, webhookSecret, time.Now())
		path := "/v1/stripe/webhook/" + creds.ProjectID + "?environment=test"
		var duplicates int
		for _, inst := range []*serveProcess{a, b} {
			r := inst.call(t, "POST", path, http.Header{"Stripe-Signature": {sig}}, string(body))
			if r.status != http.StatusOK {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if strings.Contains(r.body, `"duplicate":true`) {
				duplicates++
			}
		}
		if duplicates != 1 {
			t.Errorf("got %d duplicate answers, want exactly 1", duplicates)
		}
		r := b.call(t, "GET", "/v1/webhooks/events?limit=100", creds.headers(), "")
		var list struct{ Data []struct{ ID string } }
		if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Data) != 1 || list.Data[0].ID != "evt_multi_1" {
			t.Errorf("got events %s, want evt_multi_1 once", r.body)
		}
	})

	t.Run("UsageFromBoth", func(t *testing.T) {
		a.call(t, "GET", "/v1/stripe/customers", creds.headers(), "")
		b.call(t, "GET", "/v1/stripe/customers", creds.headers(), "")
		b.call(t, "GET", "/v1/stripe/customers", creds.headers(), "")
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := a.call(t, "GET", "/v1/usage", creds.headers(), "")
			var list struct {
				Data []struct {
					Endpoint    string
					StatusClass string `json:"status_class"`
					Count       int
				}
			}
			_ = json.Unmarshal([]byte(r.body), &list)
			got := map[string]int{}
			for _, u := range list.Data {
				got[u.Endpoint+" "+u.StatusClass] += u.Count
			}
			if got["GET /v1/stripe/customers 2xx"] == 3 && got["POST /v1/stripe/customers 2xx"] == 4 && got["POST /v1/stripe/customers 4xx"] == 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("got usage %v, want 3 list calls, 4 served and 2 limited creates from both instances", got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
