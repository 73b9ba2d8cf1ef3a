package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/apitest"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/buyertoken/buyertokentest"
	"github.com/stackfordevs/billing/internal/jobs"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/internal/stripemock"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter"
)

const adminToken = "test-admin-token-0123456789abcdefghijkl"

// testEnv is the whole HTTP app over a real listener, with a real store, a
// real keyring and a Stripe (stripe-mock unless the test swaps it).
type testEnv struct {
	t         *testing.T
	DB        *store.DB
	URL       string
	HTTP      *http.Client // validates every API response against openapi.yaml
	API       *gen.ClientWithResponses
	StripeURL string
	Logs      *syncBuffer
	secrets   []string // values that must never appear in a log line
	mu        sync.Mutex

	Jobs *jobs.Service // runs the sync jobs the app starts
}

// envOption changes the app's configuration before it is built.
type envOption func(*server.Config)

// withStripe points the adapter at another Stripe (a stand-in).
func withStripe(url string, cfg stripeadapter.Config) envOption {
	return func(c *server.Config) {
		cfg.BaseURL = url
		c.Stripe = stripeadapter.New(cfg)
	}
}

// newKeyring returns a keyring with a fresh random master key.
func newKeyring(t testing.TB) *secret.Keyring {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ring, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// eachEnv runs fn on every storage backend.
func eachEnv(t *testing.T, fn func(t *testing.T, e *testEnv), opts ...envOption) {
	t.Helper()
	ring := newKeyring(t)
	storetest.EachDB(t, ring, func(t *testing.T, db *store.DB) {
		fn(t, newTestEnv(t, db, opts...))
	})
}

func newTestEnv(t *testing.T, db *store.DB, opts ...envOption) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &testEnv{t: t, DB: db, Logs: logs, StripeURL: stripemock.Start(t)}
	cfg := server.Config{
		Store:      db,
		Stripe:     stripeadapter.New(stripeadapter.Config{BaseURL: e.StripeURL, Logger: logger}),
		Logger:     logger,
		AdminToken: adminToken,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.SyncJobs == nil {
		if cfg.Bus == nil {
			cfg.Bus = bus.New(nil)
		}
		resyncs := mirror.New(mirror.Config{Store: db, Bus: cfg.Bus, Logger: logger, Now: cfg.Now,
			Accounts: mirror.NewAccounts(db.FindStripeSettings, cfg.Stripe)})
		e.Jobs = jobs.New(jobs.Options{Store: db, Resyncer: resyncs, Logger: logger, Now: cfg.Now})
		cfg.SyncJobs = e.Jobs
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.Jobs.Run(ctx)
		}()
		t.Cleanup(func() {
			stop()
			<-done
		})
	}
	app, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	e.HTTP = apitest.NewHTTPClient(t, srv.URL)
	e.API, err = gen.NewClientWithResponses(srv.URL, gen.WithHTTPClient(e.HTTP))
	if err != nil {
		t.Fatal(err)
	}
	e.secret(adminToken)
	t.Cleanup(func() { e.assertLogsClean() })
	return e
}

// secret registers a value that must never appear in the logs.
func (e *testEnv) secret(s string) {
	e.mu.Lock()
	e.secrets = append(e.secrets, s)
	e.mu.Unlock()
}

func (e *testEnv) assertLogsClean() {
	logs := e.Logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.secrets {
		if s != "" && strings.Contains(logs, s) {
			e.t.Errorf("a secret (…%s) appears in the logs", s[len(s)-4:])
		}
	}
}

// admin authenticates a generated-client call as the operator.
func admin(ctx context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+adminToken)
	return nil
}

// testProject is a project with Stripe test keys and HS256 buyer tokens.
type testProject struct {
	e                                      *testEnv
	TenantID, ProjectID, APIKey, SecretKey string
	StripeKey, PublishableKey, WebhookKey  string
	HS256                                  string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newTenant creates a tenant through the admin API.
func (e *testEnv) newTenant(t *testing.T) string {
	t.Helper()
	resp, err := e.API.AdminCreateTenantWithResponse(context.Background(), gen.NameRequest{Name: "Tenant " + randHex(3)}, admin)
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("create tenant: %v %s", err, body(resp))
	}
	return resp.JSON201.Id
}

// newProject creates a project of tenantID (a new tenant when empty) and
// configures Stripe test keys and HS256 buyer tokens for it.
func (e *testEnv) newProject(t *testing.T, tenantID string) *testProject {
	t.Helper()
	ctx := context.Background()
	if tenantID == "" {
		tenantID = e.newTenant(t)
	}
	resp, err := e.API.AdminCreateProjectWithResponse(ctx, tenantID, gen.NameRequest{Name: "App " + randHex(3)}, admin)
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("create project: %v %s", err, body(resp))
	}
	c := resp.JSON201
	p := &testProject{
		e: e, TenantID: c.TenantId, ProjectID: c.ProjectId, APIKey: c.ApiKey, SecretKey: c.SecretKey,
		StripeKey:      "sk_test_" + randHex(12),
		PublishableKey: "pk_test_" + randHex(12),
		WebhookKey:     "whsec_" + randHex(16),
		HS256:          "hs256-" + randHex(24),
	}
	e.secret(p.SecretKey)
	e.secret(p.StripeKey)
	e.secret(p.WebhookKey)
	e.secret(p.HS256)
	env := gen.EnvironmentTest
	sr, err := e.API.PutStripeSetupWithResponse(ctx, &gen.PutStripeSetupParams{Environment: &env},
		gen.StripeSetupRequest{SecretKey: p.StripeKey, PublishableKey: p.PublishableKey, WebhookSecret: &p.WebhookKey}, p.creds)
	if err != nil || sr.JSON200 == nil {
		t.Fatalf("put stripe setup: %v %s", err, body(sr))
	}
	ar, err := e.API.PutAuthSetupWithResponse(ctx, gen.AuthSetupRequest{Hs256Secret: &p.HS256}, p.creds)
	if err != nil || ar.JSON200 == nil {
		t.Fatalf("put auth setup: %v %s", err, body(ar))
	}
	return p
}

// creds sets the project's four credential headers.
func (p *testProject) creds(ctx context.Context, req *http.Request) error {
	p.setCreds(req.Header)
	return nil
}

func (p *testProject) setCreds(h http.Header) {
	h.Set("x-api-key", p.APIKey)
	h.Set("x-secret-key", p.SecretKey)
	h.Set("x-tenant-id", p.TenantID)
	h.Set("x-project-id", p.ProjectID)
}

// token mints a buyer token for sub and email, valid for an hour.
func (p *testProject) token(t testing.TB, sub, email string) string {
	claims := map[string]any{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	if email != "" {
		claims["email"] = email
	}
	return buyertokentest.SignHS256(t, p.HS256, claims)
}

// buyer authenticates a generated-client call as the buyer sub.
func (p *testProject) buyer(t testing.TB, sub, email string) gen.RequestEditorFn {
	tok := p.token(t, sub, email)
	return func(ctx context.Context, req *http.Request) error {
		p.setCreds(req.Header)
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

// do sends a raw request (for the seed's curl examples and malformed input)
// through the validating client.
func (e *testEnv) do(t testing.TB, method, path string, headers http.Header, reqBody io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, reqBody)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range headers {
		req.Header[k] = vs
	}
	if reqBody != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// headers returns the project's credential headers, plus extra pairs.
func (p *testProject) headers(kv ...string) http.Header {
	h := http.Header{}
	p.setCreds(h)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// response is what every generated-client response has.
type response interface {
	StatusCode() int
	GetBody() []byte
}

// body renders a generated response for a failure message.
func body(r response) string {
	if v := reflect.ValueOf(r); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return "<no response>"
	}
	return fmt.Sprintf("%d %s", r.StatusCode(), r.GetBody())
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type serverConfig = server.Config

// apiError decodes the error envelope of a response body.
func apiError(t testing.TB, b []byte) gen.ErrorBody {
	t.Helper()
	var env gen.Error
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("not an error envelope: %s", b)
	}
	return env.Error
}

func errorMessage(t testing.TB, b []byte) string { return apiError(t, b).Message }

// wantError asserts a status and, when param is not empty, the field named.
func wantError(t testing.TB, resp *http.Response, b []byte, status int, param string) gen.ErrorBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("got %d %s, want %d", resp.StatusCode, b, status)
	}
	eb := apiError(t, b)
	if param != "" && (eb.Param == nil || *eb.Param != param) {
		t.Errorf("got error %+v (param %v), want param %q", eb, deref(eb.Param), param)
	}
	if !strings.Contains(eb.Message, strings.SplitN(param, ".", 2)[0]) {
		t.Errorf("got message %q, want it to name %q", eb.Message, param)
	}
	return eb
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// storeFor returns a fresh SQLite store with a real keyring, for tests that
// exercise something other than the storage backend.
func storeFor(t *testing.T) *store.DB {
	return storetest.MustOpenDB(t, newKeyring(t))
}
