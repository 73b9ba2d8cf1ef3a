package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// jobStripe returns a stand-in for a Stripe account of 150 customers and
// subscriptions, one product and one price, behind a gate on the
// subscription list, opened unless closed.
func jobStripe(t testing.TB, closed bool) *stripetest.Gate {
	account := &pagedStripe{lists: map[string][]string{}, pages: map[string][]string{}}
	for i := range 150 {
		account.lists["/v1/customers"] = append(account.lists["/v1/customers"], fmt.Sprintf(
			`{"id":"cus_job%03d","object":"customer","email":"job%03d@example.com","created":1700000000}`, i, i))
		account.lists["/v1/subscriptions"] = append(account.lists["/v1/subscriptions"], fmt.Sprintf(
			`{"id":"sub_job%03d","object":"subscription","status":"active","customer":"cus_job%03d","created":1700000000,
			"items":{"data":[{"id":"si_%d","current_period_end":1900000000,"price":{"id":"price_job","product":"prod_job"}}]}}`, i, i, i))
	}
	account.lists["/v1/products"] = []string{`{"id":"prod_job","object":"product","name":"Job Plan","active":true}`}
	account.lists["/v1/prices"] = []string{`{"id":"price_job","object":"price","product":"prod_job","active":true}`}
	g := stripetest.NewGate(t, "/v1/subscriptions", account)
	if !closed {
		g.Open()
	}
	return g
}

// syncJobJSON is the API's sync job.
type syncJobJSON struct {
	ID       string             `json:"id"`
	State    string             `json:"state"`
	Origin   string             `json:"origin"`
	Attempts int                `json:"attempts"`
	Counts   billing.SyncCounts `json:"counts"`
	Error    *string            `json:"error"`
}

// awaitJob asks p for the job until done says so, for up to a minute.
func (p *serveProcess) awaitJob(t testing.TB, c projectCreds, id string, done func(syncJobJSON) bool) syncJobJSON {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var job syncJobJSON
		p.mustSend(t, "GET", "/v1/sync/"+id, c.headers(), "", http.StatusOK, &job)
		if done(job) {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: still %+v after a minute\n%s", id, job, p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSyncJobSurvivesKill kills `billing serve` with SIGKILL while a sync
// job runs, starts it again on the same database, and follows the job: it
// is resumed once its lease runs out and succeeds; it never stays running.
func TestSyncJobSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	storetest.Each(t, func(t *testing.T, dsn string) {
		stripe := jobStripe(t, true)
		vars := map[string]string{
			"BILLING_DATABASE_URL":       dsn,
			"BILLING_MASTER_KEY":         newMasterKey(t),
			"BILLING_STRIPE_API_BASE":    stripe.URL,
			"BILLING_RECONCILE_INTERVAL": "0",
		}
		a := startServe(t, vars)
		creds := a.project(t)
		a.putStripeKeys(t, creds, "sk_test_kill0123456789")
		var job syncJobJSON
		a.mustSend(t, "POST", "/v1/sync?environment=test", creds.headers(), "", http.StatusAccepted, &job)
		stripe.WaitHeld(t)
		running := a.awaitJob(t, creds, job.ID, func(j syncJobJSON) bool { return j.State == billing.SyncRunning })
		if running.Attempts != 1 {
			t.Fatalf("got %+v, want running on its first attempt", running)
		}

		if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-a.done
		stripe.Open()

		b := startServe(t, vars)
		got := b.awaitJob(t, creds, job.ID, func(j syncJobJSON) bool {
			return j.State == billing.SyncSucceeded || j.State == billing.SyncFailed
		})
		want := billing.SyncCounts{Customers: 150, Products: 1, Prices: 1, Subscriptions: 150}
		if got.State != billing.SyncSucceeded || got.Attempts != 2 || got.Counts != want || got.Error != nil {
			t.Errorf("got %+v, want resumed and succeeded on the second attempt with %+v\n%s", got, want, b.logs())
		}
		if !strings.Contains(b.logs(), `"msg":"sync job resumed"`) {
			t.Errorf("the restarted instance did not log the resumption:\n%s", b.logs())
		}
		b.stop(t)
	})
}

// TestReconcileAcrossInstances starts two `billing serve` processes at once
// on one PostgreSQL, with a project whose keys were saved two hours ago and
// a reconciliation period of an hour: exactly one of them resyncs it.
func TestReconcileAcrossInstances(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip("needs BILLING_TEST_POSTGRES_URL")
	}
	ctx := context.Background()
	dsn := storetest.NewDSN(t, storetest.Postgres)
	masterKey := newMasterKey(t)
	ring, err := secret.ParseKeyring(masterKey, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, dsn, store.Options{Keyring: ring, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := storetest.MustCreateProject(t, db)
	err = db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: p.ID, Environment: billing.EnvTest,
		SecretKey: "sk_test_reconcile0123456789", PublishableKey: "pk_test_reconcile0123456789"})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	stripe := jobStripe(t, false)
	vars := map[string]string{
		"BILLING_DATABASE_URL":       dsn,
		"BILLING_MASTER_KEY":         masterKey,
		"BILLING_STRIPE_API_BASE":    stripe.URL,
		"BILLING_RECONCILE_INTERVAL": "1h",
		"BILLING_LOG_LEVEL":          "debug",
	}
	var procs [2]*serveProcess
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() { procs[i] = startServe(t, vars) })
	}
	wg.Wait()

	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		checked := strings.Contains(procs[0].logs(), `"msg":"reconciliation checked"`) &&
			strings.Contains(procs[1].logs(), `"msg":"reconciliation checked"`)
		var states []string
		rows, err := conn.QueryContext(ctx, `SELECT state || ' ' || origin FROM sync_jobs WHERE project_id = $1`, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			states = append(states, s)
		}
		rows.Close()
		if checked && len(states) == 1 && states[0] == "succeeded schedule" {
			break
		}
		if len(states) > 1 || time.Now().After(deadline) {
			t.Fatalf("jobs: got %q, want one succeeded schedule job\n%s\n%s", states, procs[0].logs(), procs[1].logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := stripe.Hits("/v1/products"); n != 1 {
		t.Errorf("Stripe was read %d times, want once", n)
	}
	var ran []int
	for i, proc := range procs {
		if strings.Contains(proc.logs(), `"msg":"sync job started"`) {
			ran = append(ran, i)
		}
		proc.stop(t)
	}
	if len(ran) != 1 {
		t.Errorf("instances that ran the job: %v, want exactly one", ran)
	}
}

func TestReconcileIntervalConfig(t *testing.T) {
	cases := map[string]struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		"Default":     {"", 24 * time.Hour, false},
		"Off":         {"0", 0, false},
		"Hours":       {"6h", 6 * time.Hour, false},
		"ErrNegative": {"-1h", 0, true},
		"ErrWord":     {"daily", 0, true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadConfig(envFor(map[string]string{"BILLING_RECONCILE_INTERVAL": c.value}))
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), "BILLING_RECONCILE_INTERVAL") {
					t.Errorf("got %v, want an error naming BILLING_RECONCILE_INTERVAL", err)
				}
				return
			}
			if err != nil || cfg.ReconcileInterval != c.want {
				t.Errorf("got %v, %v; want %v", cfg.ReconcileInterval, err, c.want)
			}
		})
	}
}
