package server_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stackfordevs/billing/store"
)

// TestNoSecretInDatabaseFile stores every kind of secret through the API and
// then reads the raw SQLite files (database, WAL and shared memory): none of
// the secrets may appear in them.
func TestNoSecretInDatabaseFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "billing.db"), store.Options{Keyring: newKeyring(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, db)
	p := e.newProject(t, "")
	secrets := [][]byte{[]byte(p.SecretKey), []byte(p.StripeKey), []byte(p.WebhookKey), []byte(p.HS256)}
	// The stored forms must still open: the project works.
	if resp, b := e.do(t, "GET", "/v1/setup/stripe", p.headers(), nil); resp.StatusCode != 200 {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "billing.db*"))
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	var total int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		total += len(raw)
		for _, s := range secrets {
			if bytes.Contains(raw, s) {
				t.Errorf("%s contains a secret (…%s)", filepath.Base(f), s[len(s)-4:])
			}
		}
	}
	if total == 0 {
		t.Fatal("database files are empty")
	}
	if !bytes.Contains(readAll(t, files), []byte(p.APIKey)) {
		t.Error("the public API key is not in the files either: the scan reads nothing useful")
	}
}

func readAll(t *testing.T, files []string) []byte {
	var all []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all = append(all, b...)
	}
	return all
}
