// Package storetest gives tests fresh, migrated databases on every storage
// backend: SQLite always, and PostgreSQL when BILLING_TEST_POSTGRES_URL names
// a server (then a failure to reach it fails the test, it never skips).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
)

// PostgresEnv is the environment variable that names the PostgreSQL server
// the tests use, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const PostgresEnv = "BILLING_TEST_POSTGRES_URL"

// The backend names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Backends returns the backends to test: SQLite, and PostgreSQL when
// PostgresEnv is set.
func Backends() []string {
	if os.Getenv(PostgresEnv) != "" {
		return []string{SQLite, Postgres}
	}
	return []string{SQLite}
}

// Each runs fn as a subtest named for each backend, with the DSN of a fresh,
// empty database of that backend.
func Each(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			fn(t, NewDSN(t, backend))
		})
	}
}

// EachDB runs fn as a subtest named for each backend, with a fresh, migrated
// database of that backend that seals secrets with sealer.
func EachDB(t *testing.T, sealer store.Sealer, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	Each(t, func(t *testing.T, dsn string) {
		fn(t, MustOpenDSN(t, dsn, sealer))
	})
}

// MustOpenDB returns a fresh, migrated SQLite database in tb.TempDir(),
// closed when the test ends.
func MustOpenDB(tb testing.TB, sealer store.Sealer) *store.DB {
	tb.Helper()
	return MustOpenDSN(tb, NewDSN(tb, SQLite), sealer)
}

// MustOpenDSN opens and migrates the database named by dsn, closed when the
// test ends.
func MustOpenDSN(tb testing.TB, dsn string, sealer store.Sealer) *store.DB {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{Keyring: sealer})
	if err != nil {
		tb.Fatalf("open %s database: %v", backendOf(dsn), err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close database: %v", err)
		}
	})
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("migrate %s database: %v", backendOf(dsn), err)
	}
	return db
}

// NewDSN returns the DSN of a fresh, empty database of backend (SQLite or
// Postgres), removed when the test ends. For PostgreSQL it is a new schema
// of the server named by PostgresEnv, selected through search_path; the
// test fails when the variable is unset or the server unreachable.
func NewDSN(tb testing.TB, backend string) string {
	tb.Helper()
	switch backend {
	case SQLite:
		return "sqlite:" + filepath.Join(tb.TempDir(), "billing.db")
	case Postgres:
		return newPostgresSchema(tb)
	}
	tb.Fatalf("unknown backend %q", backend)
	return ""
}

func backendOf(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return Postgres
	}
	return SQLite
}

func newPostgresSchema(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		tb.Fatalf("%s is not set", PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	schema := "billing_test_" + randomHex(8)

	exec := func(stmt string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := sql.Open("pgx", base)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.ExecContext(ctx, stmt)
		return err
	}
	if err := exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema on %s: %v", PostgresEnv, err)
	}
	tb.Cleanup(func() {
		if err := exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// RandomID returns prefix followed by random hex, for test fixtures.
func RandomID(prefix string) string { return prefix + randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// MustCreateProject stores a new tenant and a project of it with random ids
// and API key.
func MustCreateProject(tb testing.TB, db *store.DB) *billing.Project {
	tb.Helper()
	ctx := context.Background()
	tenant := &billing.Tenant{ID: RandomID("ten_"), Name: "Tenant"}
	if err := db.CreateTenant(ctx, tenant); err != nil {
		tb.Fatalf("create tenant: %v", err)
	}
	p := &billing.Project{
		ID:         RandomID("prj_"),
		TenantID:   tenant.ID,
		Name:       "Project",
		APIKey:     RandomID("pk_"),
		SecretHash: []byte("hash"),
	}
	if err := db.CreateProject(ctx, p); err != nil {
		tb.Fatalf("create project: %v", err)
	}
	return p
}

// FakeSealer is a deterministic, reversible store.Sealer for tests: a value
// sealed under KeyID for aad is "KeyID:" followed by the base64 encoding of
// aad, a NUL and the plaintext, reversed, so that stored values never equal
// their plaintext and open only for the same aad. It opens values of any
// key id and says those of another key id need rotation. It is no
// protection at all.
type FakeSealer struct {
	// KeyID names the current key; "k1" when empty.
	KeyID string
}

var _ store.Sealer = FakeSealer{}

func (s FakeSealer) keyID() string {
	if s.KeyID == "" {
		return "k1"
	}
	return s.KeyID
}

// Seal is SealFor without a context.
func (s FakeSealer) Seal(plaintext string) (string, error) { return s.SealFor(plaintext, "") }

// Open is OpenFor without a context.
func (s FakeSealer) Open(sealed string) (string, error) { return s.OpenFor(sealed, "") }

// SealFor implements store.Sealer.
func (s FakeSealer) SealFor(plaintext, aad string) (string, error) {
	return s.keyID() + ":" + reverse(base64.StdEncoding.EncodeToString([]byte(aad+"\x00"+plaintext))), nil
}

// OpenFor implements store.Sealer.
func (s FakeSealer) OpenFor(sealed, aad string) (string, error) {
	_, body, ok := strings.Cut(sealed, ":")
	if !ok {
		return "", errors.New("storetest: not a sealed value")
	}
	b, err := base64.StdEncoding.DecodeString(reverse(body))
	if err != nil {
		return "", errors.New("storetest: corrupt sealed value")
	}
	bound, plaintext, ok := strings.Cut(string(b), "\x00")
	if !ok || bound != aad {
		return "", errors.New("storetest: sealed for another context")
	}
	return plaintext, nil
}

// NeedsRotation implements store.Sealer.
func (s FakeSealer) NeedsRotation(sealed string) bool {
	return !strings.HasPrefix(sealed, s.keyID()+":")
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
