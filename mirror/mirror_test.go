package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// TestIngestOrderingProperty delivers random histories of subscriptions
// shuffled, with duplicates, from several goroutines at once, signed,
// through Ingest: whatever the order, the mirror ends with the newest event
// of each subscription, and each event is stored once.
func TestIngestOrderingProperty(t *testing.T) {
	// Each history is of one subscription. Histories are delivered a batch
	// at a time, the deliveries of a batch shuffled together, so that the
	// histories of several subscriptions interleave.
	const histories, batch, workers = 1000, 5, 6
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		seed := uint64(time.Now().UnixNano())
		r := rand.New(rand.NewPCG(seed, 1))
		base := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
		events, deliveries := 0, 0
		var duplicates atomic.Int64
		for first := 0; first < histories; first += batch {
			var hs []stripetest.History
			var all []stripetest.HistoryEvent
			for i := first; i < first+batch; i++ {
				hist := stripetest.RandomHistory(r, fmt.Sprintf("p%d", i), base, 1)
				hs = append(hs, hist)
				all = append(all, hist.Deliveries(r)...)
				events += len(hist.Events)
			}
			r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			deliveries += len(all)
			stripetest.Concurrently(all, workers, func(ev stripetest.HistoryEvent) {
				rcpt, err := h.deliver(t, ev.Payload)
				if err != nil {
					t.Errorf("%s: %v", ev.ID, err)
				}
				if rcpt.Duplicate {
					duplicates.Add(1)
				}
			})
			for i, hist := range hs {
				for sub, want := range hist.Newest {
					got, err := db.FindSubscription(ctx, h.p.ID, billing.EnvTest, sub)
					if err != nil {
						got = nil
					}
					if msg := want.Mismatch(got); msg != "" {
						t.Errorf("history %d: %s", first+i, msg)
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
		if n := h.stripe.count("get subscription"); n != 0 {
			t.Errorf("Stripe reads: got %d, want none (no ties)", n)
		}
		ledger := 0
		after := ""
		for {
			evs, more, err := db.ListWebhookEvents(ctx, h.p.ID, billing.EnvTest, 100, after)
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

func TestIngestErrors(t *testing.T) {
	h := newHarness(t, storetest.MustOpenDB(t, storetest.FakeSealer{}))
	var outcomes []string
	h = h.instance(t, func(c *mirror.Config) {
		c.Observe = func(typ, outcome string) { outcomes = append(outcomes, typ+":"+outcome) }
	})
	ev := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{Type: "customer.subscription.created"})
	ctx := context.Background()

	body, sig := stripetest.SignedPayload(t, ev, "whsec_other", time.Time{})
	_, err := h.m.Ingest(ctx, mirror.Delivery{ProjectID: h.p.ID, Environment: billing.EnvTest, Payload: body, Signature: sig})
	if be := (*billing.Error)(nil); !errors.As(err, &be) || be.Code != billing.EINVALID || be.Param != "Stripe-Signature" {
		t.Errorf("another secret: got %v, want EINVALID naming Stripe-Signature", err)
	}
	_, err = h.m.Ingest(ctx, mirror.Delivery{ProjectID: h.p.ID, Environment: billing.EnvLive, Payload: body, Signature: sig})
	if be := (*billing.Error)(nil); !errors.As(err, &be) || be.Code != billing.ENOTFOUND || be.Param != "environment" {
		t.Errorf("no secret: got %v, want ENOTFOUND naming environment", err)
	}
	h.mustDeliver(t, ev, billing.EventApplied)
	if r, err := h.deliver(t, ev); err != nil || !r.Duplicate {
		t.Errorf("again: got %+v, %v; want a duplicate", r, err)
	}
	want := []string{":rejected", "customer.subscription.created:received", "customer.subscription.created:applied",
		"customer.subscription.created:received", "customer.subscription.created:duplicate"}
	if !slices.Equal(outcomes, want) {
		t.Errorf("observed %v, want %v", outcomes, want)
	}
}

// TestWritesPublish shows that every write that changes the mirror
// announces it on the bus once committed, and that a write that changes
// nothing announces nothing.
func TestWritesPublish(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		key := bus.MirrorKey(h.p.ID, billing.EnvTest)
		base := time.Now().Add(-time.Hour).Truncate(time.Second)
		h.stripe.products["prod_test_default"] = billing.Product{ID: "prod_test_default", Name: "Default", Active: true}
		event := func(status string, at time.Time) []byte {
			return stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				SubscriptionID: "sub_pub", CustomerID: "cus_pub", Status: status, Created: at})
		}
		for _, step := range []struct {
			name  string
			write func() error
			keys  int
		}{
			// The product read that names the plan is a write of its own.
			{"Event", func() error { _, err := h.deliver(t, event("active", base)); return err }, 2},
			{"OlderEvent", func() error { _, err := h.deliver(t, event("past_due", base.Add(-time.Second))); return err }, 0},
			{"Duplicate", func() error { _, err := h.deliver(t, event("active", base)); return err }, 0},
			{"SaveCustomer", func() error {
				return h.m.SaveCustomer(ctx, billing.Customer{ID: "cus_pub", ProjectID: h.p.ID, Environment: billing.EnvTest, Email: "a@x.com"})
			}, 1},
			{"SaveCustomerAgain", func() error {
				return h.m.SaveCustomer(ctx, billing.Customer{ID: "cus_pub", ProjectID: h.p.ID, Environment: billing.EnvTest, Email: "a@x.com"})
			}, 0},
			{"DeleteCustomer", func() error { return h.m.DeleteCustomer(ctx, h.p.ID, billing.EnvTest, "cus_pub", time.Time{}) }, 1},
			{"Refresh", func() error {
				h.stripe.subscriptions["sub_pub"] = billing.Subscription{ID: "sub_pub", Status: "canceled", ProductID: "prod_test_default"}
				return h.m.Refresh(ctx, h.p.ID, billing.EnvTest, mirror.Refs{Subscriptions: []string{"sub_pub"}})
			}, 1},
		} {
			if err := step.write(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			got := h.keys.take()
			if len(got) != step.keys || slices.ContainsFunc(got, func(k bus.Key) bool { return k != key }) {
				t.Errorf("%s: published %v, want %d of %v", step.name, got, step.keys, key)
			}
		}
	})
}

// TestCustomerEmailChange shows that a customer's new email finds its
// subscription at once after the service changes it, although "none" was
// cached for that email.
func TestCustomerEmailChange(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		h.mustDeliver(t, customerEvent(t, "cus_mail", "old@example.com", at), billing.EventApplied)
		h.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_mail", CustomerID: "cus_mail", Created: at}), billing.EventApplied)
		if s := h.current(t, "old@example.com"); s == nil || s.ID != "sub_mail" {
			t.Fatalf("old email: got %+v, want sub_mail", s)
		}
		if s := h.current(t, "new@example.com"); s != nil {
			t.Fatalf("new email before the change: got %+v, want none", s)
		}
		c, err := db.FindCustomer(ctx, h.p.ID, billing.EnvTest, "cus_mail")
		if err != nil {
			t.Fatal(err)
		}
		c.Email, c.EventAt = "New@Example.com", time.Now()
		if err := h.m.SaveCustomer(ctx, *c); err != nil {
			t.Fatal(err)
		}
		if s := h.current(t, "new@example.com"); s == nil || s.ID != "sub_mail" {
			t.Errorf("new email after the change: got %+v, want sub_mail", s)
		}
		if s := h.current(t, "old@example.com"); s != nil {
			t.Errorf("old email after the change: got %+v, want none", s)
		}
		if err := h.m.DeleteCustomer(ctx, h.p.ID, billing.EnvTest, "cus_mail", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindCustomer(ctx, h.p.ID, billing.EnvTest, "cus_mail"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("deleted customer: got %v, want not found", err)
		}
	})
}

// TestInstancesWithoutBus runs two instances of the mirror on one database
// without a bus between them (no Redis): the one that did not make a change
// answers the old state until its answers and index expire, then the new.
func TestInstancesWithoutBus(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		one := newHarness(t, db)
		two := one.instance(t)
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		one.mustDeliver(t, customerEvent(t, "cus_old", "old@example.com", at), billing.EventApplied)
		one.mustDeliver(t, customerEvent(t, "cus_new", "new@example.com", at), billing.EventApplied)
		one.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_old", CustomerID: "cus_old", Created: at}), billing.EventApplied)
		// Instance two answers, and after a burst of misses indexes the
		// project (the index is built in the background).
		if s := two.current(t, "old@example.com"); s == nil || s.ID != "sub_old" {
			t.Fatalf("before: got %+v, want sub_old", s)
		}
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			two.current(t, fmt.Sprintf("miss%d@example.com", i))
			// Written behind the mirrors' backs: only an answer from the
			// index misses it.
			probe := fmt.Sprintf("probe%d@example.com", i)
			one.mustDeliver(t, customerEvent(t, fmt.Sprintf("cus_probe%d", i), probe, at), billing.EventApplied)
			if _, err := db.Apply(context.Background(), store.Write{ProjectID: one.p.ID, Environment: billing.EnvTest, Origin: store.FromStripe,
				Change: billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: fmt.Sprintf("sub_probe%d", i),
					CustomerID: fmt.Sprintf("cus_probe%d", i), Status: "active", CurrentPeriodEnd: time.Now().Add(time.Hour), EventAt: at}}}}); err != nil {
				t.Fatal(err)
			}
			if i > 20 && two.current(t, probe) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("instance two never indexed the project")
			}
		}
		// Instance one cancels the old subscription and activates a new one.
		one.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_old", CustomerID: "cus_old", Status: "canceled", Created: at.Add(time.Minute)}), billing.EventApplied)
		one.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			SubscriptionID: "sub_new", CustomerID: "cus_new", Created: at.Add(time.Minute)}), billing.EventApplied)
		if s := one.current(t, "old@example.com"); s != nil {
			t.Errorf("instance one, old: got %+v, want none at once", s)
		}
		// Instance two heard nothing: it may answer the old state...
		two.clock.Advance(29 * time.Second)
		if s := two.current(t, "old@example.com"); s == nil {
			t.Log("instance two saw the change before its answers expired")
		}
		// ...but not once its answers and index have expired.
		two.clock.Advance(time.Second)
		if s := two.current(t, "old@example.com"); s != nil {
			t.Errorf("instance two after the expiry, old: got %+v, want none", s)
		}
		if s := two.current(t, "new@example.com"); s == nil || s.ID != "sub_new" {
			t.Errorf("instance two after the expiry, new: got %+v, want sub_new", s)
		}
	})
}

// TestLapsedPeriod shows that a subscription still active two hours after
// its period ended is re-read from Stripe before it is answered, at most
// once per subscription within RecheckEvery.
func TestLapsedPeriod(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db)
		created := time.Now().Add(-31 * 24 * time.Hour).Truncate(time.Second)
		ended := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
		renewed := ended.Add(30 * 24 * time.Hour)
		h.mustDeliver(t, customerEvent(t, "cus_lapse", "lapse@example.com", created), billing.EventApplied)
		h.mustDeliver(t, customerEvent(t, "cus_gone", "gone@example.com", created), billing.EventApplied)
		for _, id := range []string{"sub_lapse", "sub_gone"} {
			h.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: id,
				CustomerID: "cus_" + id[4:], Created: created, CurrentPeriodEnd: ended}), billing.EventApplied)
		}
		// Stripe renewed sub_lapse; the renewal event never came. Stripe
		// fails to answer for sub_gone.
		h.stripe.subscriptions["sub_lapse"] = billing.Subscription{ID: "sub_lapse", CustomerID: "cus_lapse", Status: "active",
			PriceID: "price_test_default", CurrentPeriodStart: ended, CurrentPeriodEnd: renewed}
		got := h.current(t, "lapse@example.com")
		if got == nil || !got.CurrentPeriodEnd.Equal(renewed) {
			t.Fatalf("got %+v, want the renewed period ending %v", got, renewed)
		}
		if n := h.stripe.count("get subscription sub_lapse"); n != 1 {
			t.Errorf("reads: got %d, want 1", n)
		}

		h.stripe.fail(errStripe)
		for range 3 {
			if got := h.current(t, "gone@example.com"); got == nil || !got.CurrentPeriodEnd.Equal(ended) {
				t.Errorf("Stripe failing: got %+v, want the stored answer", got)
			}
		}
		if n := h.stripe.count("get subscription sub_gone"); n != 1 {
			t.Errorf("reads while Stripe fails: got %d, want 1 (at most once within RecheckEvery)", n)
		}
		h.stripe.fail(nil)
		h.clock.Advance(5 * time.Minute)
		h.stripe.subscriptions["sub_gone"] = billing.Subscription{ID: "sub_gone", CustomerID: "cus_gone", Status: "canceled",
			PriceID: "price_test_default", CurrentPeriodEnd: ended}
		if got := h.current(t, "gone@example.com"); got != nil {
			t.Errorf("after RecheckEvery: got %+v, want none (Stripe says canceled)", got)
		}
		if n := h.stripe.count("get subscription sub_gone"); n != 2 {
			t.Errorf("reads after RecheckEvery: got %d, want 2", n)
		}
	})
}

// TestPlanNames shows that a subscription whose product the mirror has not
// seen gets its plan name from one product read.
func TestPlanNames(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db)
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		h.stripe.products["prod_unseen"] = billing.Product{ID: "prod_unseen", Name: "Unseen Gold", Active: true}
		h.mustDeliver(t, customerEvent(t, "cus_plan", "plan@example.com", at), billing.EventApplied)
		for _, id := range []string{"sub_plan1", "sub_plan2"} {
			h.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: id,
				CustomerID: "cus_plan", Created: at, ProductID: "prod_unseen", PriceID: "price_unseen"}), billing.EventApplied)
		}
		if s := h.current(t, "plan@example.com"); s == nil || s.PlanName != "Unseen Gold" {
			t.Errorf("got %+v, want the plan named Unseen Gold", s)
		}
		if n := h.stripe.count("get product prod_unseen"); n != 1 {
			t.Errorf("product reads: got %d, want 1", n)
		}
		// A product that Stripe does not give is not asked for again at
		// every event.
		for i := range 3 {
			h.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: fmt.Sprintf("sub_nop%d", i),
				Created: at, ProductID: "prod_missing"}), billing.EventApplied)
		}
		if n := h.stripe.count("get product prod_missing"); n != 1 {
			t.Errorf("reads of a missing product: got %d, want 1", n)
		}
	})
}

// TestCancelAt shows that a subscription canceled the way the customer
// portal now does it (cancel_at, cancel_at_period_end false) does not renew.
func TestCancelAt(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db)
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		end := at.Add(30 * 24 * time.Hour)
		h.mustDeliver(t, customerEvent(t, "cus_cancel", "cancel@example.com", at), billing.EventApplied)
		for i, tc := range []struct {
			name     string
			cancelAt time.Time
			want     bool
		}{
			{"AtPeriodEnd", end, true},
			{"BeforePeriodEnd", end.Add(-24 * time.Hour), true},
			{"AfterPeriodEnd", end.Add(24 * time.Hour), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h.mustDeliver(t, stripetest.Event(t, "customer.subscription.updated.2025-03-31", map[string]any{
					"id": "evt_cancel_" + tc.name, "created": at.Unix() + int64(i),
					"data.object.id": "sub_cancel", "data.object.customer": "cus_cancel", "data.object.status": "active",
					"data.object.trial_end": nil, "data.object.cancel_at_period_end": false, "data.object.cancel_at": tc.cancelAt.Unix(),
					"data.object.items.data.0.current_period_end": end.Unix(), "data.object.items.data.1.current_period_end": end.Unix(),
				}), billing.EventApplied)
				s := h.current(t, "cancel@example.com")
				if s == nil || s.CancelAtPeriodEnd || s.CancelAt == nil || !s.CancelAt.Equal(tc.cancelAt) {
					t.Fatalf("got %+v, want cancel_at %v without cancel_at_period_end", s, tc.cancelAt)
				}
				if s.EndsAtPeriodEnd() != tc.want {
					t.Errorf("ends at period end: got %t, want %t", s.EndsAtPeriodEnd(), tc.want)
				}
			})
		}
	})
}

// TestCurrentSubscriptionWho answers by email, owner and customer id.
func TestCurrentSubscriptionWho(t *testing.T) {
	h := newHarness(t, storetest.MustOpenDB(t, storetest.FakeSealer{}))
	ctx := context.Background()
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	h.mustDeliver(t, customerEvent(t, "cus_who", "who@example.com", at), billing.EventApplied)
	h.mustDeliver(t, stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_who",
		CustomerID: "cus_who", Created: at, Metadata: map[string]string{"user_id": "user_who"}}), billing.EventApplied)
	for _, who := range []billing.Who{{Email: "WHO@example.com"}, {UserID: "user_who"}, {CustomerID: "cus_who"}} {
		s, err := h.m.CurrentSubscription(ctx, h.p.ID, billing.EnvTest, who)
		if err != nil || s == nil || s.ID != "sub_who" {
			t.Errorf("%+v: got %+v, %v; want sub_who", who, s, err)
		}
	}
	for _, who := range []billing.Who{{}, {Email: "who@example.com", CustomerID: "cus_who"}} {
		if _, err := h.m.CurrentSubscription(ctx, h.p.ID, billing.EnvTest, who); billing.ErrorCode(err) != billing.EINVALID {
			t.Errorf("%+v: got %v, want EINVALID", who, err)
		}
	}
}

// TestInTx shows the hooks that run in the transaction of a change: they see
// what changed, and their failure leaves nothing written (a webhook event is
// then refused, for Stripe to deliver again).
func TestInTx(t *testing.T) {
	storetest.EachDB(t, storetest.FakeSealer{}, func(t *testing.T, db *store.DB) {
		fail := true
		var seen [][]billing.ObjectChange
		h := newHarness(t, db, func(c *mirror.Config) {
			c.InTx = []mirror.TxHook{func(tx *store.Tx, changes []billing.ObjectChange) error {
				if fail {
					return errors.New("outbox is full")
				}
				seen = append(seen, changes)
				return nil
			}}
		})
		ev := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{SubscriptionID: "sub_tx", CustomerID: "cus_tx", Status: "trialing"})
		if _, err := h.deliver(t, ev); billing.ErrorCode(err) != billing.EUNAVAILABLE {
			t.Fatalf("failing hook: got %v, want EUNAVAILABLE", err)
		}
		if _, err := db.FindSubscription(context.Background(), h.p.ID, billing.EnvTest, "sub_tx"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("after a failing hook: got %v, want nothing written", err)
		}
		fail = false
		h.mustDeliver(t, ev, billing.EventApplied)
		want := []billing.ObjectChange{{Kind: billing.KindSubscription, ID: "sub_tx", Op: billing.Created, Status: "trialing", CustomerID: "cus_tx"}}
		if len(seen) != 1 || !slices.Equal(seen[0], want) {
			t.Errorf("hook saw %+v, want %+v", seen, want)
		}
		if _, err := h.deliver(t, ev); err != nil || len(seen) != 1 {
			t.Errorf("duplicate: %v, hook called %d times, want once", err, len(seen))
		}
	})
}

// refusingStore refuses, as a database refuses a value it cannot hold, every
// write whose change is not empty, and with events every write when all is
// set.
type refusingStore struct {
	*store.DB
	all bool
}

func (s refusingStore) Apply(ctx context.Context, w store.Write) (store.Applied, error) {
	if s.all || !w.Change.Empty() {
		return store.Applied{}, billing.FieldErrorf("", "The database refused a value.")
	}
	return s.DB.Apply(ctx, w)
}

// TestIngestRefusedValue shows that an event the database refuses a value
// of is acknowledged, never answered with an error that Stripe would retry
// forever: kept as failed when the event itself can be stored.
func TestIngestRefusedValue(t *testing.T) {
	db := storetest.MustOpenDB(t, storetest.FakeSealer{})
	h := newHarness(t, db)
	ev := stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{EventID: "evt_refused", Type: "customer.subscription.created"})

	h = h.instance(t, func(c *mirror.Config) { c.Store = refusingStore{DB: db} })
	r, err := h.deliver(t, ev)
	if err != nil || r.Status != billing.EventFailed {
		t.Fatalf("got %+v, %v; want the event acknowledged as failed", r, err)
	}
	stored, err := db.FindWebhookEvent(context.Background(), h.p.ID, billing.EnvTest, "evt_refused")
	if err != nil || stored.Status != billing.EventFailed || stored.Error == "" {
		t.Errorf("ledger: got %+v, %v; want the event stored as failed with a reason", stored, err)
	}

	h = h.instance(t, func(c *mirror.Config) { c.Store = refusingStore{DB: db, all: true} })
	ev = stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{EventID: "evt_refused_whole", Type: "customer.subscription.created"})
	if r, err := h.deliver(t, ev); err != nil || r.Status != billing.EventFailed {
		t.Errorf("event refused whole: got %+v, %v; want it acknowledged as failed", r, err)
	}
}
