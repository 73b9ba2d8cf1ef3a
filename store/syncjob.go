package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// Sync jobs are a queue in the database that every instance serves: an
// instance claims a job by taking its lease (owner and lease_until) and
// renews the lease while it runs the job; a lease that runs out passes the
// job to the next instance that looks. Times compared with lease_until come
// from the caller's clock.

type syncJobRow struct {
	ID            string
	ProjectID     string
	Environment   string
	Origin        string
	State         string
	Customers     int
	Products      int
	Prices        int
	Subscriptions int
	Error         string
	Attempts      int
	Owner         string
	LeaseUntil    int64
	CreatedAt     int64
	StartedAt     int64
	FinishedAt    int64
	UpdatedAt     int64
}

func (r syncJobRow) job() *billing.SyncJob {
	return &billing.SyncJob{
		ID:          r.ID,
		ProjectID:   r.ProjectID,
		Environment: billing.Environment(r.Environment),
		Origin:      r.Origin,
		State:       r.State,
		Counts: billing.SyncCounts{Customers: r.Customers, Products: r.Products,
			Prices: r.Prices, Subscriptions: r.Subscriptions},
		Error:      r.Error,
		Attempts:   r.Attempts,
		Owner:      r.Owner,
		LeaseUntil: fromMicros(r.LeaseUntil),
		CreatedAt:  fromMicros(r.CreatedAt),
		StartedAt:  fromMicros(r.StartedAt),
		FinishedAt: fromMicros(r.FinishedAt),
		UpdatedAt:  fromMicros(r.UpdatedAt),
	}
}

const syncJobColumns = `id, project_id, environment, origin, state, customers, products, prices, subscriptions,
	error, attempts, owner, lease_until, created_at, started_at, finished_at, updated_at`

// activeSyncJob is the condition of a job that is queued or running, as in
// the unique index sync_jobs_active.
const activeSyncJob = `state IN ('queued', 'running')`

// lockSyncJobs serialises, within tx, the creation of jobs of one project
// and environment: on PostgreSQL with a transaction-scoped advisory lock,
// on SQLite by the write lock every write transaction holds.
func (db *DB) lockSyncJobs(tx *gorm.DB, projectID string, env billing.Environment) error {
	if !db.postgres {
		return nil
	}
	return tx.Exec(`SELECT pg_advisory_xact_lock(hashtext(CAST(? AS TEXT) || CAST(current_schema() AS TEXT)))`,
		"billing.sync|"+projectID+"|"+string(env)).Error
}

// CreateSyncJob queues job (ID, ProjectID, Environment, Origin and
// CreatedAt set by the caller) unless a job of the same project and
// environment is queued or running: then it returns that job and false.
// An unknown project is ENOTFOUND.
func (db *DB) CreateSyncJob(ctx context.Context, job billing.SyncJob) (*billing.SyncJob, bool, error) {
	var out *billing.SyncJob
	created := false
	err := db.transact(ctx, func(tx *gorm.DB) error {
		if err := db.lockSyncJobs(tx, job.ProjectID, job.Environment); err != nil {
			return err
		}
		var rows []syncJobRow
		err := tx.Raw(`SELECT `+syncJobColumns+` FROM sync_jobs
			WHERE project_id = ? AND environment = ? AND `+activeSyncJob, job.ProjectID, string(job.Environment)).Scan(&rows).Error
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			out, created = rows[0].job(), false
			return nil
		}
		if err := db.insertSyncJob(tx, &job); err != nil {
			return err
		}
		out, created = &job, true
		return nil
	})
	if err != nil {
		return nil, false, translate(err, "Project")
	}
	return out, created, nil
}

func (db *DB) insertSyncJob(tx *gorm.DB, job *billing.SyncJob) error {
	if job.ID == "" {
		return billing.FieldErrorf("id", "A sync job needs an ID.")
	}
	if job.CreatedAt.IsZero() {
		job.CreatedAt = db.now()
	}
	job.State, job.UpdatedAt = billing.SyncQueued, job.CreatedAt
	return tx.Exec(`INSERT INTO sync_jobs (`+syncJobColumns+`)
		VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, '', 0, '', 0, ?, 0, 0, ?)`,
		job.ID, job.ProjectID, string(job.Environment), job.Origin, job.State,
		micros(job.CreatedAt), micros(job.UpdatedAt)).Error
}

// SyncDue selects the project environments due for a periodic resync: their
// Stripe keys were saved no later than LastSuccessBefore, no job of theirs is
// queued or running, none that succeeded was created after
// LastSuccessBefore, and none at all after LastAttemptBefore (so that a
// failed resync is retried sooner than a successful one is repeated).
type SyncDue struct {
	LastSuccessBefore time.Time
	LastAttemptBefore time.Time
}

// notRecentlySynced is the condition of SyncDue on stripe_settings s; its
// parameters are the project and environment columns' values (or the
// columns themselves), LastAttemptBefore and LastSuccessBefore.
const notRecentlySynced = `NOT EXISTS (SELECT 1 FROM sync_jobs j
	WHERE j.project_id = s.project_id AND j.environment = s.environment
	AND (j.state IN ('queued', 'running') OR j.created_at > ? OR (j.state = 'succeeded' AND j.created_at > ?)))`

// SyncTarget names one project environment.
type SyncTarget struct {
	ProjectID   string
	Environment billing.Environment
}

// ListDueSyncs returns up to limit project environments with Stripe keys
// that are due for a resync.
func (db *DB) ListDueSyncs(ctx context.Context, due SyncDue, limit int) ([]SyncTarget, error) {
	var rows []struct {
		ProjectID   string
		Environment string
	}
	err := db.reader(ctx).Raw(`SELECT s.project_id, s.environment FROM stripe_settings s
		WHERE s.updated_at <= ? AND `+notRecentlySynced+`
		ORDER BY s.project_id, s.environment LIMIT ?`,
		micros(due.LastSuccessBefore), micros(due.LastAttemptBefore), micros(due.LastSuccessBefore),
		clampLimit(limit, 100, 10_000)).Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "Sync jobs")
	}
	out := make([]SyncTarget, len(rows))
	for i, r := range rows {
		out[i] = SyncTarget{ProjectID: r.ProjectID, Environment: billing.Environment(r.Environment)}
	}
	return out, nil
}

// CreateDueSyncJob queues job when its project environment is still due
// under due, and reports whether it did. Checked and written under one
// lock, so that of several instances asking at once exactly one queues it.
func (db *DB) CreateDueSyncJob(ctx context.Context, job billing.SyncJob, due SyncDue) (bool, error) {
	created := false
	err := db.transact(ctx, func(tx *gorm.DB) error {
		if err := db.lockSyncJobs(tx, job.ProjectID, job.Environment); err != nil {
			return err
		}
		var n int64
		err := tx.Raw(`SELECT COUNT(*) FROM stripe_settings s
			WHERE s.project_id = ? AND s.environment = ? AND s.updated_at <= ? AND `+notRecentlySynced,
			job.ProjectID, string(job.Environment), micros(due.LastSuccessBefore),
			micros(due.LastAttemptBefore), micros(due.LastSuccessBefore)).Scan(&n).Error
		if err != nil || n == 0 {
			return err
		}
		created = true
		return db.insertSyncJob(tx, &job)
	})
	if err != nil {
		return false, translate(err, "Sync job")
	}
	return created, nil
}

// SyncJobClaim asks for the lease of a job.
type SyncJobClaim struct {
	// ID names the job; "" takes the oldest claimable one.
	ID    string
	Owner string
	// Now decides which leases have run out.
	Now        time.Time
	LeaseUntil time.Time
	// MaxAttempts bounds resumption: a running job whose lease ran out is
	// claimed again only when it was started fewer times than this.
	MaxAttempts int
}

// claimable is the condition of a job an instance may take: queued, or
// running under a lease that ran out before it was started too often.
// Its parameters are the claim's Now and MaxAttempts.
const claimable = `(state = 'queued' OR (state = 'running' AND lease_until < ? AND attempts < ?))`

// ClaimSyncJob gives c.Owner the lease of a claimable job, marks it running,
// counts the attempt and clears the counts of an earlier one. It returns nil
// when no job (or not the job c.ID) can be claimed now.
func (db *DB) ClaimSyncJob(ctx context.Context, c SyncJobClaim) (*billing.SyncJob, error) {
	now, maxAttempts := micros(c.Now), c.MaxAttempts
	find := func(q *gorm.DB, lock string) (string, error) {
		var ids []string
		where := claimable
		args := []any{now, maxAttempts}
		if c.ID != "" {
			where += ` AND id = ?`
			args = append(args, c.ID)
		}
		err := q.Raw(`SELECT id FROM sync_jobs WHERE `+where+` ORDER BY created_at, id LIMIT 1`+lock, args...).Scan(&ids).Error
		if err != nil || len(ids) == 0 {
			return "", err
		}
		return ids[0], nil
	}
	// Most looks find nothing: ask the read pool first, so that an idle
	// instance does not take the write lock.
	if id, err := find(db.reader(ctx), ""); err != nil || id == "" {
		return nil, translate(err, "Sync job")
	}
	var out *billing.SyncJob
	err := db.transact(ctx, func(tx *gorm.DB) error {
		lock := ""
		if db.postgres {
			lock = ` FOR UPDATE SKIP LOCKED`
		}
		id, err := find(tx, lock)
		if err != nil || id == "" {
			return err
		}
		res := tx.Exec(`UPDATE sync_jobs SET state = 'running', owner = ?, lease_until = ?, attempts = attempts + 1,
				started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END,
				customers = 0, products = 0, prices = 0, subscriptions = 0, updated_at = ?
			WHERE id = ? AND `+claimable,
			c.Owner, micros(c.LeaseUntil), now, now, id, now, maxAttempts)
		if n, err := rowsAffected(res); err != nil || n == 0 {
			return err
		}
		var row syncJobRow
		if err := scanOne(tx.Raw(`SELECT `+syncJobColumns+` FROM sync_jobs WHERE id = ?`, id), &row, "Sync job"); err != nil {
			return err
		}
		out = row.job()
		return nil
	})
	if err != nil {
		return nil, translate(err, "Sync job")
	}
	return out, nil
}

// errLeaseLost is the answer to a write by an instance whose lease of the
// job has passed to another (or whose job is no longer running).
var errLeaseLost = billing.Errorf(billing.ECONFLICT, "The sync job is no longer held by this instance.")

// RenewSyncJob extends owner's lease of a running job to leaseUntil and
// records its progress. A lease that is no longer owner's is ECONFLICT.
func (db *DB) RenewSyncJob(ctx context.Context, id, owner string, leaseUntil, now time.Time, counts billing.SyncCounts) error {
	return db.updateHeldSyncJob(ctx, id, owner, `lease_until = ?, customers = ?, products = ?, prices = ?, subscriptions = ?, updated_at = ?`,
		micros(leaseUntil), counts.Customers, counts.Products, counts.Prices, counts.Subscriptions, micros(now))
}

// FinishSyncJob ends owner's running job in job.State (succeeded or failed)
// with job.Counts, job.Error and job.FinishedAt. A lease that is no longer
// owner's is ECONFLICT, and nothing is written.
func (db *DB) FinishSyncJob(ctx context.Context, job billing.SyncJob) error {
	if job.State != billing.SyncSucceeded && job.State != billing.SyncFailed {
		return billing.FieldErrorf("state", "A sync job finishes as succeeded or failed, not %q.", job.State)
	}
	c := job.Counts
	return db.updateHeldSyncJob(ctx, job.ID, job.Owner, `state = ?, error = ?, owner = '', lease_until = 0,
			customers = ?, products = ?, prices = ?, subscriptions = ?, finished_at = ?, updated_at = ?`,
		job.State, job.Error, c.Customers, c.Products, c.Prices, c.Subscriptions, micros(job.FinishedAt), micros(job.FinishedAt))
}

// ReleaseSyncJob puts owner's running job back in the queue, for another
// instance to start at once (a graceful shutdown); the attempt is not
// counted. A lease that is no longer owner's is ECONFLICT.
func (db *DB) ReleaseSyncJob(ctx context.Context, id, owner string, now time.Time) error {
	return db.updateHeldSyncJob(ctx, id, owner, `state = 'queued', owner = '', lease_until = 0,
			attempts = attempts - 1, updated_at = ?`, micros(now))
}

// updateHeldSyncJob sets columns of a job that is running under owner's lease.
func (db *DB) updateHeldSyncJob(ctx context.Context, id, owner, set string, args ...any) error {
	if owner == "" {
		return errLeaseLost
	}
	args = append(args, id, owner)
	res := db.write.WithContext(ctx).Exec(`UPDATE sync_jobs SET `+set+` WHERE id = ? AND owner = ? AND state = 'running'`, args...)
	n, err := rowsAffected(res)
	if err != nil {
		return translate(err, "Sync job")
	} else if n == 0 {
		return errLeaseLost
	}
	return nil
}

// FailAbandonedSyncJobs marks failed, with message, every running job whose
// lease ran out before now after it was started maxAttempts times or more,
// and returns how many it marked.
func (db *DB) FailAbandonedSyncJobs(ctx context.Context, now time.Time, maxAttempts int, message string) (int64, error) {
	const abandoned = `state = 'running' AND lease_until < ? AND attempts >= ?`
	var n int64
	err := db.reader(ctx).Raw(`SELECT COUNT(*) FROM sync_jobs WHERE `+abandoned, micros(now), maxAttempts).Scan(&n).Error
	if err != nil || n == 0 {
		return 0, translate(err, "Sync jobs")
	}
	res := db.write.WithContext(ctx).Exec(`UPDATE sync_jobs SET state = 'failed', error = ?, owner = '', lease_until = 0,
			finished_at = ?, updated_at = ?
		WHERE `+abandoned, message, micros(now), micros(now), micros(now), maxAttempts)
	n, err = rowsAffected(res)
	return n, translate(err, "Sync jobs")
}

// FindSyncJob returns a job, or ENOTFOUND.
func (db *DB) FindSyncJob(ctx context.Context, id string) (*billing.SyncJob, error) {
	var row syncJobRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+syncJobColumns+` FROM sync_jobs WHERE id = ?`, id), &row, "Sync job")
	if err != nil {
		return nil, err
	}
	return row.job(), nil
}

// DeleteSyncJobs removes the jobs that finished and were created before t,
// and returns how many.
func (db *DB) DeleteSyncJobs(ctx context.Context, before time.Time) (int64, error) {
	res := db.write.WithContext(ctx).Exec(`DELETE FROM sync_jobs WHERE state IN ('succeeded', 'failed') AND created_at < ?`, micros(before))
	n, err := rowsAffected(res)
	return n, translate(err, "Sync jobs")
}
