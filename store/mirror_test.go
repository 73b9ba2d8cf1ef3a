package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// event returns a webhook event of project p in the test environment.
func event(p *billing.Project, id string, created time.Time) billing.WebhookEvent {
	return billing.WebhookEvent{ProjectID: p.ID, Environment: billing.EnvTest, ID: id, Type: "test.event",
		APIVersion: "2023-10-16", Created: created, Payload: []byte(`{"id":"` + id + `"}`)}
}

// applier applies one-object events with fresh event ids.
type applier struct {
	t  *testing.T
	db *store.DB
	p  *billing.Project
	n  int
}

func (a *applier) apply(change billing.MirrorChange) store.ApplyResult {
	a.t.Helper()
	a.n++
	res, err := a.db.ApplyEvent(context.Background(), event(a.p, fmt.Sprintf("evt_%d", a.n), t0), change)
	must(a.t, err)
	return res
}

func TestApplyEventDuplicate(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		ev := event(p, "evt_1", at(0))
		res, err := db.ApplyEvent(ctx, ev, billing.MirrorChange{
			Customers: []billing.Customer{{ID: "cus_1", Name: "first", EventAt: at(1)}}})
		must(t, err)
		if res.Duplicate || res.Written != 1 {
			t.Errorf("first delivery: got %+v", res)
		}
		res, err = db.ApplyEvent(ctx, ev, billing.MirrorChange{
			Customers: []billing.Customer{{ID: "cus_1", Name: "second", EventAt: at(2)}}})
		must(t, err)
		if !res.Duplicate || res.Written != 0 {
			t.Errorf("second delivery: got %+v, want a duplicate", res)
		}
		c, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		must(t, err)
		if c.Name != "first" {
			t.Errorf("customer after a duplicate: got %q, want first", c.Name)
		}

		// The same event id in another environment is another event.
		live := ev
		live.Environment = billing.EnvLive
		res, err = db.ApplyEvent(ctx, live, billing.MirrorChange{})
		must(t, err)
		if res.Duplicate {
			t.Error("the same id in live: got a duplicate")
		}

		got, err := db.FindWebhookEvent(ctx, p.ID, billing.EnvTest, "evt_1")
		must(t, err)
		if string(got.Payload) != `{"id":"evt_1"}` || got.Status != billing.EventApplied || got.Type != "test.event" ||
			got.APIVersion != "2023-10-16" || !got.Created.Equal(at(0)) || got.ReceivedAt.IsZero() {
			t.Errorf("stored event: got %+v", got)
		}
		got, err = db.FindWebhookEvent(ctx, p.ID, billing.EnvLive, "evt_1")
		must(t, err)
		if got.Status != billing.EventIgnored {
			t.Errorf("event with an empty change: got status %q, want %q", got.Status, billing.EventIgnored)
		}
		_, err = db.FindWebhookEvent(ctx, p.ID, billing.EnvTest, "evt_none")
		wantCode(t, err, billing.ENOTFOUND)
		_, err = db.ApplyEvent(ctx, event(&billing.Project{ID: "prj_none"}, "evt_9", at(0)), billing.MirrorChange{})
		wantCode(t, err, billing.ENOTFOUND)
	})
}

func TestApplyEventOrdering(t *testing.T) {
	kinds := []struct {
		name   string
		id     string
		change func(eventAt time.Time, v string) billing.MirrorChange
		read   func(db *store.DB, p *billing.Project) (string, error)
	}{
		{"Customer", "cus_1",
			func(e time.Time, v string) billing.MirrorChange {
				return billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Name: v, EventAt: e}}}
			},
			func(db *store.DB, p *billing.Project) (string, error) {
				c, err := db.FindCustomer(context.Background(), p.ID, billing.EnvTest, "cus_1")
				if err != nil {
					return "", err
				}
				return c.Name, nil
			}},
		{"Subscription", "sub_1",
			func(e time.Time, v string) billing.MirrorChange {
				return billing.MirrorChange{Subscriptions: []billing.Subscription{{ID: "sub_1", Status: v, EventAt: e}}}
			},
			func(db *store.DB, p *billing.Project) (string, error) {
				s, err := db.FindSubscription(context.Background(), p.ID, billing.EnvTest, "sub_1")
				if err != nil {
					return "", err
				}
				return s.Status, nil
			}},
		{"Product", "prod_1",
			func(e time.Time, v string) billing.MirrorChange {
				return billing.MirrorChange{Products: []billing.Product{{ID: "prod_1", Name: v, EventAt: e}},
					Subscriptions: nil}
			},
			func(db *store.DB, p *billing.Project) (string, error) {
				return planName(db, p, "prod_1", "")
			}},
		{"Price", "price_1",
			func(e time.Time, v string) billing.MirrorChange {
				return billing.MirrorChange{Prices: []billing.Price{{ID: "price_1", Nickname: v, EventAt: e}}}
			},
			func(db *store.DB, p *billing.Project) (string, error) {
				return planName(db, p, "", "price_1")
			}},
		{"CheckoutSession", "cs_1",
			func(e time.Time, v string) billing.MirrorChange {
				return billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{ID: "cs_1", Status: v, EventAt: e}}
			},
			func(db *store.DB, p *billing.Project) (string, error) {
				s, err := db.FindCheckoutSession(context.Background(), p.ID, billing.EnvTest, "cs_1")
				if err != nil {
					return "", err
				}
				return s.Status, nil
			}},
	}
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		for _, k := range kinds {
			t.Run(k.name, func(t *testing.T) {
				ctx := context.Background()
				p := storetest.MustCreateProject(t, db)
				a := &applier{t: t, db: db, p: p}
				check := func(step string, res store.ApplyResult, written, stale int, ties []string, want string) {
					t.Helper()
					if res.Written != written || res.Stale != stale || !slices.Equal(res.Ties, ties) {
						t.Errorf("%s: got %+v, want written=%d stale=%d ties=%v", step, res, written, stale, ties)
					}
					got, err := k.read(db, p)
					must(t, err)
					if got != want {
						t.Errorf("%s: stored %q, want %q", step, got, want)
					}
				}
				check("First", a.apply(k.change(at(10), "v10")), 1, 0, nil, "v10")
				check("Older", a.apply(k.change(at(5), "v5")), 0, 1, nil, "v10")
				// Sub-second parts do not count: Stripe's times are seconds.
				check("Tie", a.apply(k.change(at(10).Add(300*time.Millisecond), "v10b")), 0, 0, []string{k.id}, "v10")
				check("Newer", a.apply(k.change(at(11), "v11")), 1, 0, nil, "v11")

				// A read from Stripe wins a tie but not against newer state.
				must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, k.change(at(11), "read11")))
				got, err := k.read(db, p)
				must(t, err)
				if got != "read11" {
					t.Errorf("read at a tie: stored %q, want read11", got)
				}
				must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, k.change(at(3), "read3")))
				got, err = k.read(db, p)
				must(t, err)
				if got != "read11" {
					t.Errorf("older read: stored %q, want read11", got)
				}
			})
		}
	})
}

// planName returns the plan name of a fresh subscription on a product or
// a price.
func planName(db *store.DB, p *billing.Project, productID, priceID string) (string, error) {
	ctx := context.Background()
	err := db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{Subscriptions: []billing.Subscription{{
		ID: "sub_plan", ProductID: productID, PriceID: priceID, Status: "active", EventAt: time.Now()}}})
	if err != nil {
		return "", err
	}
	s, err := db.FindSubscription(ctx, p.ID, billing.EnvTest, "sub_plan")
	if err != nil {
		return "", err
	}
	return s.PlanName, nil
}

func TestApplyEventDeleted(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		a := &applier{t: t, db: db, p: p}
		a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Email: "a@x.com", EventAt: at(1)}}})
		a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Deleted: true, EventAt: at(3)}}})
		// The update that preceded the deletion arrives late.
		res := a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Email: "b@x.com", EventAt: at(2)}}})
		if res.Stale != 1 {
			t.Errorf("late update: got %+v, want stale", res)
		}
		_, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		wantCode(t, err, billing.ENOTFOUND)

		// A deletion that arrives before the creation keeps the customer gone.
		a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_2", Deleted: true, EventAt: at(5)}}})
		a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_2", Email: "c@x.com", EventAt: at(4)}}})
		_, err = db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_2")
		wantCode(t, err, billing.ENOTFOUND)
		list, _, err := db.ListCustomers(ctx, billing.CustomerFilter{ProjectID: p.ID, Environment: billing.EnvTest})
		must(t, err)
		if len(list) != 0 {
			t.Errorf("list after deletions: got %+v", list)
		}

		// A deleted product keeps its name for plan names.
		a.apply(billing.MirrorChange{Products: []billing.Product{{ID: "prod_1", Name: "Gold", Active: true, EventAt: at(1)}}})
		a.apply(billing.MirrorChange{Products: []billing.Product{{ID: "prod_1", Deleted: true, EventAt: at(2)}}})
		name, err := planName(db, p, "prod_1", "")
		must(t, err)
		if name != "Gold" {
			t.Errorf("plan name of a deleted product: got %q, want Gold", name)
		}
	})
}

func TestApplyEventOwnership(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		a := &applier{t: t, db: db, p: p}
		owner := func(id string) string {
			t.Helper()
			c, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, id)
			must(t, err)
			return c.UserID
		}

		t.Run("KeptWhenNewHasNone", func(t *testing.T) {
			a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", UserID: "user_1", EventAt: at(1)}}})
			a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Name: "n", EventAt: at(2)}}})
			if got := owner("cus_1"); got != "user_1" {
				t.Errorf("owner: got %q, want user_1", got)
			}
		})
		t.Run("SessionAfterCustomer", func(t *testing.T) {
			a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_2", EventAt: at(1)}}})
			a.apply(billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{ID: "cs_2", UserID: "user_2",
				CustomerID: "cus_2", Status: "complete", EventAt: at(1)}})
			if got := owner("cus_2"); got != "user_2" {
				t.Errorf("owner: got %q, want user_2", got)
			}
		})
		t.Run("SessionBeforeCustomer", func(t *testing.T) {
			a.apply(billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{ID: "cs_3", UserID: "user_3",
				CustomerID: "cus_3", Status: "complete", EventAt: at(1)}})
			_, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_3")
			wantCode(t, err, billing.ENOTFOUND)
			list, _, err := db.ListCustomers(ctx, billing.CustomerFilter{ProjectID: p.ID, Environment: billing.EnvTest,
				Email: ""})
			must(t, err)
			for _, c := range list {
				if c.ID == "cus_3" {
					t.Error("a customer known only from a session is listed")
				}
			}
			res := a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_3", Email: "c@x.com", EventAt: at(1)}}})
			if res.Written != 1 {
				t.Errorf("customer after its session: got %+v, want written", res)
			}
			if got := owner("cus_3"); got != "user_3" {
				t.Errorf("owner: got %q, want user_3", got)
			}
		})
		t.Run("FromLocalSession", func(t *testing.T) {
			must(t, db.CreateCheckoutSession(ctx, billing.CheckoutSession{ID: "cs_4", ProjectID: p.ID,
				Environment: billing.EnvTest, UserID: "user_4", Status: "open"}))
			a.apply(billing.MirrorChange{
				Customers:       []billing.Customer{{ID: "cus_4", EventAt: at(1)}},
				CheckoutSession: &billing.CheckoutSession{ID: "cs_4", CustomerID: "cus_4", Status: "complete", EventAt: at(1)},
			})
			if got := owner("cus_4"); got != "user_4" {
				t.Errorf("owner: got %q, want user_4", got)
			}
			s, err := db.FindCheckoutSession(ctx, p.ID, billing.EnvTest, "cs_4")
			must(t, err)
			if s.UserID != "user_4" || s.CustomerID != "cus_4" || s.Status != "complete" {
				t.Errorf("session: got %+v", s)
			}
		})
		t.Run("NotStolen", func(t *testing.T) {
			a.apply(billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{ID: "cs_5", UserID: "user_other",
				CustomerID: "cus_1", Status: "complete", EventAt: at(1)}})
			if got := owner("cus_1"); got != "user_1" {
				t.Errorf("owner: got %q, want user_1", got)
			}
		})
	})
}

func TestApplyEventSessionCustomer(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		a := &applier{t: t, db: db, p: p}
		find := func(id string) *billing.Customer {
			t.Helper()
			c, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, id)
			must(t, err)
			return c
		}
		completed := func(session, customer, email, user string, eventAt time.Time) billing.MirrorChange {
			return billing.MirrorChange{
				CheckoutSession: &billing.CheckoutSession{ID: session, CustomerID: customer, UserID: user,
					Status: "complete", EventAt: eventAt},
				Customers: []billing.Customer{{ID: customer, Email: email, UserID: user, EventAt: eventAt}},
			}
		}

		t.Run("Known", func(t *testing.T) {
			a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Name: "Ann", Email: "ann@x.com", EventAt: at(5)}}})
			a.apply(completed("cs_1", "cus_1", "other@x.com", "user_1", at(10)))
			c := find("cus_1")
			if c.Name != "Ann" || c.Email != "ann@x.com" || c.UserID != "user_1" || !c.EventAt.Equal(at(5)) {
				t.Errorf("customer after its session: got %+v", c)
			}
			// The customer's own events still apply.
			a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_1", Name: "Ann B", Email: "ann@x.com", EventAt: at(6)}}})
			if c := find("cus_1"); c.Name != "Ann B" || c.UserID != "user_1" {
				t.Errorf("customer after its update: got %+v", c)
			}
		})
		t.Run("Unknown", func(t *testing.T) {
			a.apply(completed("cs_2", "cus_2", "Bob@x.com", "user_2", at(10)))
			if c := find("cus_2"); c.Email != "Bob@x.com" || c.UserID != "user_2" {
				t.Errorf("customer known from its session: got %+v", c)
			}
			must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{Subscriptions: []billing.Subscription{{
				ID: "sub_2", CustomerID: "cus_2", Status: "active", EventAt: at(10)}}}))
			if s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, "bob@x.com"); err != nil || s.ID != "sub_2" {
				t.Errorf("subscription by the session's email: got %+v, %v", s, err)
			}
			// customer.created is older than the session, yet it replaces
			// what the session said, keeping the owner.
			a.apply(billing.MirrorChange{Customers: []billing.Customer{{ID: "cus_2", Name: "Bob", Email: "bob@x.com", EventAt: at(1)}}})
			if c := find("cus_2"); c.Name != "Bob" || c.UserID != "user_2" {
				t.Errorf("customer after customer.created: got %+v", c)
			}
		})
	})
}

func TestApplyEventIsolation(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pa := storetest.MustCreateProject(t, db)
		pb := storetest.MustCreateProject(t, db)
		// Objects are written to the event's project and environment,
		// whatever they say.
		_, err := db.ApplyEvent(ctx, event(pa, "evt_1", at(0)), billing.MirrorChange{
			Customers: []billing.Customer{{ID: "cus_1", ProjectID: pb.ID, Environment: billing.EnvLive,
				Email: "a@x.com", EventAt: at(1)}},
			Subscriptions: []billing.Subscription{{ID: "sub_1", ProjectID: pb.ID, CustomerID: "cus_1",
				Status: "active", EventAt: at(1)}},
		})
		must(t, err)
		if _, err := db.FindCustomer(ctx, pa.ID, billing.EnvTest, "cus_1"); err != nil {
			t.Errorf("customer in the event's project: %v", err)
		}
		for _, scope := range []struct {
			project string
			env     billing.Environment
		}{{pb.ID, billing.EnvTest}, {pb.ID, billing.EnvLive}, {pa.ID, billing.EnvLive}} {
			_, err := db.FindCustomer(ctx, scope.project, scope.env, "cus_1")
			wantCode(t, err, billing.ENOTFOUND)
			_, err = db.FindActiveSubscriptionByEmail(ctx, scope.project, scope.env, "a@x.com")
			wantCode(t, err, billing.ENOTFOUND)
		}
	})
}

func TestApplyEventConcurrent(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		const versions = 60
		type delivery struct {
			ev     billing.WebhookEvent
			change billing.MirrorChange
		}
		var deliveries []delivery
		for i := range versions {
			v := fmt.Sprintf("v%02d", i)
			d := delivery{
				ev: event(p, "evt_"+v, at(i)),
				change: billing.MirrorChange{
					Customers: []billing.Customer{{ID: "cus_1", Name: v, Email: v + "@x.com", EventAt: at(i)}},
					Subscriptions: []billing.Subscription{{ID: "sub_1", CustomerID: "cus_1", Status: "active",
						PlanName: v, CurrentPeriodEnd: at(1000 + i), EventAt: at(i)}},
					Products: []billing.Product{{ID: "prod_1", Name: v, EventAt: at(i)}},
				},
			}
			deliveries = append(deliveries, d)
			if i%3 == 0 { // Stripe delivers some events twice.
				deliveries = append(deliveries, d)
			}
		}
		rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

		work := make(chan delivery)
		var mu sync.Mutex
		var duplicates, written int
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for d := range work {
					res, err := db.ApplyEvent(ctx, d.ev, d.change)
					if err != nil {
						t.Error(err)
						continue
					}
					mu.Lock()
					if res.Duplicate {
						duplicates++
					}
					written += res.Written
					mu.Unlock()
				}
			})
		}
		for _, d := range deliveries {
			work <- d
		}
		close(work)
		wg.Wait()

		if want := len(deliveries) - versions; duplicates != want {
			t.Errorf("duplicates: got %d, want %d", duplicates, want)
		}
		last := fmt.Sprintf("v%02d", versions-1)
		c, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		must(t, err)
		if c.Name != last || !c.EventAt.Equal(at(versions-1)) {
			t.Errorf("customer: got %s at %v, want %s", c.Name, c.EventAt, last)
		}
		s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, last+"@X.com")
		must(t, err)
		if s.PlanName != last || !s.CurrentPeriodEnd.Equal(at(1000+versions-1)) {
			t.Errorf("subscription: got plan %q period end %v, want %s", s.PlanName, s.CurrentPeriodEnd, last)
		}
		events, _, err := db.ListWebhookEvents(ctx, p.ID, billing.EnvTest, 100, "")
		must(t, err)
		if len(events) != versions {
			t.Errorf("stored events: got %d, want %d", len(events), versions)
		}
	})
}

func TestFindActiveSubscriptionByEmail(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{
			Customers: []billing.Customer{
				{ID: "cus_a", Email: "Ann@Example.com", EventAt: at(1)},
				{ID: "cus_b", Email: "bob@example.com", EventAt: at(1)},
				{ID: "cus_c", EventAt: at(1)},
			},
			Products: []billing.Product{{ID: "prod_gold", Name: "Gold", EventAt: at(1)}},
			Prices: []billing.Price{
				{ID: "price_gold", ProductID: "prod_gold", Nickname: "gold monthly", EventAt: at(1)},
				{ID: "price_nick", ProductID: "prod_unknown", Nickname: "Silver", EventAt: at(1)},
			},
			Subscriptions: []billing.Subscription{
				// Ann: an old canceled one, an active one and a trialing one
				// that ends later.
				{ID: "sub_a1", CustomerID: "cus_a", Status: "canceled", PriceID: "price_gold", CurrentPeriodEnd: at(900), EventAt: at(1)},
				{ID: "sub_a2", CustomerID: "cus_a", Status: "active", PriceID: "price_nick", CurrentPeriodEnd: at(100), EventAt: at(1)},
				{ID: "sub_a3", CustomerID: "cus_a", Status: "trialing", PriceID: "price_gold", CurrentPeriodEnd: at(200),
					CancelAtPeriodEnd: true, TrialEnd: new(at(150)), UserID: "user_a", EventAt: at(1),
					Items: []billing.SubscriptionItem{{ID: "si_1", PriceID: "price_gold", ProductID: "prod_gold", Quantity: 2}}},
				// Bob: only incomplete and unpaid.
				{ID: "sub_b1", CustomerID: "cus_b", Status: "incomplete", CurrentPeriodEnd: at(300), EventAt: at(1)},
				{ID: "sub_b2", CustomerID: "cus_b", Status: "unpaid", CurrentPeriodEnd: at(300), EventAt: at(1)},
				// Carol's email is known only from the subscription.
				{ID: "sub_c1", CustomerID: "cus_c", Email: "Carol@Example.com", Status: "past_due",
					ProductID: "prod_gold", PlanName: "stale name", CurrentPeriodEnd: at(50), EventAt: at(1)},
				// Dave has no customer row at all.
				{ID: "sub_d1", CustomerID: "cus_d", Email: "dave@example.com", Status: "active",
					PlanName: "Plan From Event", CurrentPeriodEnd: at(50), EventAt: at(1)},
			},
		}))
		for _, tc := range []struct {
			name, email, wantID, wantPlan string
		}{
			{"LatestPeriodEnd", "ann@example.com", "sub_a3", "Gold"},
			{"CaseInsensitive", "  ANN@EXAMPLE.COM ", "sub_a3", "Gold"},
			{"EmailOnSubscription", "carol@example.com", "sub_c1", "Gold"},
			{"NoCustomerRow", "DAVE@example.com", "sub_d1", "Plan From Event"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, tc.email)
				must(t, err)
				if s.ID != tc.wantID || s.PlanName != tc.wantPlan {
					t.Errorf("got %s %q, want %s %q", s.ID, s.PlanName, tc.wantID, tc.wantPlan)
				}
			})
		}
		t.Run("Fields", func(t *testing.T) {
			s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, "ann@example.com")
			must(t, err)
			if s.Status != "trialing" || !s.CurrentPeriodEnd.Equal(at(200)) || !s.CancelAtPeriodEnd ||
				s.TrialEnd == nil || !s.TrialEnd.Equal(at(150)) || s.CustomerID != "cus_a" || s.UserID != "user_a" ||
				s.PriceID != "price_gold" || len(s.Items) != 1 || s.Items[0].Quantity != 2 {
				t.Errorf("got %+v", s)
			}
		})
		t.Run("PriceNickname", func(t *testing.T) {
			s, err := db.FindSubscription(ctx, p.ID, billing.EnvTest, "sub_a2")
			must(t, err)
			if s.PlanName != "Silver" {
				t.Errorf("plan name: got %q, want Silver", s.PlanName)
			}
		})
		for _, tc := range []struct{ name, email string }{
			{"ErrOnlyInactive", "bob@example.com"},
			{"ErrUnknown", "nobody@example.com"},
			{"ErrEmpty", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, tc.email)
				wantCode(t, err, billing.ENOTFOUND)
			})
		}
		t.Run("EmailFromLaterCustomer", func(t *testing.T) {
			// The subscription arrives first; its customer's email later.
			must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{
				Subscriptions: []billing.Subscription{{ID: "sub_e1", CustomerID: "cus_e", Status: "active", EventAt: at(1)}}}))
			_, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, "eve@example.com")
			wantCode(t, err, billing.ENOTFOUND)
			must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{
				Customers: []billing.Customer{{ID: "cus_e", Email: "Eve@example.com", EventAt: at(2)}}}))
			s, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, "eve@example.com")
			must(t, err)
			if s.ID != "sub_e1" {
				t.Errorf("got %s, want sub_e1", s.ID)
			}
		})
		t.Run("Canceled", func(t *testing.T) {
			must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{
				Subscriptions: []billing.Subscription{{ID: "sub_e1", CustomerID: "cus_e", Status: "canceled", EventAt: at(3)}}}))
			_, err := db.FindActiveSubscriptionByEmail(ctx, p.ID, billing.EnvTest, "eve@example.com")
			wantCode(t, err, billing.ENOTFOUND)
		})
		t.Run("ListForCustomer", func(t *testing.T) {
			subs, err := db.ListSubscriptionsForCustomer(ctx, p.ID, billing.EnvTest, "cus_a")
			must(t, err)
			var ids []string
			for _, s := range subs {
				ids = append(ids, s.ID)
			}
			if got := strings.Join(ids, ","); got != "sub_a1,sub_a3,sub_a2" {
				t.Errorf("got %s, want sub_a1,sub_a3,sub_a2", got)
			}
		})
		_, err := db.FindSubscription(ctx, p.ID, billing.EnvLive, "sub_a1")
		wantCode(t, err, billing.ENOTFOUND)
	})
}

func TestListWebhookEvents(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		for i, id := range []string{"evt_a", "evt_b", "evt_c", "evt_d"} {
			ev := event(p, id, at(i/2)) // a and b, c and d share a second
			if id == "evt_c" {
				ev.Status, ev.Error = billing.EventFailed, "unparsable object"
			}
			_, err := db.ApplyEvent(ctx, ev, billing.MirrorChange{})
			must(t, err)
		}
		list := func(limit int, after string) (string, bool) {
			t.Helper()
			events, more, err := db.ListWebhookEvents(ctx, p.ID, billing.EnvTest, limit, after)
			must(t, err)
			var ids []string
			for _, e := range events {
				if e.Payload != nil {
					t.Errorf("listed event %s has its payload", e.ID)
				}
				ids = append(ids, e.ID)
			}
			return strings.Join(ids, ","), more
		}
		for _, tc := range []struct {
			name     string
			limit    int
			after    string
			want     string
			wantMore bool
		}{
			{"All", 0, "", "evt_d,evt_c,evt_b,evt_a", false},
			{"Limit", 3, "", "evt_d,evt_c,evt_b", true},
			{"Cursor", 2, "evt_c", "evt_b,evt_a", false},
			{"CursorTie", 1, "evt_d", "evt_c", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, more := list(tc.limit, tc.after)
				if got != tc.want || more != tc.wantMore {
					t.Errorf("got %q more=%v, want %q more=%v", got, more, tc.want, tc.wantMore)
				}
			})
		}
		_, _, err := db.ListWebhookEvents(ctx, p.ID, billing.EnvTest, 10, "evt_none")
		wantCode(t, err, billing.EINVALID)
		ev, err := db.FindWebhookEvent(ctx, p.ID, billing.EnvTest, "evt_c")
		must(t, err)
		if ev.Status != billing.EventFailed || ev.Error != "unparsable object" || string(ev.Payload) != `{"id":"evt_c"}` {
			t.Errorf("failed event: got %+v", ev)
		}
		events, _, err := db.ListWebhookEvents(ctx, p.ID, billing.EnvLive, 10, "")
		must(t, err)
		if len(events) != 0 {
			t.Errorf("live events: got %d, want 0", len(events))
		}
	})
}
