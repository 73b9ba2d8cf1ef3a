package stripetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	billing "github.com/stackfordevs/billing"
)

// HistoryEvent is one generated subscription event and the state it carries.
type HistoryEvent struct {
	ID                string
	Payload           []byte
	Subscription      string
	Created           time.Time
	Status            string
	CurrentPeriodEnd  time.Time
	CancelAtPeriodEnd bool
	PriceID           string
}

// historyKinds pairs each subscription event type with the statuses it can
// carry.
var historyKinds = []struct {
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

// History is a random history of a few subscriptions of one customer.
type History struct {
	Customer string
	Events   []HistoryEvent          // in the order Stripe created them
	Newest   map[string]HistoryEvent // by subscription
}

// RandomHistory returns the events of 1 to maxSubs subscriptions of the
// customer cus_<name>, 2 to 5 each, in either API shape, created after base.
// The events of one subscription are at least a second apart, so that no
// two of them tie.
func RandomHistory(r *rand.Rand, name string, base time.Time, maxSubs int) History {
	h := History{Customer: "cus_" + name, Newest: map[string]HistoryEvent{}}
	for j := range 1 + r.IntN(maxSubs) {
		sub := fmt.Sprintf("sub_%s_%d", name, j)
		at := base.Add(time.Duration(r.IntN(3600)) * time.Second)
		for k := range 2 + r.IntN(4) {
			at = at.Add(time.Duration(1+r.IntN(120)) * time.Second)
			kind := historyKinds[r.IntN(len(historyKinds))]
			ev := HistoryEvent{
				ID:                fmt.Sprintf("evt_%s_%d_%d", name, j, k),
				Subscription:      sub,
				Created:           at,
				Status:            kind.statuses[r.IntN(len(kind.statuses))],
				CurrentPeriodEnd:  at.Add(time.Duration(1+r.IntN(60)) * 24 * time.Hour),
				CancelAtPeriodEnd: r.IntN(2) == 0,
				PriceID:           fmt.Sprintf("price_%d", r.IntN(3)),
			}
			ev.Payload = SubscriptionEvent(SubscriptionEventOptions{
				EventID: ev.ID, Type: kind.typ, Created: at, Shape: []string{"2023", "2025"}[r.IntN(2)],
				SubscriptionID: sub, CustomerID: h.Customer, Status: ev.Status, PriceID: ev.PriceID,
				ProductID: "prod_" + ev.PriceID, CurrentPeriodEnd: ev.CurrentPeriodEnd, CancelAtPeriodEnd: ev.CancelAtPeriodEnd,
			})
			h.Events = append(h.Events, ev)
			h.Newest[sub] = ev
		}
	}
	return h
}

// Deliveries returns the events shuffled, each one to three times (a
// quarter of them more than once), as Stripe may deliver them.
func (h History) Deliveries(r *rand.Rand) []HistoryEvent {
	var out []HistoryEvent
	for _, ev := range h.Events {
		out = append(out, ev)
		for n := 1; n < 3 && r.IntN(4) == 0; n++ {
			out = append(out, ev)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Mismatch reports how a mirrored subscription differs from the state e
// carries; "" when it does not.
func (e HistoryEvent) Mismatch(got *billing.Subscription) string {
	switch {
	case got == nil:
		return fmt.Sprintf("%s: not mirrored, want %s from %s", e.Subscription, e.Status, e.ID)
	case got.Status != e.Status || !got.CurrentPeriodEnd.Equal(e.CurrentPeriodEnd) ||
		got.CancelAtPeriodEnd != e.CancelAtPeriodEnd || got.PriceID != e.PriceID ||
		!got.EventAt.Equal(e.Created.Truncate(time.Second)):
		return fmt.Sprintf("%s: got %s until %v (cancel %t, %s, event at %v), want %s until %v (cancel %t, %s, event at %v) from %s",
			e.Subscription, got.Status, got.CurrentPeriodEnd, got.CancelAtPeriodEnd, got.PriceID, got.EventAt,
			e.Status, e.CurrentPeriodEnd, e.CancelAtPeriodEnd, e.PriceID, e.Created, e.ID)
	}
	return ""
}

// Concurrently calls fn for each item from workers goroutines, as several
// deliveries of Stripe's arrive at once.
func Concurrently[T any](items []T, workers int, fn func(T)) {
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
