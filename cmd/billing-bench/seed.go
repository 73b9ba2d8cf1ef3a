package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
)

// newRunID returns 8 random hex characters that keep one scenario's ids
// apart from another's.
func newRunID() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// bulk writes many rows straight into the service's tables, after
// `billing migrate`: COPY on PostgreSQL, multi-row INSERTs in large
// transactions on SQLite. The column lists are the schema's
// (store/migrate.go).
type bulk struct {
	pg   *pgx.Conn
	lite *sql.DB
}

func openBulk(ctx context.Context, db *database) (*bulk, error) {
	if db.Kind == "postgres" {
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return nil, err
		}
		return &bulk{pg: conn}, nil
	}
	g, err := db.openGORM()
	if err != nil {
		return nil, err
	}
	lite, err := g.DB()
	if err != nil {
		return nil, err
	}
	return &bulk{lite: lite}, nil
}

func (w *bulk) close() {
	if w.pg != nil {
		_ = w.pg.Close(context.Background())
	}
	if w.lite != nil {
		_ = w.lite.Close()
	}
}

// insert writes n rows of table; row(i) returns the values of row i in the
// order of columns.
func (w *bulk) insert(ctx context.Context, table string, columns []string, n int, row func(i int) []any) error {
	if w.pg != nil {
		i := 0
		_, err := w.pg.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			i++
			return row(i - 1), nil
		}))
		if err != nil {
			return fmt.Errorf("copy into %s: %w", table, err)
		}
		return nil
	}
	// SQLite: statements of up to 500 rows, transactions of up to 20,000.
	const perStatement, perTx = 500, 20_000
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	head := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES "
	for start := 0; start < n; start += perTx {
		tx, err := w.lite.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for s := start; s < min(start+perTx, n); s += perStatement {
			end := min(s+perStatement, n)
			args := make([]any, 0, (end-s)*len(columns))
			for i := s; i < end; i++ {
				args = append(args, row(i)...)
			}
			stmt := head + strings.TrimSuffix(strings.Repeat(placeholders+", ", end-s), ", ")
			if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("insert into %s: %w", table, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// analyze refreshes the planner's statistics after seeding, as autovacuum
// (or SQLite's optimize) would have on a database that grew over time.
func (w *bulk) analyze(ctx context.Context) error {
	if w.pg != nil {
		_, err := w.pg.Exec(ctx, `ANALYZE`)
		return err
	}
	_, err := w.lite.ExecContext(ctx, `ANALYZE`)
	return err
}

// tableBytes returns the space tables take with their indexes (and, on
// PostgreSQL, their TOAST data): pg_total_relation_size, or on SQLite the
// pages of the tables and their indexes (from dbstat) or else of the whole
// file.
func (w *bulk) tableBytes(ctx context.Context, tables ...string) (int64, error) {
	if w.pg != nil {
		var n int64
		err := w.pg.QueryRow(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
			FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
			WHERE c.relkind = 'r' AND s.nspname = current_schema() AND c.relname = ANY($1)`, tables).Scan(&n)
		return n, err
	}
	if _, err := w.lite.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	in := "'" + strings.Join(tables, "', '") + "'"
	var n sql.NullInt64
	err := w.lite.QueryRowContext(ctx, `SELECT SUM(pgsize) FROM dbstat WHERE name IN (
		SELECT name FROM sqlite_master WHERE tbl_name IN (`+in+`))`).Scan(&n)
	if err == nil {
		return n.Int64, nil
	}
	var pages, size int64
	if err := w.lite.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return 0, err
	}
	if err := w.lite.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return 0, err
	}
	return pages * size, nil
}

// perMillionMiB is the growth in MiB per million rows.
func perMillionMiB(before, after int64, rows int) float64 {
	if rows == 0 {
		return math.NaN()
	}
	return float64(after-before) / (1 << 20) / float64(rows) * 1e6
}

// Columns the seeding writes, as in store/migrate.go.
var (
	customerColumns = []string{"project_id", "environment", "id", "email", "email_lower", "name", "description",
		"phone", "metadata", "user_id", "deleted", "stub", "created", "event_at", "created_at", "updated_at"}
	subscriptionColumns = []string{"project_id", "environment", "id", "customer_id", "email", "email_lower",
		"user_id", "price_id", "product_id", "plan_name", "status", "current_period_end", "cancel_at_period_end",
		"trial_end", "items", "created", "event_at", "updated_at"}
	webhookEventColumns = []string{"project_id", "environment", "id", "type", "api_version", "created",
		"payload", "status", "error", "received_at"}
)

// seedSubscriptions writes, for every project, perProject customers each
// with an active subscription of the seeded plan, as seedMirror does: the
// subscription of customer i carries the email when i is even, and is found
// through its customer otherwise. The plan's product and price go through
// the store.
func seedSubscriptions(ctx context.Context, st *store.DB, w *bulk, projects []credentials, perProject int) error {
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, p := range projects {
		err := st.UpsertFromStripe(ctx, p.ProjectID, billing.EnvTest, billing.MirrorChange{
			Products: []billing.Product{{ID: seedProduct, Name: planName, Active: true, EventAt: at}},
			Prices:   []billing.Price{{ID: seedPrice, ProductID: seedProduct, Active: true, EventAt: at}},
		})
		if err != nil {
			return fmt.Errorf("seed plan: %w", err)
		}
	}
	n := len(projects) * perProject
	now, us := time.Now().UnixMicro(), at.UnixMicro()
	periodEnd := at.Add(30 * 24 * time.Hour).UnixMicro()
	items := fmt.Sprintf(`[{"id":"si_bench","price_id":%q,"product_id":%q,"quantity":1}]`, seedPrice, seedProduct)
	err := w.insert(ctx, "customers", customerColumns, n, func(i int) []any {
		p, j := projects[i/perProject], i%perProject
		email := seedEmail(j)
		return []any{p.ProjectID, "test", fmt.Sprintf("cus_bench%015d", j), email, email, fmt.Sprintf("User %d", j), "",
			"", "{}", "", false, false, us, us, now, now}
	})
	if err != nil {
		return err
	}
	return w.insert(ctx, "subscriptions", subscriptionColumns, n, func(i int) []any {
		p, j := projects[i/perProject], i%perProject
		email := ""
		if j%2 == 0 {
			email = seedEmail(j)
		}
		return []any{p.ProjectID, "test", fmt.Sprintf("sub_bench%015d", j), fmt.Sprintf("cus_bench%015d", j), email, email,
			"", seedPrice, seedProduct, "", "active", periodEnd, false, nil, items, us, us, now}
	})
}

// seedLedger writes n received events of the benchmark's kinds into the
// project's ledger, as applied, with random Stripe-like ids and arrival
// times spread over the last 29 days (younger than the default retention,
// so that the service keeps them all).
func seedLedger(ctx context.Context, w *bulk, projectID string, n int) error {
	ev, err := newEvents(newRunID())
	if err != nil {
		return err
	}
	now := time.Now()
	span := int64(29 * 24 * time.Hour / time.Microsecond)
	var buf [12]byte
	return w.insert(ctx, "webhook_events", webhookEventColumns, n, func(i int) []any {
		_, _ = rand.Read(buf[:])
		id := "evt_1" + strings.ToUpper(hex.EncodeToString(buf[:]))[:23]
		_, body := ev.payload(int64(i))
		body = []byte(strings.Replace(string(body), ev.id("evt", int64(i)), id, 1))
		at := now.UnixMicro() - span + int64(i)*span/int64(n)
		return []any{projectID, "test", id, eventTypes[i%len(eventTypes)], "2023-10-16", at / 1e6 * 1e6,
			body, billing.EventApplied, "", at}
	})
}

// createProjects creates n projects (ten to a tenant) with their
// credentials and Stripe test keys through the store, as the admin API
// would.
func createProjects(ctx context.Context, st *store.DB, n int) ([]credentials, error) {
	tenants := make([]string, (n+9)/10)
	if err := parallel(ctx, len(tenants), func(ctx context.Context, t int) error {
		tenants[t] = fmt.Sprintf("ten_bench%08d%s", t, newRunID())
		return st.CreateTenant(ctx, &billing.Tenant{ID: tenants[t], Name: "Bench"})
	}); err != nil {
		return nil, fmt.Errorf("create tenants: %w", err)
	}
	out := make([]credentials, n)
	err := parallel(ctx, n, func(ctx context.Context, i int) error {
		apiKey, err := secret.NewAPIKey()
		if err != nil {
			return err
		}
		secretKey, err := secret.NewSecretKey()
		if err != nil {
			return err
		}
		c := credentials{TenantID: tenants[i/10], ProjectID: fmt.Sprintf("prj_bench%08d%s", i, newRunID()),
			APIKey: apiKey, SecretKey: secretKey}
		err = st.CreateProject(ctx, &billing.Project{ID: c.ProjectID, TenantID: c.TenantID, Name: "Bench",
			APIKey: apiKey, SecretHash: secret.HashSecret(secretKey)})
		if err != nil {
			return fmt.Errorf("create project: %w", err)
		}
		err = st.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: c.ProjectID, Environment: billing.EnvTest,
			SecretKey: stripeSecretKey, PublishableKey: stripePublishableKey, WebhookSecret: webhookSecret})
		if err != nil {
			return fmt.Errorf("store Stripe keys: %w", err)
		}
		out[i] = c
		return nil
	})
	return out, err
}

// parallel runs f(0..n-1) on eight goroutines and returns the first error;
// after one, the others see a cancelled context.
func parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(8, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
