package store

import (
	"context"
	"log/slog"
	"time"
)

// Retention: rows that only record the past (the raw payloads of received
// webhook events) are deleted once they are older than the retention
// period, in small batches, so that the database grows with the traffic of
// the period and not with the age of the installation.
//
// What is kept past the period, because something still needs it:
//
//   - A webhook event whose status is neither applied nor ignored (failed,
//     or any state a later version adds before an event is applied): its
//     object never reached the mirror, and the payload is the only record
//     of what Stripe sent. It stays until the operator deals with it.
//   - The newest event of each project and environment, by Stripe's created
//     time: the setup page shows it as the last event received, which tells
//     whether Stripe still reaches the service.
//
// Nothing else in the mirror depends on the ledger: the ordering stamp that
// keeps an older event from overwriting newer state is on each mirror row
// (event_at), not on the event. The ledger also deduplicates redeliveries,
// which Stripe makes for up to three days; a retention shorter than that
// would let a retried event be stored again, so the service refuses one.

// MinRetention is the shortest retention period that still deduplicates
// every delivery Stripe retries (it retries for up to three days).
const MinRetention = 72 * time.Hour

// retainedTable is a table whose expired rows the pruner deletes. Its
// statement deletes at most "?" (the batch size, the second parameter) of
// the rows older than "?" (the cutoff in microseconds, the first), oldest
// first, and nothing that must be kept.
type retainedTable struct {
	name        string
	deleteBatch string
}

// retainedTables are pruned in this order; a new log (such as the outgoing
// events) is one more entry.
var retainedTables = []retainedTable{{
	name: "webhook_events",
	// The partial index webhook_events_expiry serves the range, the order
	// and the status; webhook_events_created the newest-event check, one
	// probe per row. The check is a scalar subquery rather than EXISTS,
	// which PostgreSQL would turn into a join over the whole table.
	deleteBatch: `DELETE FROM webhook_events WHERE (project_id, environment, id) IN (
		SELECT e.project_id, e.environment, e.id FROM webhook_events e
		WHERE e.received_at < ? AND e.status IN ('applied', 'ignored')
			AND (SELECT n.id FROM webhook_events n
				WHERE n.project_id = e.project_id AND n.environment = e.environment
					AND (n.created, n.id) > (e.created, e.id)
				LIMIT 1) IS NOT NULL
		ORDER BY e.received_at
		LIMIT ?)`,
}}

// PruneOptions configure PruneExpired.
type PruneOptions struct {
	// BatchSize is the most rows one statement deletes (DefaultPruneBatch
	// when zero): small, so that a SQLite writer is held for milliseconds.
	BatchSize int
	// Pause is the least time between two batches (DefaultPrunePause when
	// zero). The pruner also waits at least as long as the last batch
	// took, so that it takes at most half of the writer's time and
	// ingestion queued behind a batch goes first.
	Pause time.Duration
}

// Pruning defaults.
const (
	DefaultPruneBatch    = 500
	DefaultPrunePause    = 10 * time.Millisecond
	DefaultPruneInterval = time.Hour
)

// PruneResult says what PruneExpired deleted.
type PruneResult struct {
	// Deleted counts the rows deleted per table.
	Deleted map[string]int64
	// Batches counts the delete statements run.
	Batches int
}

// Total returns the number of rows deleted.
func (r PruneResult) Total() int64 {
	var n int64
	for _, d := range r.Deleted {
		n += d
	}
	return n
}

// PruneExpired deletes, table by table, the rows received longer than
// retention ago (by the store's clock) that nothing needs any more (see
// above), in batches of opts.BatchSize, until none is left. Each batch is
// its own transaction. It returns what it deleted, also when ctx ends or a
// batch fails.
func (db *DB) PruneExpired(ctx context.Context, retention time.Duration, opts PruneOptions) (PruneResult, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultPruneBatch
	}
	if opts.Pause <= 0 {
		opts.Pause = DefaultPrunePause
	}
	res := PruneResult{Deleted: map[string]int64{}}
	cutoff := db.now().Add(-retention).UnixMicro()
	for _, t := range retainedTables {
		for {
			start := time.Now()
			n, err := rowsAffected(db.write.WithContext(ctx).Exec(t.deleteBatch, cutoff, opts.BatchSize))
			if err != nil {
				return res, translate(err, "Expired rows")
			}
			res.Batches++
			res.Deleted[t.name] += n
			if n < int64(opts.BatchSize) {
				break
			}
			if err := sleep(ctx, max(opts.Pause, time.Since(start))); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// PrunerConfig configures RunPruner.
type PrunerConfig struct {
	// Retention is how long rows are kept; at least MinRetention.
	Retention time.Duration
	// Interval is the time between two runs (DefaultPruneInterval when
	// zero).
	Interval time.Duration
	PruneOptions
	// Logger receives what each run deleted and its failures.
	Logger *slog.Logger
}

// RunPruner prunes expired rows at once and then every interval, until ctx
// ends. A failed run is logged and tried again at the next interval.
func (db *DB) RunPruner(ctx context.Context, cfg PrunerConfig) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPruneInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for {
		start := time.Now()
		res, err := db.PruneExpired(ctx, cfg.Retention, cfg.PruneOptions)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			logger.Warn("pruning expired rows failed", "error", err.Error(), "deleted", res.Total())
		} else if res.Total() > 0 {
			logger.Info("pruned expired rows", "deleted", res.Deleted, "batches", res.Batches,
				"ms", time.Since(start).Milliseconds())
		}
		if sleep(ctx, cfg.Interval) != nil {
			return
		}
	}
}

// sleep waits for d, or returns ctx's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
