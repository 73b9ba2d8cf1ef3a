// Package store keeps the service's state in a SQL database through GORM:
// tenants, projects and their settings, the audit log, the webhook event
// ledger, the mirror of Stripe objects and usage counts. It runs on SQLite
// (the embedded default) and on PostgreSQL with the same schema and queries.
//
// Every error it returns is either a *billing.Error (ENOTFOUND, ECONFLICT,
// EINVALID) or an internal error; GORM and driver errors never leak as such.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// Sealer encrypts and decrypts the secrets the store keeps at rest (Stripe
// secret keys, webhook signing secrets, HS256 secrets). Each value is bound
// to where it is stored (table, project, environment and column, as aad),
// so that a ciphertext copied to another row or column does not open.
type Sealer interface {
	// SealFor returns the encrypted form of plaintext, bound to aad.
	SealFor(plaintext, aad string) (string, error)
	// OpenFor returns the plaintext of a value returned by SealFor with
	// the same aad, under the current or an older key.
	OpenFor(sealed, aad string) (string, error)
	// NeedsRotation reports whether sealed should be sealed again: under
	// another key than the current one, or in an older format.
	NeedsRotation(sealed string) bool
}

// Options configure a DB.
type Options struct {
	// Keyring seals stored secrets. Without one, settings with secrets can
	// be neither written nor read.
	Keyring Sealer
	// Now returns the current time; time.Now by default.
	Now func() time.Time
	// Logger receives slow queries and database errors (never query
	// parameters). Nothing is logged when it is nil.
	Logger *slog.Logger
}

// Pool sizes.
const (
	sqliteReadConns = 8
	postgresConns   = 32
	busyTimeout     = 5 * time.Second
	slowQuery       = 500 * time.Millisecond
	maxTxAttempts   = 3
)

// DB is the service's storage. With SQLite every write goes through a single
// connection and reads through a separate pool; with PostgreSQL both share
// one pool.
type DB struct {
	write    *gorm.DB
	read     *gorm.DB
	postgres bool
	sealer   Sealer
	now      func() time.Time
	stmts    stmtCache
}

// Open connects to the database named by dsn: "" is the SQLite file
// billing.db in the working directory, "sqlite:PATH" (or a "file:" URI, or
// a plain path) another SQLite file, and "postgres://" or "postgresql://"
// a PostgreSQL database. It does not migrate; call Migrate. An unsupported
// DSN is EINVALID.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	kind, target, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db := &DB{sealer: opts.Keyring, now: opts.Now}
	if db.now == nil {
		db.now = time.Now
	}
	cfg := &gorm.Config{
		SkipDefaultTransaction: true,
		TranslateError:         true,
		Logger:                 newGormLogger(opts.Logger),
	}
	if kind == "postgres" {
		err = db.openPostgres(target, cfg)
	} else {
		err = db.openSQLite(target, cfg)
	}
	if err != nil {
		return nil, err
	}
	// The pools share their callbacks when they share a configuration.
	pools := []*gorm.DB{db.write}
	if db.read.Callback() != db.write.Callback() {
		pools = append(pools, db.read)
	}
	for _, g := range pools {
		if err := registerClassifier(g); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// openPostgres opens one pool for reads and writes.
func (db *DB) openPostgres(dsn string, cfg *gorm.Config) error {
	g, err := gorm.Open(postgres.Open(dsn), cfg)
	if err != nil {
		closePool(g)
		return fmt.Errorf("store: open postgres: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return err
	}
	sqlDB.SetMaxOpenConns(postgresConns)
	sqlDB.SetMaxIdleConns(postgresConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	db.postgres, db.write, db.read = true, g, g
	return nil
}

// openSQLite opens the single writer connection and the read pool.
func (db *DB) openSQLite(dsn string, cfg *gorm.Config) error {
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		busyTimeout.Milliseconds())
	// SQLite parses each statement it is given, a good part of a write's
	// cost: the pools keep their statements prepared.
	sc := *cfg
	sc.PrepareStmt, sc.PrepareStmtMaxSize, sc.PrepareStmtTTL = true, 512, time.Hour
	open := func(query string, conns int) (*gorm.DB, error) {
		g, err := gorm.Open(sqlite.Open(withQuery(dsn, query)), &sc)
		if err != nil {
			closePool(g)
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		sqlDB, err := g.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(conns)
		sqlDB.SetMaxIdleConns(conns)
		sqlDB.SetConnMaxLifetime(0)
		sqlDB.SetConnMaxIdleTime(0)
		return g, nil
	}
	// The writer opens first: it creates the file and switches it to WAL,
	// which the readers then share. Its transactions take the write lock
	// when they begin, so that two processes never deadlock upgrading.
	write, err := open(pragmas+"&_pragma=journal_mode(WAL)&_txlock=immediate", 1)
	if err != nil {
		return err
	}
	read, err := open(pragmas+"&_pragma=query_only(1)", sqliteReadConns)
	if err != nil {
		closePool(write)
		return err
	}
	db.write, db.read = write, read
	return nil
}

// parseDSN returns "sqlite" or "postgres" and the driver's DSN.
func parseDSN(dsn string) (kind, target string, err error) {
	switch {
	case dsn == "":
		return "sqlite", "billing.db", nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", dsn, nil
	case strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory"):
		return "", "", billing.Errorf(billing.EINVALID,
			"An in-memory SQLite database is not supported: each connection would see its own.")
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", billing.Errorf(billing.EINVALID, "The SQLite database URL names no file.")
		}
		return "sqlite", path, nil
	case strings.HasPrefix(dsn, "file:"):
		return "sqlite", dsn, nil
	case strings.Contains(dsn, "://"):
		return "", "", billing.Errorf(billing.EINVALID,
			"Unsupported database URL: use sqlite:PATH or postgres://...")
	}
	return "sqlite", dsn, nil
}

// withQuery appends query parameters to a SQLite DSN.
func withQuery(dsn, query string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + query
	}
	return dsn + "?" + query
}

// closePool closes the connections of a gorm.DB that failed to open.
func closePool(g *gorm.DB) {
	if g == nil {
		return
	}
	if sqlDB, err := g.DB(); err == nil {
		_ = sqlDB.Close()
	}
}

// Close closes all connections.
func (db *DB) Close() error {
	var errs []error
	pools := []*gorm.DB{db.write}
	if db.read != db.write {
		pools = append(pools, db.read)
	}
	for _, g := range pools {
		if g == nil {
			continue
		}
		if sqlDB, err := g.DB(); err == nil {
			errs = append(errs, sqlDB.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping reports whether the database is reachable.
func (db *DB) Ping(ctx context.Context) error {
	for _, g := range []*gorm.DB{db.write, db.read} {
		sqlDB, err := g.DB()
		if err != nil {
			return err
		}
		if err := sqlDB.PingContext(ctx); err != nil {
			return classify(fmt.Errorf("store: ping: %w", err))
		}
	}
	return nil
}

// Backend returns "sqlite" or "postgres".
func (db *DB) Backend() string {
	if db.postgres {
		return "postgres"
	}
	return "sqlite"
}

// reader returns the pool for plain reads.
func (db *DB) reader(ctx context.Context) *gorm.DB { return db.read.WithContext(ctx) }

// transact runs fn in a write transaction, retrying it when PostgreSQL
// aborts it for a deadlock or a serialization failure.
func (db *DB) transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = db.write.WithContext(ctx).Transaction(fn)
		if !retryable(err) || ctx.Err() != nil {
			return classify(err)
		}
	}
	return classify(err)
}

// retryable reports whether err aborted a transaction that may succeed when
// run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// translate turns a database error into the service's errors: a missing row
// is ENOTFOUND and a unique violation ECONFLICT, both naming what; an
// unreachable database is EUNAVAILABLE and a value the database refuses
// EINVALID (see classify).
func translate(err error, what string) error {
	err = classify(err)
	var berr *billing.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &berr):
		return err
	case errors.Is(err, gorm.ErrRecordNotFound):
		return notFound(what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return billing.Errorf(billing.ECONFLICT, "%s already exists.", what)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return billing.Errorf(billing.ENOTFOUND, "No such project.")
	case errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("store: %s: %w", strings.ToLower(what), err)
}

// notFound returns the ENOTFOUND error for what, a kind of record.
func notFound(what string) error {
	return billing.Errorf(billing.ENOTFOUND, "No such %s.", strings.ToLower(what))
}

// noSuch returns the ENOTFOUND error for the record of a kind with an id,
// in the service's one wording: "No such project: prj_x.".
func noSuch(what, id string) error {
	return billing.Errorf(billing.ENOTFOUND, "No such %s: %s.", what, id)
}

// Times are stored as BIGINT microseconds since the Unix epoch (UTC), the
// zero time as 0, so that SQLite and PostgreSQL compare and sort them alike.

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// eventMicros returns an EventAt truncated to the second, the precision of
// Stripe's event times: two writes in the same second are a tie.
func eventMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix() * 1e6
}

// nowMicros returns the current time.
func (db *DB) nowMicros() int64 { return db.now().UnixMicro() }

// rowsAffected returns the outcome of a statement.
func rowsAffected(res *gorm.DB) (int64, error) { return res.RowsAffected, res.Error }
