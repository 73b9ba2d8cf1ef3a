package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// envFor returns a getenv over the given variables only.
func envFor(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func newMasterKey(t testing.TB) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestCLICreatesTenantAndProject(t *testing.T) {
	ctx := context.Background()
	vars := map[string]string{
		"BILLING_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "cli.db"),
		"BILLING_MASTER_KEY":   newMasterKey(t),
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"tenant", "create", "--name", "Acme", "--json"}, envFor(vars), &out, &errOut); err != nil {
		t.Fatalf("tenant create: %v\n%s", err, errOut.String())
	}
	var tenant map[string]string
	if err := json.Unmarshal(out.Bytes(), &tenant); err != nil || len(tenant) != 2 || tenant["name"] != "Acme" || !strings.HasPrefix(tenant["id"], "ten_") {
		t.Fatalf("got %q, want exactly {\"id\",\"name\"}", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"project", "create", "--tenant", tenant["id"], "--name", "App", "--json"}, envFor(vars), &out, &errOut); err != nil {
		t.Fatalf("project create: %v", err)
	}
	var creds map[string]string
	if err := json.Unmarshal(out.Bytes(), &creds); err != nil || len(creds) != 4 || creds["tenant_id"] != tenant["id"] ||
		!strings.HasPrefix(creds["project_id"], "prj_") || !strings.HasPrefix(creds["api_key"], "pk_") || len(creds["secret_key"]) < 43 {
		t.Fatalf("got %q, want exactly {tenant_id, project_id, api_key, secret_key}", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"project", "rotate-secret", "--project", creds["project_id"], "--json"}, envFor(vars), &out, &errOut); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	var rotated map[string]string
	if err := json.Unmarshal(out.Bytes(), &rotated); err != nil || rotated["secret_key"] == creds["secret_key"] || rotated["project_id"] != creds["project_id"] {
		t.Fatalf("got %q, want a new secret for the same project", out.String())
	}
	t.Run("ErrUnknownTenant", func(t *testing.T) {
		err := run(ctx, []string{"project", "create", "--tenant", "ten_missing", "--name", "x"}, envFor(vars), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not found") && !strings.Contains(strings.ToLower(err.Error()), "no such") {
			t.Errorf("got %v, want a not-found error", err)
		}
	})
	t.Run("ErrNoMasterKey", func(t *testing.T) {
		err := run(ctx, []string{"serve"}, envFor(map[string]string{"BILLING_DATABASE_URL": vars["BILLING_DATABASE_URL"]}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "BILLING_MASTER_KEY") {
			t.Errorf("got %v, want serve to refuse without a master key", err)
		}
	})
	t.Run("ErrUnknownCommand", func(t *testing.T) {
		if err := run(ctx, []string{"frobnicate"}, envFor(vars), io.Discard, io.Discard); err == nil {
			t.Error("got nil, want an error")
		}
	})
	t.Run("Migrate", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(ctx, []string{"migrate"}, envFor(vars), &out, io.Discard); err != nil || !strings.Contains(out.String(), "migrations applied") {
			t.Errorf("got %v %q", err, out.String())
		}
	})
}

func TestRotateMasterKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "rot.db")
	oldKey, newKey := newMasterKey(t), newMasterKey(t)
	// A server on the old key stores Stripe keys.
	srv := startServe(t, map[string]string{"BILLING_DATABASE_URL": dbURL, "BILLING_MASTER_KEY": oldKey})
	creds := srv.project(t)
	srv.putStripeKeys(t, creds, "sk_test_rotation0123456789")
	srv.stop(t)

	vars := map[string]string{"BILLING_DATABASE_URL": dbURL, "BILLING_MASTER_KEY": newKey, "BILLING_MASTER_KEY_PREVIOUS": oldKey}
	var out bytes.Buffer
	if err := run(ctx, []string{"rotate-master-key"}, envFor(vars), &out, io.Discard); err != nil {
		t.Fatalf("rotate-master-key: %v", err)
	}
	if !strings.HasPrefix(out.String(), "1 secret") && !strings.HasPrefix(out.String(), "2 secret") && !strings.HasPrefix(out.String(), "3 secret") {
		t.Errorf("got %q, want a count of re-encrypted secrets", out.String())
	}
	// Only the new key is needed from now on.
	srv = startServe(t, map[string]string{"BILLING_DATABASE_URL": dbURL, "BILLING_MASTER_KEY": newKey})
	resp := srv.call(t, "GET", "/v1/setup/stripe", creds.headers(), "")
	if resp.status != http.StatusOK || !strings.Contains(resp.body, `"secret_key":"****6789"`) {
		t.Errorf("after rotation: got %d %s", resp.status, resp.body)
	}
}
