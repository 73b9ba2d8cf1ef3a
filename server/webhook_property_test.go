package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// genEvent is one generated subscription event and the state it carries.
type genEvent struct {
	ID                string
	Payload           []byte
	Subscription      string
	Created           time.Time
	Status            string
	CurrentPeriodEnd  time.Time
	CancelAtPeriodEnd bool
	PriceID           string
}

// eventKinds pairs each subscription event type with the statuses it can
// carry.
var eventKinds = []struct {
	typ      string
	statuses []string
}{
	{"customer.subscription.created", []string{"incomplete", "active", "trialing"}},
	{"customer.subscription.updated", []string{"active", "trialing", "past_due", "unpaid", "canceled", "incomplete_expired"}},
	{"customer.subscription.deleted", []string{"canceled"}},
	{"customer.subscription.paused", []string{"paused"}},
	{"customer.subscription.resumed", []string{"active"}},
	{"customer.subscription.trial_will_end", []string{"trialing"}},
}

// sequence is a random history of a few subscriptions of one customer.
type sequence struct {
	Customer string
	Events   []genEvent          // in the order Stripe created them
	Newest   map[string]genEvent // by subscription
}

// randomSequence returns the events of 1 to maxSubs subscriptions, 2 to 5
// each, in either API shape. The events of one subscription are at least a
// second apart, so that no two of them tie.
func randomSequence(r *rand.Rand, name string, base time.Time, maxSubs int) sequence {
	seq := sequence{Customer: "cus_" + name, Newest: map[string]genEvent{}}
	for j := range 1 + r.IntN(maxSubs) {
		sub := fmt.Sprintf("sub_%s_%d", name, j)
		at := base.Add(time.Duration(r.IntN(3600)) * time.Second)
		for k := range 2 + r.IntN(4) {
			at = at.Add(time.Duration(1+r.IntN(120)) * time.Second)
			kind := eventKinds[r.IntN(len(eventKinds))]
			ev := genEvent{
				ID:                fmt.Sprintf("evt_%s_%d_%d", name, j, k),
				Subscription:      sub,
				Created:           at,
				Status:            kind.statuses[r.IntN(len(kind.statuses))],
				CurrentPeriodEnd:  at.Add(time.Duration(1+r.IntN(60)) * 24 * time.Hour),
				CancelAtPeriodEnd: r.IntN(2) == 0,
				PriceID:           fmt.Sprintf("price_%d", r.IntN(3)),
			}
			ev.Payload = stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				EventID: ev.ID, Type: kind.typ, Created: at, Shape: []string{"2023", "2025"}[r.IntN(2)],
				SubscriptionID: sub, CustomerID: seq.Customer, Status: ev.Status, PriceID: ev.PriceID,
				ProductID: "prod_" + ev.PriceID, CurrentPeriodEnd: ev.CurrentPeriodEnd, CancelAtPeriodEnd: ev.CancelAtPeriodEnd,
			})
			seq.Events = append(seq.Events, ev)
			seq.Newest[sub] = ev
		}
	}
	return seq
}

// deliveries returns the events shuffled, each one to three times (a
// quarter of them more than once).
func (s sequence) deliveries(r *rand.Rand) []genEvent {
	var out []genEvent
	for _, ev := range s.Events {
		out = append(out, ev)
		for n := 1; n < 3 && r.IntN(4) == 0; n++ {
			out = append(out, ev)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// concurrently calls fn for each item from workers goroutines.
func concurrently[T any](items []T, workers int, fn func(T)) {
	ch := make(chan T)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for it := range ch {
				fn(it)
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}

// checkNewest reports how the mirrored subscription differs from the
// newest event of it; "" when it does not.
func checkNewest(got *billing.Subscription, want genEvent) string {
	switch {
	case got == nil:
		return fmt.Sprintf("%s: not mirrored, want %s from %s", want.Subscription, want.Status, want.ID)
	case got.Status != want.Status || !got.CurrentPeriodEnd.Equal(want.CurrentPeriodEnd) ||
		got.CancelAtPeriodEnd != want.CancelAtPeriodEnd || got.PriceID != want.PriceID ||
		!got.EventAt.Equal(want.Created.Truncate(time.Second)):
		return fmt.Sprintf("%s: got %s until %v (cancel %t, %s, event at %v), want %s until %v (cancel %t, %s, event at %v) from %s",
			want.Subscription, got.Status, got.CurrentPeriodEnd, got.CancelAtPeriodEnd, got.PriceID, got.EventAt,
			want.Status, want.CurrentPeriodEnd, want.CancelAtPeriodEnd, want.PriceID, want.Created, want.ID)
	}
	return ""
}

// TestWebhookOrderingProperty delivers random histories of subscriptions
// shuffled, with duplicates, from several goroutines at once, through the
// same parsing and ledger the receiver uses: whatever the order, the mirror
// ends with the newest event of each subscription, and each event is
// stored once.
func TestWebhookOrderingProperty(t *testing.T) {
	// Each sequence is the history of one subscription. Sequences are
	// delivered a batch at a time, the deliveries of a batch shuffled
	// together, so that the histories of several subscriptions interleave.
	const sequences, batch, workers = 1000, 5, 6
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		seed := uint64(time.Now().UnixNano())
		r := rand.New(rand.NewPCG(seed, 1))
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		events, deliveries := 0, 0
		var duplicates, ties atomic.Int64
		for first := 0; first < sequences; first += batch {
			var seqs []sequence
			var all []genEvent
			for i := first; i < first+batch; i++ {
				seq := randomSequence(r, fmt.Sprintf("p%d", i), base, 1)
				seqs = append(seqs, seq)
				all = append(all, seq.deliveries(r)...)
				events += len(seq.Events)
			}
			r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			deliveries += len(all)
			concurrently(all, workers, func(ev genEvent) {
				parsed, err := stripeadapter.ParseEvent(ev.Payload, p.ID, billing.EnvTest)
				if err != nil {
					t.Errorf("%s: parse: %v", ev.ID, err)
					return
				}
				res, err := db.ApplyEvent(ctx, parsed.Event, parsed.Change)
				if err != nil {
					t.Errorf("%s: apply: %v", ev.ID, err)
				}
				if res.Duplicate {
					duplicates.Add(1)
				}
				ties.Add(int64(len(res.Ties)))
			})
			for i, seq := range seqs {
				for sub, want := range seq.Newest {
					got, err := db.FindSubscription(ctx, p.ID, billing.EnvTest, sub)
					if err != nil {
						got = nil
					}
					if msg := checkNewest(got, want); msg != "" {
						t.Errorf("sequence %d: %s", first+i, msg)
					}
				}
			}
			if t.Failed() {
				t.Fatalf("seed %d", seed)
			}
		}
		if got, want := duplicates.Load(), int64(deliveries-events); got != want {
			t.Errorf("duplicates: got %d, want %d", got, want)
		}
		if ties.Load() != 0 {
			t.Errorf("ties: got %d, want none", ties.Load())
		}
		ledger := 0
		after := ""
		for {
			evs, more, err := db.ListWebhookEvents(ctx, p.ID, billing.EnvTest, 100, after)
			if err != nil {
				t.Fatal(err)
			}
			ledger += len(evs)
			if !more {
				break
			}
			after = evs[len(evs)-1].ID
		}
		if ledger != events {
			t.Errorf("ledger: got %d events, want %d", ledger, events)
		}
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	})
}

// TestWebhookOrderingPropertyHTTP runs fewer random histories through the
// receiver itself, signed and concurrent, and reads the result back through
// the API.
func TestWebhookOrderingPropertyHTTP(t *testing.T) {
	const sequences, workers = 25, 6
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		seed := uint64(time.Now().UnixNano())
		r := rand.New(rand.NewPCG(seed, 2))
		base := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
		total := 0
		for i := range sequences {
			seq := randomSequence(r, fmt.Sprintf("h%d", i), base, 3)
			email := fmt.Sprintf("Buyer.%d@Example.com", i)
			p.mustDeliver(t, customerEvent(t, seq.Customer, email), "applied")
			concurrently(seq.deliveries(r), workers, func(ev genEvent) {
				body, sig := stripetest.SignedPayload(t, ev.Payload, p.WebhookKey, time.Time{})
				status, b, err := e.postWebhook(webhookPath(p.ProjectID, billing.EnvTest), body, sig)
				if err != nil || status != http.StatusOK {
					t.Errorf("sequence %d: %s: got %d %s %v, want 200", i, ev.ID, status, b, err)
				}
			})
			// The current subscription is the newest state's active,
			// trialing or past due one that ends last.
			var want *genEvent
			for sub, ev := range seq.Newest {
				if msg := checkNewest(e.subscription(t, p.ProjectID, sub), ev); msg != "" {
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
