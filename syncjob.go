package billing

import "time"

// States of a sync job. A job is queued until an instance takes its lease,
// running while that instance renews the lease, and then succeeded or
// failed for good.
const (
	SyncQueued    = "queued"
	SyncRunning   = "running"
	SyncSucceeded = "succeeded"
	SyncFailed    = "failed"
)

// What started a sync job.
const (
	SyncByAPI      = "api"      // POST /v1/sync with project credentials
	SyncByAdmin    = "admin"    // the admin API
	SyncByCLI      = "cli"      // billing sync
	SyncBySchedule = "schedule" // the periodic reconciliation
)

// SyncJob is one resync of a project's mirror from Stripe for one
// environment, run in the background by whichever instance holds its lease.
// At most one job per project and environment is queued or running.
type SyncJob struct {
	ID          string
	ProjectID   string
	Environment Environment
	Origin      string // one of the SyncBy* values
	State       string // one of the Sync* states
	// Counts are the objects read so far, or in all once the job is done.
	Counts SyncCounts
	// Error says why the job failed; it is safe to show to the caller.
	Error string
	// Attempts is how many times an instance started the job; more than
	// one when the job was resumed after the instance running it stopped.
	Attempts int
	// Owner is the instance that holds the lease of a running job, until
	// LeaseUntil. A lease that is not renewed in time passes to another
	// instance.
	Owner      string
	LeaseUntil time.Time
	CreatedAt  time.Time
	StartedAt  time.Time // zero until first started
	FinishedAt time.Time // zero until done
	UpdatedAt  time.Time
}

// Done reports whether the job has succeeded or failed.
func (j *SyncJob) Done() bool { return j.State == SyncSucceeded || j.State == SyncFailed }
