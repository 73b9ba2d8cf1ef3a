package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

func TestEventRetentionConfig(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{value: "", want: 30 * 24 * time.Hour},
		{value: "90d", want: 90 * 24 * time.Hour},
		{value: "720h", want: 720 * time.Hour},
		{value: "0", want: 0},
		{value: "3d", want: 72 * time.Hour},
		{value: "2d", wantErr: true},
		{value: "1h", wantErr: true},
		{value: "-5d", wantErr: true},
		{value: "thirty", wantErr: true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			c, err := loadConfig(func(k string) string {
				if k == "BILLING_EVENT_RETENTION" {
					return tc.value
				}
				return ""
			})
			if (err != nil) != tc.wantErr || (!tc.wantErr && c.EventRetention != tc.want) {
				t.Errorf("BILLING_EVENT_RETENTION=%q: got %v, %v; want %v, error %v", tc.value, c.EventRetention, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestServePrunesExpiredEvents starts the service on a database holding an
// expired event: the background pruner deletes it, keeps the recent one,
// and stops with the process.
func TestServePrunesExpiredEvents(t *testing.T) {
	ctx := context.Background()
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "retention.db")
	key := newMasterKey(t)
	ring, err := secret.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, dbURL, store.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := storetest.MustCreateProject(t, db)
	for id, at := range map[string]time.Time{
		"evt_expired": time.Now().Add(-40 * 24 * time.Hour),
		"evt_recent":  time.Now().Add(-time.Hour),
	} {
		_, err := db.ApplyEvent(ctx, billing.WebhookEvent{ProjectID: p.ID, Environment: billing.EnvTest, ID: id,
			Type: "customer.updated", Created: at, ReceivedAt: at, Payload: []byte(`{}`)}, billing.MirrorChange{})
		if err != nil {
			t.Fatal(err)
		}
	}

	srv := startServe(t, map[string]string{
		"BILLING_DATABASE_URL":    dbURL,
		"BILLING_MASTER_KEY":      key,
		"BILLING_EVENT_RETENTION": "30d",
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := db.FindWebhookEvent(ctx, p.ID, billing.EnvTest, "evt_expired")
		if billing.ErrorCode(err) == billing.ENOTFOUND {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("evt_expired still stored after 30s (%v):\n%s", err, srv.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := db.FindWebhookEvent(ctx, p.ID, billing.EnvTest, "evt_recent"); err != nil {
		t.Errorf("evt_recent: %v", err)
	}
	srv.stop(t)
}
