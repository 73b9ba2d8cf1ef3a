package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/admin"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/stripeadapter"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// cliContext names the operator as the actor of CLI changes.
func cliContext(ctx context.Context) context.Context {
	return billing.WithActor(ctx, "cli")
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := newFlags("migrate", stderr).Parse(args); err != nil {
		return err
	}
	c, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, c, newLogger(stderr, c.LogLevel), true)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func runTenantCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("tenant create", stderr)
	name := fs.String("name", "", "tenant name")
	asJSON := fs.Bool("json", false, "print the new tenant as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	svc, closeDB, err := adminService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	t, err := svc.CreateTenant(cliContext(ctx), *name)
	if err != nil {
		return cliError(err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"id": t.ID, "name": t.Name})
	}
	fmt.Fprintf(stdout, "tenant %s created (%s)\n", t.ID, t.Name)
	fmt.Fprintf(stdout, "next: billing project create --tenant %s --name \"My App\"\n", t.ID)
	return nil
}

func runProjectCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("project create", stderr)
	tenant := fs.String("tenant", "", "tenant id")
	name := fs.String("name", "", "project name")
	asJSON := fs.Bool("json", false, "print the credentials as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" {
		return fmt.Errorf("--tenant is required")
	}
	svc, closeDB, err := adminService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	creds, err := svc.CreateProject(cliContext(ctx), *tenant, *name)
	if err != nil {
		return cliError(err)
	}
	return printCredentials(stdout, creds, *asJSON)
}

func runProjectRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("project rotate-secret", stderr)
	project := fs.String("project", "", "project id")
	asJSON := fs.Bool("json", false, "print the credentials as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *project == "" {
		return fmt.Errorf("--project is required")
	}
	svc, closeDB, err := adminService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	creds, err := svc.RotateSecret(cliContext(ctx), *project)
	if err != nil {
		return cliError(err)
	}
	return printCredentials(stdout, creds, *asJSON)
}

func printCredentials(w io.Writer, c *admin.Credentials, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(c)
	}
	fmt.Fprintf(w, "x-tenant-id:  %s\nx-project-id: %s\nx-api-key:    %s\nx-secret-key: %s\n", c.TenantID, c.ProjectID, c.APIKey, c.SecretKey)
	fmt.Fprintln(w, "The secret key is shown this once; store it safely.")
	return nil
}

func adminService(ctx context.Context, getenv func(string) string, stderr io.Writer) (*admin.Service, func(), error) {
	c, err := loadConfig(getenv)
	if err != nil {
		return nil, nil, err
	}
	db, err := openStore(ctx, c, newLogger(stderr, c.LogLevel), c.AutoMigrate)
	if err != nil {
		return nil, nil, err
	}
	return &admin.Service{Store: db}, func() { db.Close() }, nil
}

func runSync(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("sync", stderr)
	project := fs.String("project", "", "project id")
	envName := fs.String("environment", "test", "test or live")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env := billing.Environment(*envName)
	if *project == "" || !env.Valid() {
		return fmt.Errorf("--project is required and --environment must be test or live")
	}
	c, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, c.LogLevel)
	db, err := openStore(ctx, c, logger, c.AutoMigrate)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := db.FindProjectByID(ctx, *project)
	if err != nil {
		return cliError(err)
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
	n, err := m.Resync(ctx, p.ID, env, nil)
	if err != nil {
		return cliError(err)
	}
	return json.NewEncoder(stdout).Encode(n)
}

func runRotateMasterKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := newFlags("rotate-master-key", stderr).Parse(args); err != nil {
		return err
	}
	c, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, c, newLogger(stderr, c.LogLevel), c.AutoMigrate)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.RotateSecrets(cliContext(ctx))
	if err != nil {
		return cliError(err)
	}
	fmt.Fprintf(stdout, "%d secrets re-encrypted under the current master key\n", n)
	return nil
}

func runGenMasterKey(stdout io.Writer) error {
	k, err := secret.GenerateMasterKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k)
	return nil
}

// cliError shows a billing error's safe message.
func cliError(err error) error {
	if billing.ErrorCode(err) == billing.EINTERNAL {
		return err
	}
	return fmt.Errorf("%s", billing.ErrorMessage(err))
}
