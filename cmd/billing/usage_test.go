package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
)

// TestUsageFlushedOnShutdown counts calls in memory only (the flush interval
// is an hour) and stops the process: the counts must be in the database.
func TestUsageFlushedOnShutdown(t *testing.T) {
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "usage.db")
	key := newMasterKey(t)
	srv := startServe(t, map[string]string{
		"BILLING_DATABASE_URL":         dbURL,
		"BILLING_MASTER_KEY":           key,
		"BILLING_USAGE_FLUSH_INTERVAL": "1h",
	})
	creds := srv.project(t)
	for i := 0; i < 3; i++ {
		if r := srv.call(t, "GET", "/v1/setup/auth", creds.headers(), ""); r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	}
	srv.stop(t)

	ring, err := secret.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), dbURL, store.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	day := time.Now().UTC().Format(time.DateOnly)
	counts, err := db.ListUsage(context.Background(), creds.ProjectID, "", day, day)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range counts {
		if c.Endpoint == "GET /v1/setup/auth" && c.StatusClass == "2xx" {
			n += c.Count
		}
	}
	if n != 3 {
		t.Errorf("got %d calls counted after shutdown (%+v), want 3", n, counts)
	}
}
