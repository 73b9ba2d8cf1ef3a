package store_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

const day = 24 * time.Hour

// clock is a settable clock for the store.
type clock struct{ now atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}

func (c *clock) set(t time.Time)               { c.now.Store(t.UnixMicro()) }
func (c *clock) Now() time.Time                { return time.UnixMicro(c.now.Load()).UTC() }
func (c *clock) ago(d time.Duration) time.Time { return c.Now().Add(-d) }

// eachClockedDB runs fn on a fresh, migrated database of every backend whose
// clock is c.
func eachClockedDB(t *testing.T, c *clock, fn func(t *testing.T, db *store.DB)) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dsn, store.Options{Keyring: sealer, Now: c.Now})
		must(t, err)
		t.Cleanup(func() { db.Close() })
		must(t, db.Migrate(ctx))
		fn(t, db)
	})
}

// received stores an event of p received at receivedAt, created by Stripe
// at created, applying change; status "" lets ApplyEvent decide.
func received(t *testing.T, db *store.DB, p *billing.Project, env billing.Environment, id, status string, created, receivedAt time.Time, change billing.MirrorChange) {
	t.Helper()
	_, err := db.ApplyEvent(context.Background(), billing.WebhookEvent{
		ProjectID: p.ID, Environment: env, ID: id, Type: "customer.subscription.updated",
		APIVersion: "2023-10-16", Created: created, Payload: []byte(`{"id":"` + id + `"}`),
		Status: status, ReceivedAt: receivedAt,
	}, change)
	must(t, err)
}

// storedEvents returns the ids of the stored events of p in env.
func storedEvents(t *testing.T, db *store.DB, p *billing.Project, env billing.Environment) []string {
	t.Helper()
	evs, _, err := db.ListWebhookEvents(context.Background(), p.ID, env, 100, "")
	must(t, err)
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestPruneExpired(t *testing.T) {
	c := newClock(t0.Add(100 * day))
	const retention = 30 * day
	eachClockedDB(t, c, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		q := storetest.MustCreateProject(t, db)
		sub := func(status string, eventAt time.Time) billing.MirrorChange {
			return billing.MirrorChange{Subscriptions: []billing.Subscription{{
				ID: "sub_1", CustomerID: "cus_1", Email: "a@example.com", Status: status, EventAt: eventAt}}}
		}
		old, young := c.ago(45*day), c.ago(10*day)
		// Stripe created the events a second before they arrived.
		received(t, db, p, billing.EnvTest, "evt_old_applied", "", old.Add(-time.Second), old, sub("canceled", old))
		received(t, db, p, billing.EnvTest, "evt_old_ignored", "", old, old, billing.MirrorChange{})
		received(t, db, p, billing.EnvTest, "evt_old_failed", billing.EventFailed, old, old, billing.MirrorChange{})
		received(t, db, p, billing.EnvTest, "evt_at_cutoff", "", c.ago(retention), c.ago(retention), billing.MirrorChange{})
		received(t, db, p, billing.EnvTest, "evt_young", "", young, young, billing.MirrorChange{})
		// The newest event of an environment is kept, however old.
		received(t, db, p, billing.EnvLive, "evt_live_only", "", old, old, billing.MirrorChange{})
		received(t, db, q, billing.EnvTest, "evt_q_1", "", old.Add(-time.Hour), old.Add(-time.Hour), billing.MirrorChange{})
		received(t, db, q, billing.EnvTest, "evt_q_2", "", old, old, billing.MirrorChange{})

		res, err := db.PruneExpired(ctx, retention, store.PruneOptions{})
		must(t, err)
		if got := res.Deleted["webhook_events"]; got != 3 {
			t.Errorf("deleted: got %d, want 3 (%+v)", got, res)
		}
		for _, tc := range []struct {
			p    *billing.Project
			env  billing.Environment
			want []string
		}{
			{p, billing.EnvTest, []string{"evt_at_cutoff", "evt_old_failed", "evt_young"}},
			{p, billing.EnvLive, []string{"evt_live_only"}},
			{q, billing.EnvTest, []string{"evt_q_2"}},
		} {
			if got := storedEvents(t, db, tc.p, tc.env); !slices.Equal(got, tc.want) {
				t.Errorf("events of %s %s: got %v, want %v", tc.p.ID, tc.env, got, tc.want)
			}
		}

		// The mirror keeps its order without the pruned event: an older
		// event delivered late is still stale.
		received(t, db, p, billing.EnvTest, "evt_late", "", old.Add(-time.Hour), c.Now(), sub("active", old.Add(-time.Hour)))
		s, err := db.FindSubscription(ctx, p.ID, billing.EnvTest, "sub_1")
		must(t, err)
		if s.Status != "canceled" {
			t.Errorf("subscription after a late older event: got %q, want canceled", s.Status)
		}

		// Nothing more to do until time passes.
		res, err = db.PruneExpired(ctx, retention, store.PruneOptions{})
		must(t, err)
		if res.Total() != 0 {
			t.Errorf("second run deleted %d, want 0", res.Total())
		}
		// 21 days later evt_at_cutoff and evt_young have expired, but
		// evt_young is still the newest by Stripe's time (evt_late is older).
		c.set(c.Now().Add(21 * day))
		res, err = db.PruneExpired(ctx, retention, store.PruneOptions{})
		must(t, err)
		want := []string{"evt_late", "evt_old_failed", "evt_young"}
		if got := storedEvents(t, db, p, billing.EnvTest); !slices.Equal(got, want) || res.Total() != 1 {
			t.Errorf("after 21 more days: deleted %d, kept %v; want 1 deleted, kept %v", res.Total(), got, want)
		}
	})
}

func TestPruneExpiredBatches(t *testing.T) {
	c := newClock(t0.Add(100 * day))
	eachClockedDB(t, c, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		for i := range 6 {
			at := c.ago(40*day - time.Duration(i)*time.Minute)
			received(t, db, p, billing.EnvTest, "evt_"+string(rune('a'+i)), "", at, at, billing.MirrorChange{})
		}
		// Five may go (the sixth is the newest): batches of 2, 2 and 1.
		res, err := db.PruneExpired(ctx, 30*day, store.PruneOptions{BatchSize: 2, Pause: time.Millisecond})
		must(t, err)
		if res.Total() != 5 || res.Batches != 3 {
			t.Errorf("got %d deleted in %d batches, want 5 in 3", res.Total(), res.Batches)
		}
		if got := storedEvents(t, db, p, billing.EnvTest); !slices.Equal(got, []string{"evt_f"}) {
			t.Errorf("kept %v, want [evt_f]", got)
		}
	})
}

func TestRunPruner(t *testing.T) {
	c := newClock(t0.Add(100 * day))
	eachClockedDB(t, c, func(t *testing.T, db *store.DB) {
		p := storetest.MustCreateProject(t, db)
		old := c.ago(40 * day)
		received(t, db, p, billing.EnvTest, "evt_old", "", old, old, billing.MirrorChange{})
		received(t, db, p, billing.EnvTest, "evt_new", "", c.Now(), c.Now(), billing.MirrorChange{})

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			db.RunPruner(ctx, store.PrunerConfig{Retention: 30 * day, Interval: time.Hour})
		}()
		// The first run starts at once.
		deadline := time.Now().Add(30 * time.Second)
		for !slices.Equal(storedEvents(t, db, p, billing.EnvTest), []string{"evt_new"}) {
			if time.Now().After(deadline) {
				t.Fatalf("the pruner did not delete evt_old: %v", storedEvents(t, db, p, billing.EnvTest))
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("RunPruner did not return after its context ended")
		}
	})
}
