package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/internal/stripemock"
)

// Keys the service is given for the benchmark project; stripe-mock accepts
// any test key.
const (
	stripeSecretKey      = "sk_test_billingbench"
	stripePublishableKey = "pk_test_billingbench"
	webhookSecret        = "whsec_billingbench"
	// unlimited is the hourly rate limit the service runs with.
	unlimited = "1000000000"
)

// credentials are a project's, as the admin API returns them.
type credentials struct {
	TenantID  string `json:"tenant_id"`
	ProjectID string `json:"project_id"`
	APIKey    string `json:"api_key"`
	SecretKey string `json:"secret_key"`
}

// header returns the four credential headers.
func (c credentials) header() http.Header {
	return http.Header{
		"X-Api-Key":    {c.APIKey},
		"X-Secret-Key": {c.SecretKey},
		"X-Tenant-Id":  {c.TenantID},
		"X-Project-Id": {c.ProjectID},
		"Accept":       {"application/json"},
	}
}

// bench holds everything a run starts, to stop it at the end.
type bench struct {
	opts options
	log  io.Writer

	dir        string
	serviceBin string
	anchorBin  string
	masterKey  string
	adminToken string
	run        string // 8 hex characters naming this run's objects

	stripe  *stripemock.Process
	db      *database
	gdb     *gorm.DB
	service *process
	anchor  *process

	project       credentials // the project under load
	anchorProject credentials // owner of the webhook anchor's rows
	hitBody       []byte      // the service's answer for a seeded customer

	peer *process // stripe-sync-engine, with -peer
	// profiled is the process -perf records: the service under test.
	profiled *process
	peerDB   *database // its database

	began  time.Time
	starts []float64 // ms from process start to /readyz 200
	notes  []string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "billing-bench: "+format+"\n", args...)
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// prepare builds the binaries, starts stripe-mock, measures the start time,
// creates the database, starts the service, sets a project up, seeds the
// mirror and starts the anchor.
func (b *bench) prepare(ctx context.Context) error {
	root, err := stripemock.ModuleRoot()
	if err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "billing-bench-"); err != nil {
		return err
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	b.run = hex.EncodeToString(r[:])
	if b.masterKey, err = secret.GenerateMasterKey(); err != nil {
		return err
	}
	if b.adminToken, err = secret.NewSecretKey(); err != nil {
		return err
	}

	b.logf("building cmd/billing and the anchor into %s", b.dir)
	if b.serviceBin, b.anchorBin, err = buildBinaries(ctx, root, filepath.Join(b.dir, "bin")); err != nil {
		return err
	}
	b.logf("starting stripe-mock")
	if b.stripe, err = stripemock.StartProcess(); err != nil {
		return err
	}

	b.logf("measuring %d starts on fresh SQLite databases", b.opts.starts)
	if err := b.measureStarts(ctx); err != nil {
		return err
	}

	if b.db, err = newDatabase(ctx, b.opts.db, b.opts.postgresURL, b.dir, "billing"); err != nil {
		return err
	}
	b.logf("starting the service on %s", b.opts.db)
	if b.service, err = b.startService(ctx, b.db.URL); err != nil {
		return err
	}
	if _, err := waitHTTP200(ctx, b.service.URL+"/readyz", b.service.exited, 30*time.Second); err != nil {
		return err
	}
	b.profiled = b.service
	if err := b.setUp(ctx); err != nil {
		return err
	}
	b.logf("seeding %d customers with subscriptions through the store", b.opts.customers)
	if err := seedMirror(ctx, b.db.URL, b.masterKey, b.project.ProjectID, b.opts.customers); err != nil {
		return err
	}
	if b.gdb, err = b.db.openGORM(); err != nil {
		return err
	}
	b.probe(ctx)

	bodyFile := filepath.Join(b.dir, "anchor-body.json")
	if err := os.WriteFile(bodyFile, b.hitBody, 0o600); err != nil {
		return err
	}
	b.logf("starting the anchor (bare Echo, %d-byte answer)", len(b.hitBody))
	if b.anchor, err = startProcess(ctx, "anchor", b.anchorBin, b.dir, nil, "-addr", "127.0.0.1:0", "-body", bodyFile); err != nil {
		return err
	}
	if b.opts.peer {
		return b.startPeer(ctx)
	}
	return nil
}

// serviceEnv is the service's whole environment.
func (b *bench) serviceEnv(dbURL string) []string {
	return []string{
		"BILLING_ADDR=127.0.0.1:0",
		"BILLING_DATABASE_URL=" + dbURL,
		"BILLING_MASTER_KEY=" + b.masterKey,
		"BILLING_ADMIN_TOKEN=" + b.adminToken,
		"BILLING_STRIPE_API_BASE=" + b.stripe.URL,
		"BILLING_RATE_LIMIT_CREATES_PER_HOUR=" + unlimited,
		"BILLING_RATE_LIMIT_QUERIES_PER_HOUR=" + unlimited,
	}
}

func (b *bench) startService(ctx context.Context, dbURL string) (*process, error) {
	return startProcess(ctx, "billing", b.serviceBin, b.dir, b.serviceEnv(dbURL), "serve")
}

// measureStarts starts the service several times, each on a fresh SQLite
// file, and records the time from process start to the first 200 of
// /readyz.
func (b *bench) measureStarts(ctx context.Context) error {
	for i := range b.opts.starts {
		dbURL := "sqlite:" + filepath.Join(b.dir, fmt.Sprintf("start-%d.db", i))
		p, err := b.startService(ctx, dbURL)
		if err != nil {
			return err
		}
		ready, err := waitHTTP200(ctx, p.URL+"/readyz", p.exited, 30*time.Second)
		p.Stop()
		if err != nil {
			return err
		}
		b.starts = append(b.starts, ms(ready.Sub(p.started)))
	}
	return nil
}

// call sends one JSON request to the service and decodes a 2xx answer into
// out; any other answer is an error that shows the body.
func (b *bench) call(ctx context.Context, method, path string, h http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		j, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.service.URL+path, body)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(got))
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, path, err, got)
		}
	}
	return nil
}

// setUp creates a tenant with two projects through the admin API and gives
// the first its Stripe test keys.
func (b *bench) setUp(ctx context.Context) error {
	admin := http.Header{"Authorization": {"Bearer " + b.adminToken}}
	var tenant struct{ ID string }
	if err := b.call(ctx, "POST", "/v1/admin/tenants", admin, map[string]string{"name": "Bench"}, &tenant); err != nil {
		return err
	}
	path := "/v1/admin/tenants/" + tenant.ID + "/projects"
	if err := b.call(ctx, "POST", path, admin, map[string]string{"name": "Bench"}, &b.project); err != nil {
		return err
	}
	if err := b.call(ctx, "POST", path, admin, map[string]string{"name": "Bench anchor rows"}, &b.anchorProject); err != nil {
		return err
	}
	return b.call(ctx, "PUT", "/v1/setup/stripe?environment=test", b.project.header(), map[string]string{
		"secret_key":      stripeSecretKey,
		"publishable_key": stripePublishableKey,
		"webhook_secret":  webhookSecret,
	}, nil)
}

// probe checks one hit and one miss of the subscription-status endpoint
// and keeps the hit's body for the anchor. A wrong answer is noted, not
// fatal: the table then shows what the endpoint does.
func (b *bench) probe(ctx context.Context) {
	type answer struct {
		Subscription *struct {
			Status string `json:"status"`
			Plan   struct {
				Name string `json:"name"`
			} `json:"plan"`
		} `json:"subscription"`
	}
	get := func(email string) (answer, []byte, error) {
		var raw json.RawMessage
		err := b.call(ctx, "GET", "/v1/customer/subscription?customerEmail="+email, b.project.header(), nil, &raw)
		var a answer
		if err == nil {
			err = json.Unmarshal(raw, &a)
		}
		return a, raw, err
	}
	hit, raw, err := get(seedEmail(0))
	switch {
	case err != nil:
		b.note("subscription status misbehaves for a seeded customer: %v", err)
	case hit.Subscription == nil || hit.Subscription.Status != "active" || hit.Subscription.Plan.Name != planName:
		b.note("subscription status for a seeded customer answered %s, want an active %q subscription", raw, planName)
	}
	b.hitBody = raw
	if len(raw) == 0 {
		b.hitBody = []byte(`{"subscription":null}`)
	}
	miss, raw, err := get(seedEmail(b.opts.customers + 1))
	switch {
	case err != nil:
		b.note("subscription status misbehaves for an unknown email: %v", err)
	case miss.Subscription != nil:
		b.note("subscription status for an unknown email answered %s, want null", raw)
	}
}

// stopServers stops the service, the anchor and the peer.
func (b *bench) stopServers() {
	for _, p := range []*process{b.anchor, b.service, b.peer} {
		if p != nil {
			p.Stop()
		}
	}
}

// close stops everything prepare started.
func (b *bench) close() {
	b.stopServers()
	if b.gdb != nil {
		closeGORM(b.gdb)
	}
	for _, db := range []*database{b.db, b.peerDB} {
		if db == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := db.drop(ctx); err != nil {
			b.logf("dropping a benchmark database: %v", err)
		}
		cancel()
	}
	if b.stripe != nil {
		b.stripe.Stop()
	}
	if b.dir != "" {
		if b.opts.keep {
			b.logf("kept %s", b.dir)
		} else {
			_ = os.RemoveAll(b.dir)
		}
	}
}

// describe notes the machine.
func (b *bench) describe() {
	b.note("machine: %d CPUs (GOMAXPROCS %d), %s/%s; service, anchor, stripe-mock, database and load generator share them",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
}

// trimLines shortens log lines for the notes.
func trimLines(lines []string, limit int) string {
	for i, l := range lines {
		if len(l) > limit {
			lines[i] = l[:limit] + "..."
		}
	}
	return strings.Join(lines, "\n      ")
}
