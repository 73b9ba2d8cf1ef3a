package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
)

// t0 is a Stripe-like event time; tests add seconds to it.
var t0 = time.Unix(1_700_000_000, 0).UTC()

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

var sealer = storetest.FakeSealer{}

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := billing.ErrorCode(err); got != code {
		t.Fatalf("error code: got %q (%v), want %q", got, err, code)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	t.Run("ErrUnknownScheme", func(t *testing.T) {
		_, err := store.Open(context.Background(), "mysql://localhost/x", store.Options{})
		wantCode(t, err, billing.EINVALID)
	})
	t.Run("ErrInMemory", func(t *testing.T) {
		_, err := store.Open(context.Background(), "sqlite::memory:", store.Options{})
		wantCode(t, err, billing.EINVALID)
	})
	t.Run("ErrPostgresDown", func(t *testing.T) {
		_, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?connect_timeout=2", store.Options{})
		if err == nil {
			t.Fatal("got no error")
		}
	})
	t.Run("SQLiteForms", func(t *testing.T) {
		dir := t.TempDir()
		for _, dsn := range []string{
			"sqlite:" + filepath.Join(dir, "a.db"),
			"sqlite://" + filepath.Join(dir, "b.db"),
			"file:" + filepath.Join(dir, "c.db"),
			filepath.Join(dir, "d.db"),
		} {
			db, err := store.Open(context.Background(), dsn, store.Options{})
			if err != nil {
				t.Fatalf("open %q: %v", dsn, err)
			}
			must(t, db.Migrate(context.Background()))
			if got := db.Backend(); got != "sqlite" {
				t.Errorf("backend of %q: got %q, want sqlite", dsn, got)
			}
			must(t, db.Close())
		}
		for _, name := range []string{"a.db", "b.db", "c.db", "d.db"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("database file %s: %v", name, err)
			}
		}
	})
	t.Run("Default", func(t *testing.T) {
		t.Chdir(t.TempDir())
		db, err := store.Open(context.Background(), "", store.Options{})
		must(t, err)
		must(t, db.Ping(context.Background()))
		must(t, db.Close())
		if _, err := os.Stat("billing.db"); err != nil {
			t.Errorf("default database file: %v", err)
		}
	})
}

func TestLoggerOmitsParameters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var buf bytes.Buffer
		db, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		must(t, err)
		defer db.Close()
		must(t, db.Migrate(ctx))
		must(t, db.CreateTenant(ctx, &billing.Tenant{ID: "ten_param_value", Name: "name-param-value"}))
		wantCode(t, db.CreateTenant(ctx, &billing.Tenant{ID: "ten_param_value", Name: "name-param-value"}), billing.ECONFLICT)
		if !strings.Contains(buf.String(), "INSERT INTO tenants") {
			t.Errorf("the failed statement was not logged: %q", buf.String())
		}
		if strings.Contains(buf.String(), "param-value") || strings.Contains(buf.String(), "param_value") {
			t.Errorf("the log holds a parameter: %q", buf.String())
		}
	})
}

func TestMigrate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		// Several processes migrating one fresh database at once.
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				db, err := store.Open(ctx, dsn, store.Options{})
				if err != nil {
					errs <- err
					return
				}
				defer db.Close()
				errs <- db.Migrate(ctx)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err)
		}

		db := storetest.MustOpenDSN(t, dsn, sealer)
		must(t, db.Migrate(ctx)) // again: idempotent
		v, err := db.SchemaVersion(ctx)
		must(t, err)
		if v < 1 {
			t.Errorf("schema version: got %d, want >= 1", v)
		}
		must(t, db.Ping(ctx))
	})
}

func TestClock(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	db, err := store.Open(ctx, storetest.NewDSN(t, storetest.SQLite), store.Options{Now: func() time.Time { return now }})
	must(t, err)
	defer db.Close()
	must(t, db.Migrate(ctx))
	tenant := &billing.Tenant{ID: "ten_1"}
	must(t, db.CreateTenant(ctx, tenant))
	got, err := db.FindTenantByID(ctx, "ten_1")
	must(t, err)
	if !tenant.CreatedAt.Equal(now) || !got.CreatedAt.Equal(now) {
		t.Errorf("created at: got %v and %v, want %v", tenant.CreatedAt, got.CreatedAt, now)
	}
	entries, err := db.ListTenantAudit(ctx, "ten_1", 1)
	must(t, err)
	if len(entries) != 1 || !entries[0].CreatedAt.Equal(now) {
		t.Errorf("audit entry: got %+v, want created at %v", entries, now)
	}
}

func TestTenantsAndProjects(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tenant := &billing.Tenant{ID: "ten_1", Name: "Acme"}
		must(t, db.CreateTenant(ctx, tenant))
		if tenant.CreatedAt.IsZero() {
			t.Error("CreatedAt not set")
		}
		got, err := db.FindTenantByID(ctx, "ten_1")
		must(t, err)
		if got.Name != "Acme" || !got.CreatedAt.Equal(tenant.CreatedAt) {
			t.Errorf("tenant: got %+v, want %+v", got, tenant)
		}
		wantCode(t, db.CreateTenant(ctx, &billing.Tenant{ID: "ten_1"}), billing.ECONFLICT)
		_, err = db.FindTenantByID(ctx, "ten_none")
		wantCode(t, err, billing.ENOTFOUND)

		p := &billing.Project{ID: "prj_1", TenantID: "ten_1", Name: "App", APIKey: "key_1", SecretHash: []byte{1, 2, 3}}
		must(t, db.CreateProject(ctx, p))
		for _, find := range []func() (*billing.Project, error){
			func() (*billing.Project, error) { return db.FindProjectByID(ctx, "prj_1") },
			func() (*billing.Project, error) { return db.FindProjectByAPIKey(ctx, "key_1") },
		} {
			got, err := find()
			must(t, err)
			if got.ID != "prj_1" || got.TenantID != "ten_1" || got.Name != "App" || got.APIKey != "key_1" ||
				string(got.SecretHash) != "\x01\x02\x03" || got.CreatedAt.IsZero() {
				t.Errorf("project: got %+v", got)
			}
		}
		_, err = db.FindProjectByID(ctx, "prj_none")
		wantCode(t, err, billing.ENOTFOUND)
		_, err = db.FindProjectByAPIKey(ctx, "key_none")
		wantCode(t, err, billing.ENOTFOUND)

		wantCode(t, db.CreateProject(ctx, &billing.Project{ID: "prj_2", TenantID: "ten_none", APIKey: "key_2"}), billing.ENOTFOUND)
		wantCode(t, db.CreateProject(ctx, &billing.Project{ID: "prj_2", TenantID: "ten_1", APIKey: "key_1"}), billing.ECONFLICT)
		wantCode(t, db.CreateProject(ctx, &billing.Project{ID: "prj_1", TenantID: "ten_1", APIKey: "key_3"}), billing.ECONFLICT)

		must(t, db.UpdateProjectSecret(ctx, "prj_1", []byte{9}))
		got2, err := db.FindProjectByID(ctx, "prj_1")
		must(t, err)
		if string(got2.SecretHash) != "\x09" {
			t.Errorf("secret hash: got %x, want 09", got2.SecretHash)
		}
		wantCode(t, db.UpdateProjectSecret(ctx, "prj_none", []byte{9}), billing.ENOTFOUND)
	})
}

func TestAudit(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := billing.WithActor(context.Background(), "admin:alice")
		must(t, db.CreateTenant(ctx, &billing.Tenant{ID: "ten_1", Name: "Acme"}))
		must(t, db.CreateProject(ctx, &billing.Project{ID: "prj_1", TenantID: "ten_1", APIKey: "key_1"}))
		must(t, db.UpdateProjectSecret(ctx, "prj_1", []byte("h")))
		must(t, db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: "prj_1", Environment: billing.EnvTest,
			SecretKey: "sk_test_SECRETVALUE1234", PublishableKey: "pk_test_1", WebhookSecret: "whsec_SECRETVALUE"}))
		must(t, db.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: "prj_1", HS256Secret: "hs-SECRETVALUE"}))

		// Failed writes leave no audit row behind.
		wantCode(t, db.CreateProject(ctx, &billing.Project{ID: "prj_2", TenantID: "ten_1", APIKey: "key_1"}), billing.ECONFLICT)
		wantCode(t, db.CreateTenant(ctx, &billing.Tenant{ID: "ten_1"}), billing.ECONFLICT)
		wantCode(t, db.UpdateProjectSecret(ctx, "prj_none", nil), billing.ENOTFOUND)

		entries, err := db.ListAudit(ctx, "prj_1", 0)
		must(t, err)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
			if e.Actor != "admin:alice" || e.TenantID != "ten_1" || e.ProjectID != "prj_1" || e.CreatedAt.IsZero() {
				t.Errorf("entry: got %+v", e)
			}
			if strings.Contains(e.Detail, "SECRETVALUE") {
				t.Errorf("entry %s detail holds a secret: %s", e.Action, e.Detail)
			}
		}
		want := "auth_settings.put stripe_settings.put project.rotate_secret project.create"
		if got := strings.Join(actions, " "); got != want {
			t.Errorf("actions: got %q, want %q", got, want)
		}

		tenantEntries, err := db.ListTenantAudit(ctx, "ten_1", 2)
		must(t, err)
		if len(tenantEntries) != 2 || tenantEntries[0].Action != "auth_settings.put" {
			t.Errorf("tenant entries with limit 2: got %+v", tenantEntries)
		}
		all, err := db.ListTenantAudit(ctx, "ten_1", 100)
		must(t, err)
		if len(all) != 5 || all[4].Action != "tenant.create" || all[4].ProjectID != "" {
			t.Errorf("tenant entries: got %+v", all)
		}

		// Without an actor the entry says "system".
		must(t, db.UpdateProjectSecret(context.Background(), "prj_1", []byte("h2")))
		entries, err = db.ListAudit(ctx, "prj_1", 1)
		must(t, err)
		if len(entries) != 1 || entries[0].Actor != "system" {
			t.Errorf("entry without actor: got %+v", entries)
		}
	})
}

func TestStripeSettings(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		_, err := db.FindStripeSettings(ctx, p.ID, billing.EnvTest)
		wantCode(t, err, billing.ENOTFOUND)

		in := billing.StripeSettings{ProjectID: p.ID, Environment: billing.EnvTest,
			SecretKey: "sk_test_abc", PublishableKey: "pk_test_abc", WebhookSecret: "whsec_abc", RefetchObjects: true}
		must(t, db.PutStripeSettings(ctx, in))
		live := billing.StripeSettings{ProjectID: p.ID, Environment: billing.EnvLive,
			SecretKey: "sk_live_xyz", PublishableKey: "pk_live_xyz"}
		must(t, db.PutStripeSettings(ctx, live))

		got, err := db.FindStripeSettings(ctx, p.ID, billing.EnvTest)
		must(t, err)
		if got.SecretKey != in.SecretKey || got.PublishableKey != in.PublishableKey ||
			got.WebhookSecret != in.WebhookSecret || !got.RefetchObjects || got.UpdatedAt.IsZero() {
			t.Errorf("test settings: got %+v, want %+v", got, in)
		}
		got, err = db.FindStripeSettings(ctx, p.ID, billing.EnvLive)
		must(t, err)
		if got.SecretKey != "sk_live_xyz" || got.WebhookSecret != "" || got.RefetchObjects {
			t.Errorf("live settings: got %+v", got)
		}

		in.SecretKey, in.WebhookSecret = "rk_test_new", ""
		must(t, db.PutStripeSettings(ctx, in))
		got, err = db.FindStripeSettings(ctx, p.ID, billing.EnvTest)
		must(t, err)
		if got.SecretKey != "rk_test_new" || got.WebhookSecret != "" {
			t.Errorf("replaced settings: got %+v", got)
		}

		wantCode(t, db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: "prj_none", Environment: billing.EnvTest,
			SecretKey: "sk_test_1"}), billing.ENOTFOUND)
		wantCode(t, db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: p.ID, Environment: "prod",
			SecretKey: "sk_test_1"}), billing.EINVALID)
	})
}

func TestAuthSettings(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		_, err := db.FindAuthSettings(ctx, p.ID)
		wantCode(t, err, billing.ENOTFOUND)

		in := billing.AuthSettings{ProjectID: p.ID, HS256Secret: "shared", Issuer: "iss", Audience: "aud"}
		must(t, db.PutAuthSettings(ctx, in))
		got, err := db.FindAuthSettings(ctx, p.ID)
		must(t, err)
		if got.HS256Secret != "shared" || got.Issuer != "iss" || got.Audience != "aud" || got.JWKSURL != "" {
			t.Errorf("auth settings: got %+v, want %+v", got, in)
		}
		must(t, db.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: p.ID, JWKSURL: "https://idp/jwks"}))
		got, err = db.FindAuthSettings(ctx, p.ID)
		must(t, err)
		if got.HS256Secret != "" || got.JWKSURL != "https://idp/jwks" || got.Issuer != "" {
			t.Errorf("replaced auth settings: got %+v", got)
		}
		wantCode(t, db.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: "prj_none"}), billing.ENOTFOUND)
	})
}

func TestRotateSecrets(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		old := storetest.MustOpenDSN(t, dsn, storetest.FakeSealer{KeyID: "old"})
		p1 := storetest.MustCreateProject(t, old)
		p2 := storetest.MustCreateProject(t, old)
		must(t, old.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: p1.ID, Environment: billing.EnvTest,
			SecretKey: "sk_test_1", WebhookSecret: "whsec_1"}))
		must(t, old.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: p1.ID, Environment: billing.EnvLive,
			SecretKey: "sk_live_1"}))
		must(t, old.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: p2.ID, HS256Secret: "hs_2"}))

		db := storetest.MustOpenDSN(t, dsn, storetest.FakeSealer{KeyID: "new"})
		// Written under the current key: not counted.
		must(t, db.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: p1.ID, HS256Secret: "hs_1"}))

		n, err := db.RotateSecrets(ctx)
		must(t, err)
		if n != 4 {
			t.Errorf("rotated: got %d, want 4", n)
		}
		n, err = db.RotateSecrets(ctx)
		must(t, err)
		if n != 0 {
			t.Errorf("rotated again: got %d, want 0", n)
		}

		s, err := db.FindStripeSettings(ctx, p1.ID, billing.EnvTest)
		must(t, err)
		if s.SecretKey != "sk_test_1" || s.WebhookSecret != "whsec_1" {
			t.Errorf("after rotation: got %+v", s)
		}
		a, err := db.FindAuthSettings(ctx, p2.ID)
		must(t, err)
		if a.HS256Secret != "hs_2" {
			t.Errorf("after rotation: got %+v", a)
		}
	})
}

// TestSecretsNotStoredInPlaintext reads the SQLite files byte by byte.
func TestSecretsNotStoredInPlaintext(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "billing.db")
	db, err := store.Open(ctx, "sqlite:"+path, store.Options{Keyring: sealer})
	must(t, err)
	must(t, db.Migrate(ctx))
	p := storetest.MustCreateProject(t, db)
	secrets := []string{"sk_test_51PlainTextSecretKey", "whsec_PlainTextWebhookSecret", "PlainTextHS256SharedSecret"}
	must(t, db.PutStripeSettings(ctx, billing.StripeSettings{ProjectID: p.ID, Environment: billing.EnvTest,
		SecretKey: secrets[0], PublishableKey: "pk_test_visible", WebhookSecret: secrets[1]}))
	must(t, db.PutAuthSettings(ctx, billing.AuthSettings{ProjectID: p.ID, HS256Secret: secrets[2]}))

	check := func(when string) {
		t.Helper()
		files, _ := filepath.Glob(path + "*")
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			must(t, err)
			all = append(all, b...)
		}
		if !strings.Contains(string(all), "pk_test_visible") {
			t.Fatalf("%s: the check reads the wrong files: %v", when, files)
		}
		for _, s := range secrets {
			if strings.Contains(string(all), s) {
				t.Errorf("%s: %q found in the database files", when, s)
			}
		}
	}
	check("open")
	must(t, db.Close())
	check("closed")
}

func TestCustomers(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		c := billing.Customer{ID: "cus_1", ProjectID: p.ID, Environment: billing.EnvTest, Email: "Ann@Example.com",
			Name: "Ann", Description: "d", Phone: "+1", Metadata: map[string]string{"plan": "gold"},
			UserID: "user_1", Created: at(0), EventAt: at(0)}
		must(t, db.UpsertCustomer(ctx, c))
		got, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		must(t, err)
		if got.Email != c.Email || got.Name != "Ann" || got.Description != "d" || got.Phone != "+1" ||
			got.Metadata["plan"] != "gold" || got.UserID != "user_1" || !got.Created.Equal(at(0)) ||
			!got.EventAt.Equal(at(0)) || got.CreatedAt.IsZero() || got.Deleted {
			t.Errorf("customer: got %+v, want %+v", got, c)
		}

		// Overwrite keeps the owner when the new record has none.
		c.Name, c.UserID, c.Metadata = "Ann B", "", nil
		must(t, db.UpsertCustomer(ctx, c))
		got, err = db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		must(t, err)
		if got.Name != "Ann B" || got.UserID != "user_1" || got.Metadata != nil {
			t.Errorf("overwritten customer: got %+v", got)
		}

		_, err = db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_none")
		wantCode(t, err, billing.ENOTFOUND)
		wantCode(t, db.UpsertCustomer(ctx, billing.Customer{ID: "cus_x", ProjectID: "prj_none", Environment: billing.EnvTest}),
			billing.ENOTFOUND)

		deleted := billing.Customer{ID: "cus_1", ProjectID: p.ID, Environment: billing.EnvTest, Deleted: true}
		must(t, db.UpsertCustomer(ctx, deleted))
		_, err = db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		wantCode(t, err, billing.ENOTFOUND)
		must(t, db.UpsertCustomer(ctx, deleted))
	})
}

func TestListCustomers(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		other := storetest.MustCreateProject(t, db)
		add := func(projectID string, env billing.Environment, id, email string, created int) {
			t.Helper()
			must(t, db.UpsertCustomer(ctx, billing.Customer{ID: id, ProjectID: projectID, Environment: env,
				Email: email, Created: at(created)}))
		}
		// cus_3 and cus_4 share a created second: the id breaks the tie.
		add(p.ID, billing.EnvTest, "cus_1", "a@x.com", 1)
		add(p.ID, billing.EnvTest, "cus_2", "B@x.com", 2)
		add(p.ID, billing.EnvTest, "cus_3", "b@X.com", 3)
		add(p.ID, billing.EnvTest, "cus_4", "c@x.com", 3)
		add(p.ID, billing.EnvTest, "cus_5", "d@x.com", 5)
		add(p.ID, billing.EnvLive, "cus_live", "a@x.com", 9)
		add(other.ID, billing.EnvTest, "cus_other", "a@x.com", 9)
		must(t, db.UpsertCustomer(ctx, billing.Customer{ID: "cus_5", ProjectID: p.ID, Environment: billing.EnvTest, Deleted: true}))

		list := func(f billing.CustomerFilter) (string, bool) {
			t.Helper()
			if f.ProjectID == "" {
				f.ProjectID = p.ID
			}
			if f.Environment == "" {
				f.Environment = billing.EnvTest
			}
			got, more, err := db.ListCustomers(ctx, f)
			must(t, err)
			var ids []string
			for _, c := range got {
				ids = append(ids, c.ID)
			}
			return strings.Join(ids, ","), more
		}
		for _, tc := range []struct {
			name     string
			filter   billing.CustomerFilter
			want     string
			wantMore bool
		}{
			{"All", billing.CustomerFilter{}, "cus_4,cus_3,cus_2,cus_1", false},
			{"Limit", billing.CustomerFilter{Limit: 2}, "cus_4,cus_3", true},
			{"Cursor", billing.CustomerFilter{Limit: 2, StartingAfter: "cus_3"}, "cus_2,cus_1", false},
			{"CursorTie", billing.CustomerFilter{Limit: 1, StartingAfter: "cus_4"}, "cus_3", true},
			{"Email", billing.CustomerFilter{Email: " B@X.COM "}, "cus_3,cus_2", false},
			{"EmailCursor", billing.CustomerFilter{Email: "b@x.com", StartingAfter: "cus_3"}, "cus_2", false},
			{"Live", billing.CustomerFilter{Environment: billing.EnvLive}, "cus_live", false},
			{"OtherProject", billing.CustomerFilter{ProjectID: other.ID}, "cus_other", false},
			{"NoMatch", billing.CustomerFilter{Email: "zed@x.com"}, "", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, more := list(tc.filter)
				if got != tc.want || more != tc.wantMore {
					t.Errorf("got %q more=%v, want %q more=%v", got, more, tc.want, tc.wantMore)
				}
			})
		}
		t.Run("ErrUnknownCursor", func(t *testing.T) {
			for _, cursor := range []string{"cus_none", "cus_other"} {
				_, _, err := db.ListCustomers(ctx, billing.CustomerFilter{ProjectID: p.ID, Environment: billing.EnvTest,
					StartingAfter: cursor})
				wantCode(t, err, billing.EINVALID)
				var e *billing.Error
				if !errors.As(err, &e) || e.Param != "starting_after" {
					t.Errorf("param: got %+v, want starting_after", err)
				}
			}
		})
		t.Run("Isolation", func(t *testing.T) {
			if _, err := db.FindCustomer(ctx, other.ID, billing.EnvTest, "cus_1"); billing.ErrorCode(err) != billing.ENOTFOUND {
				t.Errorf("another project's customer: got %v, want not found", err)
			}
			if _, err := db.FindCustomer(ctx, p.ID, billing.EnvLive, "cus_1"); billing.ErrorCode(err) != billing.ENOTFOUND {
				t.Errorf("the test customer in live: got %v, want not found", err)
			}
		})
	})
}

func TestCheckoutSessions(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		s := billing.CheckoutSession{ID: "cs_1", ProjectID: p.ID, Environment: billing.EnvTest, UserID: "user_1",
			Mode: "subscription", Status: "open", PaymentStatus: "unpaid", CustomerEmail: "a@x.com",
			Currency: "usd", URL: "https://checkout/cs_1", Created: at(0)}
		must(t, db.CreateCheckoutSession(ctx, s))
		must(t, db.CreateCheckoutSession(ctx, s)) // a retried request
		got, err := db.FindCheckoutSession(ctx, p.ID, billing.EnvTest, "cs_1")
		must(t, err)
		if got.UserID != "user_1" || got.Mode != "subscription" || got.Status != "open" || got.URL != s.URL ||
			!got.Created.Equal(at(0)) || got.CreatedAt.IsZero() {
			t.Errorf("session: got %+v", got)
		}
		_, err = db.FindCheckoutSession(ctx, p.ID, billing.EnvLive, "cs_1")
		wantCode(t, err, billing.ENOTFOUND)

		must(t, db.UpsertCustomer(ctx, billing.Customer{ID: "cus_1", ProjectID: p.ID, Environment: billing.EnvTest}))
		// A read from Stripe completes it.
		must(t, db.UpsertFromStripe(ctx, p.ID, billing.EnvTest, billing.MirrorChange{CheckoutSession: &billing.CheckoutSession{
			ID: "cs_1", Status: "complete", PaymentStatus: "paid", CustomerID: "cus_1",
			SubscriptionID: "sub_1", AmountTotal: 1200, Currency: "usd", EventAt: at(5)}}))
		got, err = db.FindCheckoutSession(ctx, p.ID, billing.EnvTest, "cs_1")
		must(t, err)
		if got.Status != "complete" || got.PaymentStatus != "paid" || got.CustomerID != "cus_1" ||
			got.SubscriptionID != "sub_1" || got.AmountTotal != 1200 || got.UserID != "user_1" {
			t.Errorf("updated session: got %+v", got)
		}
		c, err := db.FindCustomer(ctx, p.ID, billing.EnvTest, "cus_1")
		must(t, err)
		if c.UserID != "user_1" {
			t.Errorf("customer owner after checkout: got %q, want user_1", c.UserID)
		}
	})
}

func TestPaymentIntents(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := storetest.MustCreateProject(t, db)
		pi := billing.PaymentIntent{ID: "pi_1", ProjectID: p.ID, Environment: billing.EnvTest, UserID: "user_1",
			Amount: 500, Currency: "eur", Description: "tea", ReceiptEmail: "a@x.com", Status: "requires_payment_method",
			ClientSecret: "pi_1_secret_abc"}
		must(t, db.CreatePaymentIntent(ctx, pi))
		must(t, db.CreatePaymentIntent(ctx, pi))
		got, err := db.FindPaymentIntent(ctx, p.ID, billing.EnvTest, "pi_1")
		must(t, err)
		if got.ClientSecret != "" {
			t.Errorf("client secret stored: %q", got.ClientSecret)
		}
		if got.Amount != 500 || got.Currency != "eur" || got.UserID != "user_1" || got.Description != "tea" ||
			got.ReceiptEmail != "a@x.com" || got.Status != pi.Status || got.CreatedAt.IsZero() {
			t.Errorf("payment intent: got %+v", got)
		}
		_, err = db.FindPaymentIntent(ctx, p.ID, billing.EnvLive, "pi_1")
		wantCode(t, err, billing.ENOTFOUND)
		wantCode(t, db.CreatePaymentIntent(ctx, billing.PaymentIntent{ID: "pi_2", ProjectID: "prj_none",
			Environment: billing.EnvTest}), billing.ENOTFOUND)
	})
}

func TestUsage(t *testing.T) {
	storetest.EachDB(t, sealer, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		must(t, db.AddUsage(ctx, []billing.UsageCount{
			{ProjectID: "p1", Environment: billing.EnvTest, Endpoint: "GET /v1/stripe/customers", StatusClass: "2xx", Day: "2024-01-01", Count: 3},
			{ProjectID: "p1", Environment: billing.EnvLive, Endpoint: "GET /v1/stripe/customers", StatusClass: "2xx", Day: "2024-01-01", Count: 1},
			{ProjectID: "p2", Environment: billing.EnvTest, Endpoint: "POST /v1/stripe/customers", StatusClass: "4xx", Day: "2024-01-02", Count: 2},
		}))
		must(t, db.AddUsage(ctx, []billing.UsageCount{
			{ProjectID: "p1", Environment: billing.EnvTest, Endpoint: "GET /v1/stripe/customers", StatusClass: "2xx", Day: "2024-01-01", Count: 4},
			{ProjectID: "p1", Environment: billing.EnvTest, Endpoint: "GET /v1/stripe/customers", StatusClass: "2xx", Day: "2024-01-03", Count: 1},
		}))
		sum := func(counts []billing.UsageCount) (n int64) {
			for _, c := range counts {
				n += c.Count
			}
			return n
		}
		for _, tc := range []struct {
			name     string
			project  string
			env      billing.Environment
			from, to string
			wantRows int
			wantSum  int64
		}{
			{"All", "", "", "", "", 4, 11},
			{"Project", "p1", "", "", "", 3, 9},
			{"ProjectEnv", "p1", billing.EnvTest, "", "", 2, 8},
			{"Days", "", "", "2024-01-01", "2024-01-02", 3, 10},
			{"OneDay", "p1", billing.EnvTest, "2024-01-01", "2024-01-01", 1, 7},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.ListUsage(ctx, tc.project, tc.env, tc.from, tc.to)
				must(t, err)
				if len(got) != tc.wantRows || sum(got) != tc.wantSum {
					t.Errorf("got %d rows summing %d (%+v), want %d rows summing %d", len(got), sum(got), got, tc.wantRows, tc.wantSum)
				}
			})
		}
		got, err := db.ListUsage(ctx, "p1", billing.EnvTest, "2024-01-01", "2024-01-01")
		must(t, err)
		want := billing.UsageCount{ProjectID: "p1", Environment: billing.EnvTest, Endpoint: "GET /v1/stripe/customers",
			StatusClass: "2xx", Day: "2024-01-01", Count: 7}
		if len(got) != 1 || got[0] != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}
