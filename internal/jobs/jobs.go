// Package jobs runs resyncs of projects' mirrors from Stripe as jobs kept in
// the database. A job is started by the API, the admin API, the command line
// or the periodic reconciliation; any instance may run it, one at a time per
// project and environment. The instance that runs a job holds a lease on it
// and renews it while it works; when the lease runs out (the instance died)
// another instance resumes the job, or marks it failed once it has been
// started too often. So a job never stays "running" without an owner.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
)

// Resyncer reads a project's Stripe account for env and writes what it
// reads to the mirror, calling progress (which may be nil) with the counts
// so far. Its errors are *billing.Error values where the cause is known
// (EFORBIDDEN without Stripe keys, ESTRIPE, ETIMEOUT, EUNAVAILABLE).
type Resyncer interface {
	Resync(ctx context.Context, projectID string, env billing.Environment, progress func(billing.SyncCounts)) (billing.SyncCounts, error)
}

// Store keeps the jobs. Lookups that find nothing are ENOTFOUND; a write to
// a job whose lease has passed to another instance is ECONFLICT.
type Store interface {
	FindProjectByID(ctx context.Context, id string) (*billing.Project, error)
	FindStripeSettings(ctx context.Context, projectID string, env billing.Environment) (*billing.StripeSettings, error)

	CreateSyncJob(ctx context.Context, job billing.SyncJob) (*billing.SyncJob, bool, error)
	FindSyncJob(ctx context.Context, id string) (*billing.SyncJob, error)
	ListDueSyncs(ctx context.Context, due store.SyncDue, limit int) ([]store.SyncTarget, error)
	CreateDueSyncJob(ctx context.Context, job billing.SyncJob, due store.SyncDue) (bool, error)
	ClaimSyncJob(ctx context.Context, c store.SyncJobClaim) (*billing.SyncJob, error)
	RenewSyncJob(ctx context.Context, id, owner string, leaseUntil, now time.Time, counts billing.SyncCounts) error
	FinishSyncJob(ctx context.Context, job billing.SyncJob) error
	ReleaseSyncJob(ctx context.Context, id, owner string, now time.Time) error
	FailAbandonedSyncJobs(ctx context.Context, now time.Time, maxAttempts int, message string) (int64, error)
	DeleteSyncJobs(ctx context.Context, before time.Time) (int64, error)
}

// Options configure a Service. Store and Resyncer are required.
type Options struct {
	Store    Store
	Resyncer Resyncer
	Logger   *slog.Logger
	// Now is the clock of leases, schedules and job times; time.Now by
	// default. Instances sharing a database should agree on the time
	// within a small part of LeaseTTL.
	Now func() time.Time
	// Instance names this process as the owner of the jobs it runs;
	// host, process id and a random suffix by default.
	Instance string
	// ReconcileEvery is how often every project environment with Stripe
	// keys is resynced by Run; 0 turns the reconciliation off. The first
	// comes one period after the keys were saved.
	ReconcileEvery time.Duration
	// RetryEvery is how soon a reconciliation that failed is tried again
	// (default the lesser of ReconcileEvery and an hour).
	RetryEvery time.Duration
	// CheckEvery is how often Run looks for project environments due for
	// reconciliation (default the lesser of ReconcileEvery and a minute).
	CheckEvery time.Duration
	// LeaseTTL is how long a running job stays with this instance without
	// a renewal (default 15s); when it runs out, another instance takes it.
	LeaseTTL time.Duration
	// Heartbeat is how often a running job's lease is renewed and its
	// progress recorded (default LeaseTTL/5).
	Heartbeat time.Duration
	// PollEvery is how often Run looks for queued and abandoned jobs
	// (default 2s). A job started on this instance starts at once.
	PollEvery time.Duration
	// Concurrency is how many jobs Run runs at once (default 2).
	Concurrency int
	// MaxAttempts is how many times a job may be started: a job abandoned
	// that often is marked failed instead of resumed (default 3).
	MaxAttempts int
	// Retention is how long finished jobs are kept (default 30 days, and
	// never less than twice ReconcileEvery).
	Retention time.Duration
}

// Service starts, runs and reads sync jobs.
type Service struct {
	store          Store
	resyncer       Resyncer
	logger         *slog.Logger
	now            func() time.Time
	owner          string
	reconcileEvery time.Duration
	retryEvery     time.Duration
	checkEvery     time.Duration
	lease          time.Duration
	heartbeat      time.Duration
	pollEvery      time.Duration
	concurrency    int
	maxAttempts    int
	retention      time.Duration

	wake chan struct{}
}

// New returns a Service with opts' defaults filled in.
func New(opts Options) *Service {
	s := &Service{
		store:          opts.Store,
		resyncer:       opts.Resyncer,
		logger:         opts.Logger,
		now:            opts.Now,
		owner:          opts.Instance,
		reconcileEvery: max(opts.ReconcileEvery, 0),
		retryEvery:     opts.RetryEvery,
		checkEvery:     opts.CheckEvery,
		lease:          opts.LeaseTTL,
		heartbeat:      opts.Heartbeat,
		pollEvery:      opts.PollEvery,
		concurrency:    opts.Concurrency,
		maxAttempts:    opts.MaxAttempts,
		retention:      opts.Retention,
		wake:           make(chan struct{}, 1),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.owner == "" {
		s.owner = instanceName()
	}
	if s.retryEvery <= 0 {
		s.retryEvery = min(s.reconcileEvery, time.Hour)
	}
	if s.checkEvery <= 0 {
		s.checkEvery = min(s.reconcileEvery, time.Minute)
	}
	if s.lease <= 0 {
		s.lease = 15 * time.Second
	}
	if s.heartbeat <= 0 {
		s.heartbeat = s.lease / 5
	}
	if s.pollEvery <= 0 {
		s.pollEvery = 2 * time.Second
	}
	if s.concurrency <= 0 {
		s.concurrency = 2
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = 3
	}
	if s.retention <= 0 {
		s.retention = 30 * 24 * time.Hour
	}
	s.retention = max(s.retention, 2*s.reconcileEvery)
	return s
}

// instanceName returns host/pid/random, unique among running instances.
func instanceName() string {
	host, _ := os.Hostname()
	suffix, _ := secret.NewID("")
	return fmt.Sprintf("%s/%d/%.8s", host, os.Getpid(), suffix)
}

// Instance returns the name under which this service holds leases.
func (s *Service) Instance() string { return s.owner }

// Start queues a resync of the project's mirror for env, started by origin
// (one of the billing.SyncBy* values), and returns it; when one is already
// queued or running, it returns that one instead. An unknown project is
// ENOTFOUND, a project without Stripe keys for env EFORBIDDEN.
func (s *Service) Start(ctx context.Context, projectID string, env billing.Environment, origin string) (*billing.SyncJob, error) {
	if !env.Valid() {
		return nil, billing.FieldErrorf("environment", "environment: must be test or live")
	}
	if _, err := s.store.FindProjectByID(ctx, projectID); err != nil {
		return nil, err
	}
	if _, err := s.store.FindStripeSettings(ctx, projectID, env); billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil, billing.Errorf(billing.EFORBIDDEN, "Stripe is not configured for %s.", env)
	} else if err != nil {
		return nil, err
	}
	id, err := secret.NewID("sync_")
	if err != nil {
		return nil, err
	}
	job, created, err := s.store.CreateSyncJob(ctx, billing.SyncJob{ID: id, ProjectID: projectID, Environment: env,
		Origin: origin, CreatedAt: s.now()})
	if err != nil {
		return nil, err
	}
	if created {
		s.logger.Info("sync job queued", "job", job.ID, "project_id", projectID, "environment", string(env), "origin", origin)
		s.nudge()
	}
	return job, nil
}

// errNoSuchJob answers a job id that is unknown or another project's.
var errNoSuchJob = billing.Errorf(billing.ENOTFOUND, "Sync job not found.")

// Find returns the project's job id; another project's job is ENOTFOUND.
func (s *Service) Find(ctx context.Context, projectID, id string) (*billing.SyncJob, error) {
	job, err := s.store.FindSyncJob(ctx, id)
	if billing.ErrorCode(err) == billing.ENOTFOUND || err == nil && job.ProjectID != projectID {
		return nil, errNoSuchJob
	} else if err != nil {
		return nil, err
	}
	return job, nil
}

// nudge makes Run look for work now.
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs queued jobs, resumes or fails abandoned ones and, when
// ReconcileEvery is set, queues the periodic reconciliation, until ctx is
// done. It then puts the jobs it was running back in the queue, for another
// instance to resume, and returns.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.concurrency)
	poll := time.NewTicker(s.pollEvery)
	defer poll.Stop()
	var reconcile <-chan time.Time
	if s.reconcileEvery > 0 {
		t := time.NewTicker(s.checkEvery)
		defer t.Stop()
		reconcile = t.C
		s.reconcile(ctx)
	}
	var pruned time.Time
	for {
		if now := s.now(); now.Sub(pruned) >= time.Hour {
			pruned = now
			if n, err := s.store.DeleteSyncJobs(ctx, now.Add(-s.retention)); err != nil && ctx.Err() == nil {
				s.logger.Warn("deleting old sync jobs failed", "error", err.Error())
			} else if n > 0 {
				s.logger.Info("old sync jobs deleted", "count", n)
			}
		}
		s.runPending(ctx, slots, &wg)
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-s.wake:
		case <-reconcile:
			s.reconcile(ctx)
		}
	}
}

// runPending fails abandoned jobs and starts as many claimable ones as
// there are free slots.
func (s *Service) runPending(ctx context.Context, slots chan struct{}, wg *sync.WaitGroup) {
	if err := s.failAbandoned(ctx); err != nil {
		return
	}
	for {
		select {
		case slots <- struct{}{}:
		default:
			return // all slots busy; a finishing job nudges
		}
		job, err := s.claim(ctx, "")
		if err != nil || job == nil {
			<-slots
			return
		}
		wg.Go(func() {
			defer func() {
				<-slots
				s.nudge()
			}()
			s.execute(ctx, job, nil)
		})
	}
}

// RunPending runs, one after another and in the caller's goroutine, the jobs
// this instance can claim now, after failing abandoned ones, and returns how
// many it ran.
func (s *Service) RunPending(ctx context.Context) (int, error) {
	if err := s.failAbandoned(ctx); err != nil {
		return 0, err
	}
	n := 0
	for {
		job, err := s.claim(ctx, "")
		if err != nil || job == nil {
			return n, err
		}
		s.execute(ctx, job, nil)
		n++
	}
}

func (s *Service) failAbandoned(ctx context.Context) error {
	msg := fmt.Sprintf("The sync was interrupted %d times: the instance running it stopped.", s.maxAttempts)
	n, err := s.store.FailAbandonedSyncJobs(ctx, s.now(), s.maxAttempts, msg)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("failing abandoned sync jobs failed", "error", err.Error())
		}
		return err
	}
	if n > 0 {
		s.logger.Warn("abandoned sync jobs marked failed", "count", n)
	}
	return nil
}

// claim takes the lease of job id ("" for the oldest claimable job), or
// returns nil when there is none to take.
func (s *Service) claim(ctx context.Context, id string) (*billing.SyncJob, error) {
	now := s.now()
	job, err := s.store.ClaimSyncJob(ctx, store.SyncJobClaim{ID: id, Owner: s.owner, Now: now,
		LeaseUntil: now.Add(s.lease), MaxAttempts: s.maxAttempts})
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("claiming a sync job failed", "error", err.Error())
		}
		return nil, err
	}
	if job != nil && job.Attempts > 1 {
		s.logger.Info("sync job resumed", "job", job.ID, "project_id", job.ProjectID, "environment", string(job.Environment), "attempt", job.Attempts)
	}
	return job, nil
}

// errLeaseLost cancels a resync whose lease this instance could not renew.
var errLeaseLost = errors.New("jobs: lease lost")

// execute runs a claimed job to its end: renews the lease and records the
// progress while the resync runs, then records the outcome. When ctx ends
// first, the job goes back to the queue; when the lease is lost, nothing
// more is written. observe, when not nil, sees the job at each progress.
func (s *Service) execute(ctx context.Context, job *billing.SyncJob, observe func(billing.SyncJob)) {
	log := s.logger.With("job", job.ID, "project_id", job.ProjectID, "environment", string(job.Environment))
	log.Info("sync job started", "attempt", job.Attempts)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var mu sync.Mutex
	counts := billing.SyncCounts{}
	progress := func(c billing.SyncCounts) {
		mu.Lock()
		counts = c
		mu.Unlock()
		if observe != nil {
			j := *job
			j.Counts = c
			observe(j)
		}
	}
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.keepLease(runCtx, job, stop, cancel, func() billing.SyncCounts {
			mu.Lock()
			defer mu.Unlock()
			return counts
		})
	}()
	n, err := s.resyncer.Resync(runCtx, job.ProjectID, job.Environment, progress)
	close(stop)
	<-renewed

	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()

	switch {
	case errors.Is(context.Cause(runCtx), errLeaseLost):
		log.Warn("sync job abandoned: its lease passed to another instance")
		return
	case err != nil && ctx.Err() != nil:
		if rerr := s.store.ReleaseSyncJob(wctx, job.ID, s.owner, s.now()); rerr != nil {
			log.Warn("sync job could not be put back in the queue; it is resumed when its lease runs out", "error", rerr.Error())
		} else {
			log.Info("sync job put back in the queue")
		}
		return
	}
	job.Counts, job.FinishedAt, job.Owner = n, s.now(), s.owner
	job.State, job.Error = billing.SyncSucceeded, ""
	if err != nil {
		job.State, job.Error = billing.SyncFailed, failureMessage(err)
		log.Warn("sync job failed", "error", err.Error())
	}
	if ferr := s.store.FinishSyncJob(wctx, *job); ferr != nil {
		log.Warn("sync job outcome not recorded", "state", job.State, "error", ferr.Error())
		return
	}
	if err == nil {
		log.Info("sync job succeeded", "customers", n.Customers, "products", n.Products, "prices", n.Prices, "subscriptions", n.Subscriptions)
	}
}

// keepLease renews the job's lease and records its progress every
// heartbeat until stop is closed. When the lease is refused (another
// instance holds it) or runs out before a renewal succeeds, it cancels the
// resync with errLeaseLost.
func (s *Service) keepLease(ctx context.Context, job *billing.SyncJob, stop <-chan struct{}, cancel context.CancelCauseFunc, counts func() billing.SyncCounts) {
	t := time.NewTicker(s.heartbeat)
	defer t.Stop()
	leaseUntil := job.LeaseUntil
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		next := now.Add(s.lease)
		err := s.store.RenewSyncJob(ctx, job.ID, s.owner, next, now, counts())
		switch {
		case err == nil:
			leaseUntil = next
		case billing.ErrorCode(err) == billing.ECONFLICT || !now.Before(leaseUntil):
			cancel(errLeaseLost)
			return
		default:
			s.logger.Warn("renewing a sync job's lease failed", "job", job.ID, "error", err.Error())
		}
	}
}

// failureMessage is what a failed job shows: the caller-safe message of a
// known failure; internal errors are only logged.
func failureMessage(err error) string {
	if billing.ErrorCode(err) == billing.EINTERNAL {
		return "Internal error; the service's log has the details."
	}
	return billing.ErrorMessage(err)
}

// RunJob runs job id in the caller's goroutine, or waits while another
// instance runs it (taking it over if that instance stops), and returns it
// once it has succeeded or failed. observe, when not nil, sees the job each
// time its state or counts change. When ctx ends first, a job this call was
// running goes back to the queue.
func (s *Service) RunJob(ctx context.Context, id string, observe func(billing.SyncJob)) (*billing.SyncJob, error) {
	var seen billing.SyncJob
	show := func(j billing.SyncJob) {
		if observe != nil && (j.State != seen.State || j.Counts != seen.Counts) {
			seen = j
			observe(j)
		}
	}
	for {
		if err := s.failAbandoned(ctx); err != nil {
			return nil, err
		}
		job, err := s.claim(ctx, id)
		if err != nil {
			return nil, err
		}
		if job != nil {
			show(*job)
			s.execute(ctx, job, show)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		cur, err := s.store.FindSyncJob(ctx, id)
		if err != nil {
			return nil, err
		}
		show(*cur)
		if cur.Done() {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.pollEvery):
		}
	}
}

// Reconcile queues a resync of every project environment due for one, and
// returns how many it queued. Of several instances calling it at once,
// exactly one queues each.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	if s.reconcileEvery <= 0 {
		return 0, nil
	}
	now := s.now()
	due := store.SyncDue{LastSuccessBefore: now.Add(-s.reconcileEvery), LastAttemptBefore: now.Add(-s.retryEvery)}
	targets, err := s.store.ListDueSyncs(ctx, due, 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range targets {
		id, err := secret.NewID("sync_")
		if err != nil {
			return n, err
		}
		created, err := s.store.CreateDueSyncJob(ctx, billing.SyncJob{ID: id, ProjectID: t.ProjectID, Environment: t.Environment,
			Origin: billing.SyncBySchedule, CreatedAt: now}, due)
		if err != nil {
			return n, err
		}
		if created {
			n++
			s.logger.Info("sync job queued", "job", id, "project_id", t.ProjectID, "environment", string(t.Environment), "origin", billing.SyncBySchedule)
		}
	}
	if n > 0 {
		s.nudge()
	}
	return n, nil
}

func (s *Service) reconcile(ctx context.Context) {
	if _, err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
		s.logger.Warn("reconciliation check failed", "error", err.Error())
	}
	s.logger.Debug("reconciliation checked")
}
