package server_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// The full property (1,000 histories through the mirror, on every
// database) is in the mirror package; this runs fewer through the HTTP
// receiver.

// TestWebhookOrderingPropertyHTTP runs fewer random histories through the
// receiver itself, signed and concurrent, and reads the result back through
// the API.
func TestWebhookOrderingPropertyHTTP(t *testing.T) {
	const sequences, workers = 25, 6
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		seed := uint64(time.Now().UnixNano())
		r := rand.New(rand.NewPCG(seed, 2))
		// Every period ends in the future (RandomHistory's periods last a
		// day or more), so that no answer waits on a re-read of a period
		// that lapsed.
		base := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
		total := 0
		for i := range sequences {
			seq := stripetest.RandomHistory(r, fmt.Sprintf("h%d", i), base, 3)
			email := fmt.Sprintf("Buyer.%d@Example.com", i)
			p.mustDeliver(t, customerEvent(t, seq.Customer, email), "applied")
			stripetest.Concurrently(seq.Deliveries(r), workers, func(ev stripetest.HistoryEvent) {
				body, sig := stripetest.SignedPayload(t, ev.Payload, p.WebhookKey, time.Time{})
				status, b, err := e.postWebhook(webhookPath(p.ProjectID, billing.EnvTest), body, sig)
				if err != nil || status != http.StatusOK {
					t.Errorf("sequence %d: %s: got %d %s %v, want 200", i, ev.ID, status, b, err)
				}
			})
			// The current subscription is the newest state's active,
			// trialing or past due one that ends last.
			var want *stripetest.HistoryEvent
			for sub, ev := range seq.Newest {
				if msg := ev.Mismatch(e.subscription(t, p.ProjectID, sub)); msg != "" {
					t.Errorf("sequence %d: %s", i, msg)
				}
				if ev.Status != "active" && ev.Status != "trialing" && ev.Status != "past_due" {
					continue
				}
				if want == nil || ev.CurrentPeriodEnd.After(want.CurrentPeriodEnd) ||
					ev.CurrentPeriodEnd.Equal(want.CurrentPeriodEnd) && ev.Subscription > want.Subscription {
					want = &ev
				}
			}
			got := p.currentSubscription(t, strings.ToUpper(email))
			switch {
			case want == nil && got != nil:
				t.Errorf("sequence %d: got %+v, want none", i, got)
			case want != nil && (got == nil || got.Id != want.Subscription || string(got.Status) != want.Status):
				t.Errorf("sequence %d: got %+v, want %s (%s)", i, got, want.Subscription, want.Status)
			}
			total += len(seq.Events) + 1
			if t.Failed() {
				t.Fatalf("seed %d", seed)
			}
		}
		if got := len(e.ledger(t, p.ProjectID, billing.EnvTest)); got != total {
			t.Errorf("ledger: got %d events, want %d", got, total)
		}
	})
}
