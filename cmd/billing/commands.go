package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/admin"
	"github.com/stackfordevs/billing/internal/jobs"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/stripeadapter"
)

// cliContext names the operator as the actor of CLI changes.
func cliContext(ctx context.Context) context.Context {
	return billing.WithActor(ctx, "cli")
}

func runMigrate(ctx context.Context, inv *invocation) error {
	if err := inv.parse(); err != nil {
		return err
	}
	c, err := loadConfig(inv.getenv)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, c, newLogger(inv.stderr, c.LogLevel), true)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(inv.stdout, "migrations applied")
	return nil
}

func runTenantCreate(ctx context.Context, inv *invocation) error {
	name := inv.flags.String("name", "", "tenant `name`")
	asJSON := inv.flags.Bool("json", false, "print the new tenant as JSON")
	if err := inv.parse(); err != nil {
		return err
	}
	if err := require("name", *name); err != nil {
		return err
	}
	svc, closeDB, err := adminService(ctx, inv)
	if err != nil {
		return err
	}
	defer closeDB()
	t, err := svc.CreateTenant(cliContext(ctx), *name)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(inv.stdout).Encode(map[string]string{"id": t.ID, "name": t.Name})
	}
	fmt.Fprintf(inv.stdout, "tenant %s created (%s)\n", t.ID, t.Name)
	fmt.Fprintf(inv.stdout, "next: billing project create --tenant %s --name \"My App\"\n", t.ID)
	return nil
}

func runProjectCreate(ctx context.Context, inv *invocation) error {
	tenant := inv.flags.String("tenant", "", "`id` of the tenant that owns the project")
	name := inv.flags.String("name", "", "project `name`")
	asJSON := inv.flags.Bool("json", false, "print the credentials as JSON")
	if err := inv.parse(); err != nil {
		return err
	}
	if err := require("tenant", *tenant, "name", *name); err != nil {
		return err
	}
	svc, closeDB, err := adminService(ctx, inv)
	if err != nil {
		return err
	}
	defer closeDB()
	creds, err := svc.CreateProject(cliContext(ctx), *tenant, *name)
	if err != nil {
		return err
	}
	return printCredentials(inv.stdout, creds, *asJSON)
}

func runProjectRotate(ctx context.Context, inv *invocation) error {
	project := inv.flags.String("project", "", "project `id`")
	asJSON := inv.flags.Bool("json", false, "print the credentials as JSON")
	if err := inv.parse(); err != nil {
		return err
	}
	if err := require("project", *project); err != nil {
		return err
	}
	svc, closeDB, err := adminService(ctx, inv)
	if err != nil {
		return err
	}
	defer closeDB()
	creds, err := svc.RotateSecret(cliContext(ctx), *project)
	if err != nil {
		return err
	}
	return printCredentials(inv.stdout, creds, *asJSON)
}

func printCredentials(w io.Writer, c *admin.Credentials, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(c)
	}
	fmt.Fprintf(w, "x-tenant-id:  %s\nx-project-id: %s\nx-api-key:    %s\nx-secret-key: %s\n", c.TenantID, c.ProjectID, c.APIKey, c.SecretKey)
	fmt.Fprintln(w, "The secret key is shown this once; store it safely.")
	return nil
}

func adminService(ctx context.Context, inv *invocation) (*admin.Service, func(), error) {
	c, err := loadConfig(inv.getenv)
	if err != nil {
		return nil, nil, err
	}
	db, err := openStore(ctx, c, newLogger(inv.stderr, c.LogLevel), c.AutoMigrate)
	if err != nil {
		return nil, nil, err
	}
	return &admin.Service{Store: db}, func() { db.Close() }, nil
}

func runSync(ctx context.Context, inv *invocation) error {
	project, envName := projectFlags(inv)
	if err := inv.parse(); err != nil {
		return err
	}
	env, err := projectEnvironment(*project, *envName)
	if err != nil {
		return err
	}
	c, err := loadConfig(inv.getenv)
	if err != nil {
		return err
	}
	// Logs and progress lines come from several goroutines.
	stderr := &lockedWriter{w: inv.stderr}
	logger := newLogger(stderr, c.LogLevel)
	db, err := openStore(ctx, c, logger, c.AutoMigrate)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := findProject(ctx, db, *project)
	if err != nil {
		return err
	}
	// The changes reach running instances' caches through Redis when it is
	// configured, and within their caches' expiry otherwise.
	rdb, err := redisClient(c)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	changes, closeBus := newBus(rdb, c.RedisPrefix, logger)
	defer closeBus()
	m := mirror.New(mirror.Config{Store: db, Bus: changes, Logger: logger,
		Accounts: mirror.NewAccounts(db.FindStripeSettings, stripeadapter.New(stripeadapter.Config{BaseURL: c.StripeAPIBase, Logger: logger}))})
	// The progress lines say what the job's info logs would.
	svc := jobs.New(jobs.Options{Store: db, Resyncer: m, Logger: newLogger(stderr, max(c.LogLevel, slog.LevelWarn))})
	job, err := svc.Start(cliContext(ctx), p.ID, env, billing.SyncByCLI)
	if err != nil {
		return err
	}
	// The job runs here, unless a running instance already works on it:
	// then this waits for it, and takes it over if that instance stops.
	job, err = svc.RunJob(ctx, job.ID, func(j billing.SyncJob) {
		n := j.Counts
		fmt.Fprintf(stderr, "sync %s: %s, %d customers, %d products, %d prices, %d subscriptions\n",
			j.ID, j.State, n.Customers, n.Products, n.Prices, n.Subscriptions)
	})
	if err != nil {
		return err
	}
	if job.State != billing.SyncSucceeded {
		return fmt.Errorf("sync %s failed: %s", job.ID, job.Error)
	}
	return json.NewEncoder(inv.stdout).Encode(job.Counts)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runRotateMasterKey(ctx context.Context, inv *invocation) error {
	if err := inv.parse(); err != nil {
		return err
	}
	c, err := loadConfig(inv.getenv)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, c, newLogger(inv.stderr, c.LogLevel), c.AutoMigrate)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.RotateSecrets(cliContext(ctx))
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.stdout, "%d secrets re-encrypted under the current master key\n", n)
	return nil
}

func runGenMasterKey(ctx context.Context, inv *invocation) error {
	if err := inv.parse(); err != nil {
		return err
	}
	k, err := secret.GenerateMasterKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(inv.stdout, k)
	return nil
}

// projectFlags declares --project and --environment, for the commands that
// act on one of a project's Stripe accounts.
func projectFlags(inv *invocation) (project, environment *string) {
	return inv.flags.String("project", "", "project `id`"),
		inv.flags.String("environment", "test", "which of the project's Stripe accounts: `test|live`")
}

// projectEnvironment checks the values of projectFlags once parsed.
func projectEnvironment(project, environment string) (billing.Environment, error) {
	if err := require("project", project); err != nil {
		return "", err
	}
	env := billing.Environment(environment)
	if !env.Valid() {
		return "", usageError{fmt.Errorf("--environment must be test or live, not %q", environment)}
	}
	return env, nil
}
