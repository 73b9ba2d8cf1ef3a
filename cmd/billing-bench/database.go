package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
)

// database is the database the service runs on during the benchmark: a
// SQLite file in the temporary directory, or a fresh PostgreSQL database
// (or schema) that is dropped afterwards.
type database struct {
	Kind string // "sqlite" or "postgres"
	// URL is what the service gets as BILLING_DATABASE_URL.
	URL  string
	path string // SQLite file
	// name is the PostgreSQL database's; own is false when the benchmark
	// could not create one and uses a schema of name instead.
	name string
	own  bool
	drop func(context.Context) error
}

// newDatabase prepares an empty database of kind; a SQLite database is the
// file name in dir.
func newDatabase(ctx context.Context, kind, postgresURL, dir, name string) (*database, error) {
	switch kind {
	case "sqlite":
		path := filepath.Join(dir, name+".db")
		return &database{Kind: kind, URL: "sqlite:" + path, path: path, drop: func(context.Context) error {
			var errs []error
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}}, nil
	case "postgres":
		if postgresURL == "" {
			return nil, errors.New("-db postgres needs -postgres-url")
		}
		return newPostgres(ctx, postgresURL, true)
	}
	return nil, fmt.Errorf("-db: want sqlite or postgres, got %q", kind)
}

// newPostgres creates a database named billing_bench_RANDOM on the server
// of base; without the right to create databases, and when schemaFallback
// allows, it creates a schema of that name in base's database instead and
// points search_path at it.
func newPostgres(ctx context.Context, base string, schemaFallback bool) (*database, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("-postgres-url: %w", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "billing_bench_" + hex.EncodeToString(suffix[:])

	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactURL(base), err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	run := func(ctx context.Context, sql string) error {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}

	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err == nil {
		fresh := *u
		fresh.Path = "/" + name
		return &database{Kind: "postgres", URL: fresh.String(), name: name, own: true, drop: func(ctx context.Context) error {
			return run(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		}}, nil
	} else if !schemaFallback {
		return nil, fmt.Errorf("create a database: %w", err)
	} else if _, serr := conn.Exec(ctx, "CREATE SCHEMA "+ident); serr != nil {
		return nil, fmt.Errorf("create a database (%v) or a schema (%v) for the benchmark", err, serr)
	}
	fresh := *u
	q := fresh.Query()
	q.Set("search_path", name)
	fresh.RawQuery = q.Encode()
	return &database{Kind: "postgres", URL: fresh.String(), name: strings.TrimPrefix(u.Path, "/"), drop: func(ctx context.Context) error {
		return run(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE")
	}}, nil
}

// redactURL hides a password in a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the PostgreSQL server"
	}
	return u.Redacted()
}

// openGORM opens the database with the driver and connection settings the
// store uses for writes (for SQLite: one connection, WAL, immediate
// transactions), for the anchor's inserts and for counting rows.
func (d *database) openGORM() (*gorm.DB, error) {
	cfg := &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard}
	if d.Kind == "postgres" {
		db, err := gorm.Open(postgres.Open(d.URL), cfg)
		if err != nil {
			return nil, err
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		// Open connections for the insert anchor's load, but few kept
		// idle: the server's connections are shared with the service and
		// the peer.
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(4)
		return db, nil
	}
	dsn := d.path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)" +
		"&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), cfg)
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	return db, nil
}

func closeGORM(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		_ = sqlDB.Close()
	}
}

// Seeded mirror objects.
const (
	seedProduct = "prod_bench"
	seedPrice   = "price_bench"
	planName    = "Bench Pro"
)

// seedEmail is the email of seeded customer i. Emails of i >= the number of
// seeded customers are misses.
func seedEmail(i int) string { return fmt.Sprintf("user%d@bench.example", i) }

// seedMirror writes n customers, each with an active subscription, into the
// project's test mirror through the store package, as webhooks would have.
// Half the subscriptions carry the email themselves; the others are found
// through their customer, the two paths the service's lookup takes.
func seedMirror(ctx context.Context, dsn, masterKey, projectID string, n int) error {
	ring, err := secret.ParseKeyring(masterKey, "")
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, dsn, store.Options{Keyring: ring})
	if err != nil {
		return err
	}
	defer db.Close()
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	err = db.UpsertFromStripe(ctx, projectID, billing.EnvTest, billing.MirrorChange{
		Products: []billing.Product{{ID: seedProduct, Name: planName, Active: true, EventAt: at}},
		Prices:   []billing.Price{{ID: seedPrice, ProductID: seedProduct, Active: true, EventAt: at}},
	})
	if err != nil {
		return fmt.Errorf("seed plan: %w", err)
	}
	const batch = 500
	for start := 0; start < n; start += batch {
		var change billing.MirrorChange
		for i := start; i < min(start+batch, n); i++ {
			cus := fmt.Sprintf("cus_bench%015d", i)
			change.Customers = append(change.Customers, billing.Customer{
				ID: cus, Email: seedEmail(i), Name: fmt.Sprintf("User %d", i), Created: at, EventAt: at,
			})
			sub := billing.Subscription{
				ID: fmt.Sprintf("sub_bench%015d", i), CustomerID: cus, Status: "active",
				PriceID: seedPrice, ProductID: seedProduct, CurrentPeriodEnd: at.Add(30 * 24 * time.Hour),
				Created: at, EventAt: at,
			}
			if i%2 == 0 {
				sub.Email = seedEmail(i)
			}
			change.Subscriptions = append(change.Subscriptions, sub)
		}
		if err := db.UpsertFromStripe(ctx, projectID, billing.EnvTest, change); err != nil {
			return fmt.Errorf("seed customers %d-%d: %w", start, start+batch-1, err)
		}
	}
	return nil
}

// countEvents returns the number of stored webhook events of a project.
func countEvents(ctx context.Context, db *gorm.DB, projectID string) (int64, error) {
	var n int64
	err := db.WithContext(ctx).Raw(`SELECT count(*) FROM webhook_events WHERE project_id = ?`, projectID).Scan(&n).Error
	return n, err
}

// insertTransport is the webhook scenario's anchor as an HTTP transport, so
// that the same load generator drives it: each request is one transaction
// that inserts the request body as a webhook_events row of the anchor
// project, under the event id the X-Event-Id header names.
type insertTransport struct {
	db        *gorm.DB
	projectID string
}

func (t *insertTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	payload, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	id := req.Header.Get("X-Event-Id")
	now := time.Now().UnixMicro()
	err = t.db.WithContext(req.Context()).Transaction(func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO webhook_events (project_id, environment, id, type, api_version, created,
				payload, status, error, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.projectID, "test", id, "customer.subscription.updated", "2023-10-16", now,
			payload, billing.EventApplied, "", now).Error
	})
	status, body := http.StatusOK, "{}"
	if err != nil {
		status, body = http.StatusInternalServerError, err.Error()
	}
	return &http.Response{
		StatusCode:    status,
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

var _ http.RoundTripper = (*insertTransport)(nil)
