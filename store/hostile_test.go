package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// TestLogsWithoutValues checks that failed statements are logged without
// the values they carried, on every path GORM logs (Raw().Scan() explains a
// statement with its values filled in), at every level.
func TestLogsWithoutValues(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var buf bytes.Buffer
		db, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		must(t, err)
		defer db.Close()
		must(t, db.Migrate(ctx))
		const key, email = "pk_leakedkeyvalue", "victim@example.com"
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_, _ = db.FindProjectByAPIKey(canceled, key)
		_, _ = db.FindActiveSubscriptionByEmail(canceled, "prj_x", billing.EnvTest, email)
		// PostgreSQL refuses a NUL byte: the statement fails on the Scan path.
		_, err = db.FindProjectByAPIKey(ctx, key+"\x00")
		if strings.HasPrefix(dsn, "postgres") {
			wantCode(t, err, billing.EINVALID)
			if !strings.Contains(buf.String(), "SELECT") {
				t.Errorf("the failed statement was not logged: %s", buf.String())
			}
		}
		_, _ = db.FindActiveSubscriptionByEmail(ctx, "prj_x", billing.EnvTest, email+"\x00")
		for _, v := range []string{key, email, "leakedkeyvalue"} {
			if strings.Contains(buf.String(), v) {
				t.Errorf("the log holds %q: %s", v, buf.String())
			}
		}
	})
}

// TestUnreachableDatabaseLog checks that PostgreSQL unreachable at start
// is logged as a sentence, without formatting artifacts.
func TestUnreachableDatabaseLog(t *testing.T) {
	var buf bytes.Buffer
	_, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?connect_timeout=2",
		store.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err == nil {
		t.Fatal("got no error for an unreachable database")
	}
	for _, bad := range []string{"%v", "!ERROR", "unsupported type"} {
		if strings.Contains(buf.String(), bad) {
			t.Errorf("the log holds %q: %s", bad, buf.String())
		}
	}
}

// TestDatabaseErrorsClassified checks that an unreachable database is
// EUNAVAILABLE with a Retry-After, and a value the database refuses is
// EINVALID, never an internal error that callers would retry or a 500.
func TestDatabaseErrorsClassified(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storetest.MustOpenDSN(t, dsn, sealer)
		p := storetest.MustCreateProject(t, db)
		if strings.HasPrefix(dsn, "postgres") {
			err := db.UpsertCustomer(ctx, billing.Customer{ID: "cus_nul", ProjectID: p.ID, Environment: billing.EnvTest,
				Name: "Ann\x00", EventAt: time.Now()})
			wantCode(t, err, billing.EINVALID)
			err = db.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: p.ID, Issuer: "bad \xff\xfe"})
			wantCode(t, err, billing.EINVALID)
		}
		must(t, db.Close())
		_, err := db.FindProjectByID(ctx, p.ID)
		wantCode(t, err, billing.EUNAVAILABLE)
		var be *billing.Error
		if !asBillingError(err, &be) || be.RetryAfter <= 0 {
			t.Errorf("got %v, want a Retry-After", err)
		}
		wantCode(t, db.CreateTenant(ctx, &billing.Tenant{ID: "ten_down", Name: "x"}), billing.EUNAVAILABLE)
		wantCode(t, db.Ping(ctx), billing.EUNAVAILABLE)
	})
}

// TestNotFoundWording checks the one wording of a missing record.
func TestNotFoundWording(t *testing.T) {
	db := storetest.MustOpenDB(t, sealer)
	ctx := context.Background()
	_, err := db.FindProjectByID(ctx, "prj_nope")
	if billing.ErrorMessage(err) != "No such project: prj_nope." {
		t.Errorf("got %q", billing.ErrorMessage(err))
	}
	err = db.CreateProject(ctx, &billing.Project{ID: "prj_x", TenantID: "ten_nope", APIKey: "pk_x"})
	if billing.ErrorMessage(err) != "No such tenant: ten_nope." {
		t.Errorf("got %q", billing.ErrorMessage(err))
	}
	_, err = db.FindProjectByAPIKey(ctx, "pk_secretvalue")
	if msg := billing.ErrorMessage(err); billing.ErrorCode(err) != billing.ENOTFOUND || strings.Contains(msg, "pk_secretvalue") {
		t.Errorf("got %q, want ENOTFOUND without the key", msg)
	}
}

// TestSealedSecretsBoundToTheirRow checks that a sealed secret copied to
// another project's row, or to another column, does not open.
func TestSealedSecretsBoundToTheirRow(t *testing.T) {
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	ring, err := secret.NewKeyring(key)
	must(t, err)
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storetest.MustOpenDSN(t, dsn, ring)
		a, b := storetest.MustCreateProject(t, db), storetest.MustCreateProject(t, db)
		must(t, db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: a.ID, Environment: billing.EnvTest,
			SecretKey: "sk_test_a", PublishableKey: "pk_test_a", WebhookSecret: "whsec_a"}))
		must(t, db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: b.ID, Environment: billing.EnvTest,
			SecretKey: "sk_test_b", PublishableKey: "pk_test_b"}))
		raw := rawDB(t, dsn)
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := raw.ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		var sealedA string
		if err := raw.QueryRowContext(ctx, rebind(dsn, `SELECT secret_key_enc FROM stripe_settings WHERE project_id = ? AND environment = 'test'`), a.ID).Scan(&sealedA); err != nil {
			t.Fatal(err)
		}
		exec(rebind(dsn, `UPDATE stripe_settings SET secret_key_enc = ? WHERE project_id = ?`), sealedA, b.ID)
		if got, err := db.FindStripeSettings(ctx, b.ID, billing.EnvTest); err == nil {
			t.Errorf("project B opened project A's key: got %q", got.SecretKey)
		}
		exec(rebind(dsn, `UPDATE stripe_settings SET webhook_secret_enc = secret_key_enc WHERE project_id = ?`), a.ID)
		if got, err := db.FindStripeSettings(ctx, a.ID, billing.EnvTest); err == nil {
			t.Errorf("the secret key opened as the webhook secret: got %q", got.WebhookSecret)
		}
	})
}

// TestIntents checks the create-intent ledger.
func TestIntents(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		in := billing.Intent{ProjectID: p.ID, Environment: billing.EnvTest, IdempotencyKey: "k1",
			Operation: "customer.create", Fingerprint: "f1", UserID: "user_a"}
		got, created, err := db.BeginIntent(ctx, in)
		must(t, err)
		if !created || got.State != billing.IntentPending || got.Fingerprint != "f1" {
			t.Fatalf("begin: got %+v, %v", got, created)
		}
		other := in
		other.Fingerprint = "f2"
		got, created, err = db.BeginIntent(ctx, other)
		must(t, err)
		if created || got.Fingerprint != "f1" {
			t.Errorf("begin again: got %+v, %v; want the stored intent", got, created)
		}
		live := in
		live.Environment = billing.EnvLive
		if _, created, err := db.BeginIntent(ctx, live); err != nil || !created {
			t.Errorf("same key in live: got %v, %v; want a new intent", created, err)
		}
		rec := billing.Customer{ID: "cus_1", ProjectID: p.ID, Environment: billing.EnvTest, Email: "intent@example.com", EventAt: time.Now()}
		wantCode(t, db.CompleteIntent(ctx, p.ID, billing.EnvTest, "k1", "cus_1", struct{}{}), billing.EINVALID)
		must(t, db.CompleteIntent(ctx, p.ID, billing.EnvTest, "k1", "cus_1", rec))
		if c, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1"); err != nil || c.Email != "intent@example.com" {
			t.Errorf("the record written with the completion: got %+v, %v", c, err)
		}
		must(t, db.AbandonIntent(ctx, p.ID, billing.EnvTest, "k1")) // completed: kept
		found, err := db.FindIntent(ctx, p.ID, billing.EnvTest, "k1")
		must(t, err)
		if found.State != billing.IntentCompleted || found.ObjectID != "cus_1" {
			t.Errorf("completed: got %+v", found)
		}
		must(t, db.AbandonIntent(ctx, p.ID, billing.EnvLive, "k1"))
		_, err = db.FindIntent(ctx, p.ID, billing.EnvLive, "k1")
		wantCode(t, err, billing.ENOTFOUND)
		wantCode(t, db.CompleteIntent(ctx, p.ID, billing.EnvTest, "k_none", "cus_2", nil), billing.ENOTFOUND)
		if _, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_2"); billing.ErrorCode(err) != billing.ENOTFOUND {
			t.Errorf("a record was written for an unknown intent: %v", err)
		}
	})
}

// TestSetupSessions checks that a session is found until it expires or is
// deleted.
func TestSetupSessions(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		hash := []byte("0123456789abcdef0123456789abcdef")
		must(t, db.CreateSetupSession(ctx, billing.SetupSession{TokenHash: hash, ProjectID: p.ID, Fingerprint: "f",
			ExpiresAt: time.Now().Add(time.Hour)}))
		s, err := db.FindSetupSession(ctx, hash)
		must(t, err)
		if s.ProjectID != p.ID || s.Fingerprint != "f" {
			t.Errorf("got %+v", s)
		}
		old := []byte("expired-expired-expired-expired!")
		must(t, db.CreateSetupSession(ctx, billing.SetupSession{TokenHash: old, ProjectID: p.ID, ExpiresAt: time.Now().Add(-time.Minute)}))
		_, err = db.FindSetupSession(ctx, old)
		wantCode(t, err, billing.ENOTFOUND)
		must(t, db.DeleteSetupSession(ctx, hash))
		_, err = db.FindSetupSession(ctx, hash)
		wantCode(t, err, billing.ENOTFOUND)
		wantCode(t, db.CreateSetupSession(ctx, billing.SetupSession{TokenHash: hash, ProjectID: "prj_none", ExpiresAt: time.Now()}), billing.ENOTFOUND)
	})
}

// rawDB opens the database of dsn without the store.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	dialector := sqlite.Open(strings.TrimPrefix(dsn, "sqlite:"))
	if strings.HasPrefix(dsn, "postgres") {
		dialector = postgres.Open(dsn)
	}
	g, err := gorm.Open(dialector, &gorm.Config{})
	must(t, err)
	db, err := g.DB()
	must(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// rebind turns ? placeholders into PostgreSQL's $n for a PostgreSQL dsn.
func rebind(dsn, q string) string {
	if !strings.HasPrefix(dsn, "postgres") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$")
			b.WriteString(string(rune('0' + n)))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func asBillingError(err error, be **billing.Error) bool { return errors.As(err, be) }
