package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/jobs"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// clock is a settable clock shared by the store and the services.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openDB opens and migrates the database at dsn on clk, as one instance
// would: every call is a separate connection pool.
func openDB(t testing.TB, dsn string, clk *clock) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{Keyring: storetest.FakeSealer{}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// withKeys creates a project with Stripe keys for test, saved now.
func withKeys(t testing.TB, db *store.DB) *billing.Project {
	t.Helper()
	p := storetest.MustCreateProject(t, db)
	err := db.PutStripeSettings(context.Background(), billing.StripeSettings{ProjectID: p.ID, Environment: billing.EnvTest,
		SecretKey: "sk_test_jobs0123456789", PublishableKey: "pk_test_jobs0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// resyncer is a Resyncer that counts its calls per project and answers
// counts, err, or, with a gate, waits until the gate is opened or its
// context ends.
type resyncer struct {
	counts billing.SyncCounts
	err    error
	gate   chan struct{} // nil: answer at once
	calls  atomic.Int64
	mu     sync.Mutex
	per    map[string]int
	ended  chan error // receives ctx.Err() when a gated call ends by its context
}

func newResyncer() *resyncer {
	return &resyncer{counts: billing.SyncCounts{Customers: 3, Products: 2, Prices: 2, Subscriptions: 4},
		per: map[string]int{}, ended: make(chan error, 10)}
}

func (r *resyncer) Resync(ctx context.Context, projectID string, env billing.Environment, progress func(billing.SyncCounts)) (billing.SyncCounts, error) {
	r.calls.Add(1)
	r.mu.Lock()
	r.per[projectID+"|"+string(env)]++
	gate := r.gate
	r.mu.Unlock()
	progress(billing.SyncCounts{Customers: 1})
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			r.ended <- ctx.Err()
			return billing.SyncCounts{Customers: 1}, ctx.Err()
		}
	}
	return r.counts, r.err
}

func (r *resyncer) callsOf(projectID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.per[projectID+"|test"]
}

func newService(db *store.DB, r jobs.Resyncer, clk *clock, opts ...func(*jobs.Options)) *jobs.Service {
	o := jobs.Options{Store: db, Resyncer: r, Now: clk.Now, ReconcileEvery: 24 * time.Hour}
	for _, fn := range opts {
		fn(&o)
	}
	return jobs.New(o)
}

func find(t testing.TB, db *store.DB, id string) *billing.SyncJob {
	t.Helper()
	j, err := db.FindSyncJob(context.Background(), id)
	if err != nil {
		t.Fatalf("find %s: %v", id, err)
	}
	return j
}

// eventually waits until cond holds, failing after ten seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		db := openDB(t, dsn, clk)
		p := withKeys(t, db)
		r := newResyncer()
		svc := newService(db, r, clk)

		job, err := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByAPI)
		if err != nil {
			t.Fatal(err)
		}
		if job.State != billing.SyncQueued || job.Origin != billing.SyncByAPI || job.ProjectID != p.ID ||
			!job.CreatedAt.Equal(clk.Now()) || job.Attempts != 0 || !job.StartedAt.IsZero() {
			t.Errorf("got %+v, want a queued api job created now", job)
		}
		t.Run("OnePerProjectEnvironment", func(t *testing.T) {
			again, err := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByAdmin)
			if err != nil || again.ID != job.ID || again.Origin != billing.SyncByAPI {
				t.Errorf("got %+v, %v; want the queued job %s", again, err, job.ID)
			}
		})
		t.Run("Find", func(t *testing.T) {
			got, err := svc.Find(ctx, p.ID, job.ID)
			if err != nil || got.ID != job.ID {
				t.Errorf("got %+v, %v", got, err)
			}
		})
		t.Run("ErrOtherProjectsJob", func(t *testing.T) {
			other := withKeys(t, db)
			if _, err := svc.Find(ctx, other.ID, job.ID); billing.ErrorCode(err) != billing.ENOTFOUND {
				t.Errorf("got %v, want ENOTFOUND", err)
			}
			if _, err := svc.Find(ctx, p.ID, "sync_missing"); billing.ErrorCode(err) != billing.ENOTFOUND {
				t.Errorf("unknown job: got %v, want ENOTFOUND", err)
			}
		})
		t.Run("ErrNoKeys", func(t *testing.T) {
			if _, err := svc.Start(ctx, p.ID, billing.EnvLive, billing.SyncByAPI); billing.ErrorCode(err) != billing.EFORBIDDEN {
				t.Errorf("got %v, want EFORBIDDEN", err)
			}
		})
		t.Run("ErrUnknownProject", func(t *testing.T) {
			if _, err := svc.Start(ctx, "prj_missing", billing.EnvTest, billing.SyncByAdmin); billing.ErrorCode(err) != billing.ENOTFOUND {
				t.Errorf("got %v, want ENOTFOUND", err)
			}
		})
		t.Run("ErrEnvironment", func(t *testing.T) {
			if _, err := svc.Start(ctx, p.ID, "prod", billing.SyncByAPI); billing.ErrorCode(err) != billing.EINVALID {
				t.Errorf("got %v, want EINVALID", err)
			}
		})

		t.Run("Runs", func(t *testing.T) {
			clk.Add(time.Second)
			n, err := svc.RunPending(ctx)
			if err != nil || n != 1 {
				t.Fatalf("got %d, %v; want one job run", n, err)
			}
			got := find(t, db, job.ID)
			if got.State != billing.SyncSucceeded || got.Counts != r.counts || got.Attempts != 1 || got.Error != "" ||
				!got.StartedAt.Equal(clk.Now()) || !got.FinishedAt.Equal(clk.Now()) || got.Owner != "" {
				t.Errorf("got %+v, want succeeded with %+v", got, r.counts)
			}
			if n, _ := svc.RunPending(ctx); n != 0 {
				t.Errorf("a finished job ran again")
			}
			next, err := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByAPI)
			if err != nil || next.ID == job.ID || next.State != billing.SyncQueued {
				t.Errorf("after the job finished: got %+v, %v; want a new queued job", next, err)
			}
		})
	})
}

func TestFailure(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t, storetest.NewDSN(t, storetest.SQLite), clk)
	p := withKeys(t, db)
	cases := map[string]struct {
		err  error
		want string
	}{
		"Stripe":   {billing.Errorf(billing.ESTRIPE, "Stripe is unreachable."), "Stripe is unreachable."},
		"Internal": {errors.New("pq: password=hunter2 refused"), "Internal error; the service's log has the details."},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newResyncer()
			r.err = c.err
			svc := newService(db, r, clk)
			job, err := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByAPI)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.RunPending(ctx); err != nil {
				t.Fatal(err)
			}
			got := find(t, db, job.ID)
			if got.State != billing.SyncFailed || got.Error != c.want || got.FinishedAt.IsZero() {
				t.Errorf("got %+v, want failed with %q", got, c.want)
			}
		})
	}
}

// TestLease covers what happens to a job whose instance stops: with its
// lease still valid nobody touches it; once the lease runs out another
// instance resumes it, or fails it when it was started too often.
func TestLease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		db := openDB(t, dsn, clk)
		const lease = 15 * time.Second
		// dead claims the job as an instance that then stops without a word.
		dead := func(t *testing.T, id string) *billing.SyncJob {
			t.Helper()
			j, err := db.ClaimSyncJob(ctx, store.SyncJobClaim{ID: id, Owner: "dead", Now: clk.Now(),
				LeaseUntil: clk.Now().Add(lease), MaxAttempts: 3})
			if err != nil || j == nil || j.State != billing.SyncRunning || j.Owner != "dead" {
				t.Fatalf("claim: got %+v, %v", j, err)
			}
			return j
		}

		t.Run("ResumedAfterExpiry", func(t *testing.T) {
			p := withKeys(t, db)
			r := newResyncer()
			svc := newService(db, r, clk, func(o *jobs.Options) { o.LeaseTTL = lease })
			job, _ := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByAPI)
			dead(t, job.ID)
			started := clk.Now()

			clk.Add(lease - time.Second)
			if n, err := svc.RunPending(ctx); err != nil || n != 0 {
				t.Fatalf("with the lease valid: got %d run, %v; want none", n, err)
			}
			if got := find(t, db, job.ID); got.State != billing.SyncRunning || got.Owner != "dead" {
				t.Fatalf("got %+v, want it still running under its owner", got)
			}
			clk.Add(2 * time.Second)
			if n, err := svc.RunPending(ctx); err != nil || n != 1 {
				t.Fatalf("after the lease ran out: got %d run, %v; want 1", n, err)
			}
			got := find(t, db, job.ID)
			if got.State != billing.SyncSucceeded || got.Attempts != 2 || !got.StartedAt.Equal(started) || got.Counts != r.counts {
				t.Errorf("got %+v, want succeeded on the second attempt, started when first claimed", got)
			}
		})
		t.Run("FailedAfterMaxAttempts", func(t *testing.T) {
			p := withKeys(t, db)
			r := newResyncer()
			svc := newService(db, r, clk, func(o *jobs.Options) { o.LeaseTTL = lease })
			job, _ := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByAPI)
			for range 3 {
				dead(t, job.ID)
				clk.Add(lease + time.Second)
			}
			if n, err := svc.RunPending(ctx); err != nil || n != 0 {
				t.Fatalf("got %d run, %v; want none", n, err)
			}
			got := find(t, db, job.ID)
			if got.State != billing.SyncFailed || got.Attempts != 3 || got.Owner != "" || got.FinishedAt.IsZero() ||
				got.Error != "The sync was interrupted 3 times: the instance running it stopped." {
				t.Errorf("got %+v, want failed after 3 interrupted attempts", got)
			}
			if r.callsOf(p.ID) != 0 {
				t.Errorf("the resync ran %d times, want 0", r.callsOf(p.ID))
			}
		})
		t.Run("StaleOwnerWritesNothing", func(t *testing.T) {
			p := withKeys(t, db)
			job, _, err := db.CreateSyncJob(ctx, billing.SyncJob{ID: storetest.RandomID("sync_"), ProjectID: p.ID,
				Environment: billing.EnvTest, Origin: billing.SyncByAPI, CreatedAt: clk.Now()})
			if err != nil {
				t.Fatal(err)
			}
			dead(t, job.ID)
			clk.Add(lease + time.Second)
			next, err := db.ClaimSyncJob(ctx, store.SyncJobClaim{Owner: "next", Now: clk.Now(), LeaseUntil: clk.Now().Add(lease), MaxAttempts: 3})
			if err != nil || next == nil || next.ID != job.ID {
				t.Fatalf("got %+v, %v; want the job", next, err)
			}
			if err := db.RenewSyncJob(ctx, job.ID, "dead", clk.Now().Add(lease), clk.Now(), billing.SyncCounts{}); billing.ErrorCode(err) != billing.ECONFLICT {
				t.Errorf("renew by the old owner: got %v, want ECONFLICT", err)
			}
			err = db.FinishSyncJob(ctx, billing.SyncJob{ID: job.ID, Owner: "dead", State: billing.SyncFailed, Error: "x", FinishedAt: clk.Now()})
			if billing.ErrorCode(err) != billing.ECONFLICT {
				t.Errorf("finish by the old owner: got %v, want ECONFLICT", err)
			}
			if got := find(t, db, job.ID); got.Owner != "next" || got.State != billing.SyncRunning {
				t.Errorf("got %+v, want it running under next", got)
			}
		})
	})
}

// gated is a job running in the background on a resyncer held at its gate.
type gated struct {
	clk  *clock
	db   *store.DB
	r    *resyncer
	job  *billing.SyncJob
	done chan struct{} // closed when the run has ended
}

// startGated starts a job of a new project on a service with opts, and
// waits until its resync is called.
func startGated(t *testing.T, opts func(*jobs.Options)) *gated {
	t.Helper()
	g := &gated{clk: newClock(), r: newResyncer(), done: make(chan struct{})}
	g.db = openDB(t, storetest.NewDSN(t, storetest.SQLite), g.clk)
	g.r.gate = make(chan struct{})
	svc := newService(g.db, g.r, g.clk, opts)
	var err error
	if g.job, err = svc.Start(context.Background(), withKeys(t, g.db).ID, billing.EnvTest, billing.SyncByAPI); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(g.done)
		_, _ = svc.RunPending(context.Background())
	}()
	eventually(t, "the job runs", func() bool { return g.r.calls.Load() == 1 })
	return g
}

// TestLeaseLost: an instance whose lease passed to another stops its resync
// and writes nothing more.
func TestLeaseLost(t *testing.T) {
	g := startGated(t, func(o *jobs.Options) { o.LeaseTTL, o.Heartbeat = 15*time.Second, 5*time.Millisecond })
	// Another instance takes the job as if this one had not renewed in time.
	later := g.clk.Now().Add(time.Hour)
	j, err := g.db.ClaimSyncJob(context.Background(), store.SyncJobClaim{ID: g.job.ID, Owner: "other", Now: later,
		LeaseUntil: later.Add(time.Minute), MaxAttempts: 3})
	if err != nil || j == nil {
		t.Fatalf("take over: got %+v, %v", j, err)
	}
	select {
	case err := <-g.r.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("resync ended with %v, want its context canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the resync went on after its lease was lost")
	}
	<-g.done
	if got := find(t, g.db, g.job.ID); got.State != billing.SyncRunning || got.Owner != "other" || got.Attempts != 2 {
		t.Errorf("got %+v, want it left to the other instance", got)
	}
}

// TestProgress: the counts of a running job are recorded with its lease.
func TestProgress(t *testing.T) {
	g := startGated(t, func(o *jobs.Options) { o.Heartbeat = 5 * time.Millisecond })
	eventually(t, "progress is recorded", func() bool {
		j := find(t, g.db, g.job.ID)
		return j.State == billing.SyncRunning && j.Counts.Customers == 1
	})
	g.clk.Add(10 * time.Second)
	eventually(t, "the lease is renewed", func() bool {
		return find(t, g.db, g.job.ID).LeaseUntil.Equal(g.clk.Now().Add(15 * time.Second))
	})
	close(g.r.gate)
	<-g.done
	if got := find(t, g.db, g.job.ID); got.State != billing.SyncSucceeded || got.Counts != g.r.counts {
		t.Errorf("got %+v", got)
	}
}

// TestShutdown: a job running when its instance shuts down goes back to
// the queue, and the next instance runs it at once.
func TestShutdown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		clk := newClock()
		db := openDB(t, dsn, clk)
		p := withKeys(t, db)
		r := newResyncer()
		r.gate = make(chan struct{})
		svc := newService(db, r, clk, func(o *jobs.Options) { o.ReconcileEvery = 0 })
		job, err := svc.Start(context.Background(), p.ID, billing.EnvTest, billing.SyncByAPI)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			svc.Run(ctx)
		}()
		eventually(t, "the job runs", func() bool { return r.calls.Load() == 1 })
		stop()
		<-done
		if got := find(t, db, job.ID); got.State != billing.SyncQueued || got.Owner != "" || got.Attempts != 0 {
			t.Fatalf("got %+v, want it back in the queue", got)
		}
		r.gate = nil
		next := newService(openDB(t, dsn, clk), r, clk)
		if n, err := next.RunPending(context.Background()); err != nil || n != 1 {
			t.Fatalf("got %d, %v", n, err)
		}
		if got := find(t, db, job.ID); got.State != billing.SyncSucceeded || got.Attempts != 1 {
			t.Errorf("got %+v, want succeeded at the first counted attempt", got)
		}
	})
}

// TestRunJob is the command line's way: run the job here, or wait while a
// live instance runs it and take over when that instance stops.
func TestRunJob(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t, storetest.NewDSN(t, storetest.SQLite), clk)
	opts := func(o *jobs.Options) { o.PollEvery = 5 * time.Millisecond }

	t.Run("Here", func(t *testing.T) {
		p := withKeys(t, db)
		r := newResyncer()
		svc := newService(db, r, clk, opts)
		job, _ := svc.Start(ctx, p.ID, billing.EnvTest, billing.SyncByCLI)
		var seen []string
		got, err := svc.RunJob(ctx, job.ID, func(j billing.SyncJob) {
			seen = append(seen, fmt.Sprintf("%s %d", j.State, j.Counts.Customers))
		})
		if err != nil || got.State != billing.SyncSucceeded || got.Counts != r.counts {
			t.Fatalf("got %+v, %v", got, err)
		}
		want := []string{"running 0", "running 1", "succeeded 3"}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("observed %q, want %q", seen, want)
		}
	})
	// held starts a job of a new project, held by a live server.
	held := func(t *testing.T) (*jobs.Service, *resyncer, *billing.SyncJob) {
		t.Helper()
		r := newResyncer()
		svc := newService(db, r, clk, opts)
		job, err := svc.Start(ctx, withKeys(t, db).ID, billing.EnvTest, billing.SyncByCLI)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ClaimSyncJob(ctx, store.SyncJobClaim{ID: job.ID, Owner: "server", Now: clk.Now(),
			LeaseUntil: clk.Now().Add(15 * time.Second), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		return svc, r, job
	}
	t.Run("TakesOver", func(t *testing.T) {
		svc, r, job := held(t)
		got, err := svc.RunJob(ctx, job.ID, func(j billing.SyncJob) {
			if j.Attempts == 1 {
				// Seen running under the server: it has not been run here.
				if r.calls.Load() != 0 {
					t.Error("ran a job a live instance holds")
				}
				clk.Add(16 * time.Second) // the server stops renewing
			}
		})
		if err != nil || got.State != billing.SyncSucceeded || got.Attempts != 2 || r.calls.Load() != 1 {
			t.Errorf("got %+v, %v; want it taken over and succeeded", got, err)
		}
	})
	t.Run("Waits", func(t *testing.T) {
		svc, r, job := held(t)
		got, err := svc.RunJob(ctx, job.ID, func(j billing.SyncJob) {
			if j.State == billing.SyncRunning {
				// The server finishes the job while this waits.
				err := db.FinishSyncJob(ctx, billing.SyncJob{ID: job.ID, Owner: "server", State: billing.SyncSucceeded,
					Counts: billing.SyncCounts{Customers: 7}, FinishedAt: clk.Now()})
				if err != nil {
					t.Error(err)
				}
			}
		})
		if err != nil || got.State != billing.SyncSucceeded || got.Counts.Customers != 7 || r.calls.Load() != 0 {
			t.Errorf("got %+v, %v; want the server's outcome", got, err)
		}
	})
}

func TestReconcile(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		db := openDB(t, dsn, clk)
		p := withKeys(t, db)
		r := newResyncer()
		svc := newService(db, r, clk)
		reconcile := func(t *testing.T, want int) {
			t.Helper()
			if n, err := svc.Reconcile(ctx); err != nil || n != want {
				t.Fatalf("at %v: got %d queued, %v; want %d", clk.Now(), n, err, want)
			}
		}

		clk.Add(23 * time.Hour)
		reconcile(t, 0) // keys saved less than a day ago
		clk.Add(2 * time.Hour)
		reconcile(t, 1)
		reconcile(t, 0) // one is queued
		if n, _ := svc.RunPending(ctx); n != 1 || r.callsOf(p.ID) != 1 {
			t.Fatalf("got %d run, %d resyncs", n, r.callsOf(p.ID))
		}
		clk.Add(23 * time.Hour)
		reconcile(t, 0) // synced less than a day ago
		clk.Add(2 * time.Hour)
		reconcile(t, 1)

		t.Run("FailedRetriedWithinTheHour", func(t *testing.T) {
			r.err = billing.Errorf(billing.ESTRIPE, "Stripe is unreachable.")
			_, _ = svc.RunPending(ctx)
			clk.Add(59 * time.Minute)
			reconcile(t, 0)
			clk.Add(2 * time.Minute)
			reconcile(t, 1)
			r.err = nil
			_, _ = svc.RunPending(ctx)
		})
		t.Run("Off", func(t *testing.T) {
			off := newService(db, r, clk, func(o *jobs.Options) { o.ReconcileEvery = 0 })
			clk.Add(48 * time.Hour)
			if n, err := off.Reconcile(ctx); err != nil || n != 0 {
				t.Errorf("got %d, %v; want nothing queued", n, err)
			}
		})
		t.Run("OldJobsDeleted", func(t *testing.T) {
			n, err := db.DeleteSyncJobs(ctx, clk.Now().Add(-time.Hour))
			if err != nil || n < 3 {
				t.Errorf("got %d, %v; want the finished jobs deleted", n, err)
			}
		})
	})
}

// TestReconcileOnce: instances on one database, each with its own
// connections, check and run at the same moments; every project
// environment is resynced exactly once per period.
func TestReconcileOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := newClock()
		var projects []*billing.Project
		first := openDB(t, dsn, clk)
		for range 6 {
			projects = append(projects, withKeys(t, first))
		}
		r := newResyncer()
		const instances = 4
		var svcs []*jobs.Service
		for range instances {
			svcs = append(svcs, newService(openDB(t, dsn, clk), r, clk))
		}
		for period := 1; period <= 2; period++ {
			clk.Add(25 * time.Hour)
			var wg sync.WaitGroup
			for _, svc := range svcs {
				wg.Go(func() {
					for range 3 {
						if _, err := svc.Reconcile(ctx); err != nil {
							t.Error(err)
						}
						if _, err := svc.RunPending(ctx); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			for _, p := range projects {
				if got := r.callsOf(p.ID); got != period {
					t.Errorf("period %d: %s resynced %d times in all, want %d", period, p.ID, got, period)
				}
			}
		}
	})
}
