package main

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// crashEvent is one event of the crash test and the state it carries.
type crashEvent struct {
	ID           string
	Payload      []byte
	Subscription string
	Created      time.Time
	Status       string
}

// TestCrashSafety kills `billing serve` with SIGKILL while events arrive
// from several connections, restarts it, and redelivers what was not
// acknowledged, as Stripe does: every acknowledged event survived, the
// ledger holds each event exactly once, and the mirror holds the newest
// state of every subscription.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		key := make([]byte, 32)
		_, _ = cryptorand.Read(key)
		masterKey := base64.StdEncoding.EncodeToString(key)
		adminToken := "crash-admin-token-" + storetest.RandomID("")
		vars := map[string]string{
			"BILLING_MASTER_KEY":      masterKey,
			"BILLING_DATABASE_URL":    dsn,
			"BILLING_ADDR":            "127.0.0.1:0",
			"BILLING_ADMIN_TOKEN":     adminToken,
			"BILLING_STRIPE_API_BASE": "http://127.0.0.1:9", // never called for these events
		}
		srv := startServe(t, vars)

		admin := http.Header{"Authorization": {"Bearer " + adminToken}}
		var tenant struct{ ID string }
		srv.mustSend(t, "POST", "/v1/admin/tenants", admin, `{"name":"Crash"}`, http.StatusCreated, &tenant)
		var creds struct {
			TenantID  string `json:"tenant_id"`
			ProjectID string `json:"project_id"`
			APIKey    string `json:"api_key"`
			SecretKey string `json:"secret_key"`
		}
		srv.mustSend(t, "POST", "/v1/admin/tenants/"+tenant.ID+"/projects", admin, `{"name":"App"}`, http.StatusCreated, &creds)
		project := http.Header{"X-Api-Key": {creds.APIKey}, "X-Secret-Key": {creds.SecretKey},
			"X-Tenant-Id": {creds.TenantID}, "X-Project-Id": {creds.ProjectID}}
		webhookSecret := "whsec_" + storetest.RandomID("crash")
		srv.mustSend(t, "PUT", "/v1/setup/stripe?environment=test", project, fmt.Sprintf(
			`{"secret_key":"sk_test_crash0123456789","publishable_key":"pk_test_crash0123456789","webhook_secret":%q}`,
			webhookSecret), http.StatusOK, nil)

		// 60 subscriptions with 4 events each, a few seconds apart, in
		// both API shapes.
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		base := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
		statuses := []string{"incomplete", "active", "trialing", "past_due", "canceled", "unpaid"}
		var events []crashEvent
		newest := map[string]crashEvent{}
		for i := range 60 {
			sub := fmt.Sprintf("sub_crash_%02d", i)
			at := base.Add(time.Duration(r.IntN(600)) * time.Second)
			for k := range 4 {
				at = at.Add(time.Duration(1+r.IntN(30)) * time.Second)
				ev := crashEvent{ID: fmt.Sprintf("evt_crash_%02d_%d", i, k), Subscription: sub, Created: at,
					Status: statuses[r.IntN(len(statuses))]}
				ev.Payload = stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
					EventID: ev.ID, Created: at, Shape: []string{"2023", "2025"}[r.IntN(2)], SubscriptionID: sub,
					CustomerID: fmt.Sprintf("cus_crash_%02d", i), Status: ev.Status})
				events = append(events, ev)
				newest[sub] = ev
			}
		}
		r.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

		path := "/v1/stripe/webhook/" + creds.ProjectID + "?environment=test"
		deliver := func(p *serveProcess, ev crashEvent) (int, []byte, error) {
			body, sig := stripetest.SignedPayload(t, ev.Payload, webhookSecret, time.Time{})
			return p.send("POST", path, http.Header{"Stripe-Signature": {sig}}, body)
		}

		// Deliver from 8 connections; kill the process once a third of
		// the events are acknowledged.
		var (
			mu    sync.Mutex
			acked = map[string]bool{}
			n     atomic.Int64
			once  sync.Once
		)
		work := make(chan crashEvent)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for ev := range work {
					status, b, err := deliver(srv, ev)
					if err == nil && status == http.StatusOK {
						mu.Lock()
						acked[ev.ID] = true
						mu.Unlock()
						if n.Add(1) >= int64(len(events)/3) {
							once.Do(func() { _ = srv.cmd.Process.Signal(syscall.SIGKILL) })
						}
					} else if err == nil && status < 500 {
						t.Errorf("%s: got %d %s, want 200 or no answer", ev.ID, status, b)
					}
				}
			})
		}
		for _, ev := range events {
			work <- ev
		}
		close(work)
		wg.Wait()
		<-srv.done
		if st, ok := srv.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || st.Signal() != syscall.SIGKILL {
			t.Fatalf("the process was not killed: %v", srv.cmd.ProcessState)
		}
		if len(acked) == 0 || len(acked) == len(events) {
			t.Fatalf("got %d of %d events acknowledged before the kill, want some but not all", len(acked), len(events))
		}
		t.Logf("%d of %d events acknowledged before the kill", len(acked), len(events))

		// Restart on the same database and redeliver, as Stripe does,
		// every event without a 2xx, and the acknowledged ones once more.
		srv = startServe(t, vars)
		var mu2 sync.Mutex
		committedUnacked := 0
		work = make(chan crashEvent)
		for range 8 {
			wg.Go(func() {
				for ev := range work {
					status, b, err := deliver(srv, ev)
					var ack struct {
						Received  bool
						Duplicate bool
					}
					if err != nil || status != http.StatusOK || json.Unmarshal(b, &ack) != nil || !ack.Received {
						t.Errorf("redeliver %s: got %d %s %v, want 200", ev.ID, status, b, err)
						continue
					}
					mu2.Lock()
					switch {
					case acked[ev.ID] && !ack.Duplicate:
						t.Errorf("%s was acknowledged before the kill but was not stored", ev.ID)
					case !acked[ev.ID] && ack.Duplicate:
						committedUnacked++
					}
					mu2.Unlock()
				}
			})
		}
		for _, ev := range events {
			work <- ev
		}
		close(work)
		wg.Wait()
		t.Logf("%d events were stored but not acknowledged before the kill", committedUnacked)
		srv.stop(t)

		ring, err := secret.ParseKeyring(masterKey, "")
		if err != nil {
			t.Fatal(err)
		}
		db, err := store.Open(ctx, dsn, store.Options{Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		t.Run("LedgerOncePerEvent", func(t *testing.T) {
			seen := map[string]int{}
			after := ""
			for {
				evs, more, err := db.ListWebhookEvents(ctx, creds.ProjectID, billing.EnvTest, 100, after)
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs {
					seen[ev.ID]++
					if ev.Status != billing.EventApplied {
						t.Errorf("%s: got status %q, want applied", ev.ID, ev.Status)
					}
				}
				if !more {
					break
				}
				after = evs[len(evs)-1].ID
			}
			if len(seen) != len(events) {
				t.Errorf("ledger: got %d events, want %d", len(seen), len(events))
			}
			for _, ev := range events {
				if seen[ev.ID] != 1 {
					t.Errorf("%s: got %d ledger rows, want 1", ev.ID, seen[ev.ID])
				}
			}
		})
		t.Run("MirrorComplete", func(t *testing.T) {
			for sub, want := range newest {
				got, err := db.FindSubscription(ctx, creds.ProjectID, billing.EnvTest, sub)
				if err != nil {
					t.Errorf("%s: %v", sub, err)
					continue
				}
				if got.Status != want.Status || !got.EventAt.Equal(want.Created) {
					t.Errorf("%s: got %s from %v, want %s from %s at %v", sub, got.Status, got.EventAt, want.Status, want.ID, want.Created)
				}
			}
		})
	})
}
