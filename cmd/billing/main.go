// Command billing runs the billing service and its operator and developer
// commands. `billing --help` lists them; `billing <command> --help` shows a
// command's flags and the environment variables it reads.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run is the whole program: main only wires the process to it, and tests
// call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return dispatch(ctx, commands(), args, getenv, stdout, stderr)
}

// Environment variables, by the commands that read them.
var (
	// envStore is what every command that opens the database reads.
	envStore = []string{"BILLING_DATABASE_URL", "BILLING_MASTER_KEY", "BILLING_MASTER_KEY_PREVIOUS",
		"BILLING_AUTO_MIGRATE", "BILLING_DEV", "BILLING_LOG_LEVEL"}
	// envServe is what `serve` reads besides envStore.
	envServe = []string{"BILLING_ADDR", "BILLING_ADMIN_TOKEN", "BILLING_STRIPE_API_BASE", "BILLING_REDIS_URL", "BILLING_REDIS_PREFIX",
		"BILLING_RATE_LIMIT_CREATES_PER_HOUR", "BILLING_RATE_LIMIT_QUERIES_PER_HOUR", "BILLING_METRICS_TOKEN",
		"BILLING_USAGE_FLUSH_INTERVAL", "BILLING_RECONCILE_INTERVAL", "BILLING_EVENT_RETENTION", "BILLING_ALLOW_PRIVATE_URLS", "BILLING_TRUSTED_PROXIES"}
)

// envDocs describes every environment variable a command reads.
var envDocs = map[string]string{
	"BILLING_ADDR":                        "listen address (default :8080)",
	"BILLING_DATABASE_URL":                "sqlite:PATH or postgres://... (default billing.db)",
	"BILLING_MASTER_KEY":                  "base64 of 32 bytes; encrypts stored secrets (billing gen-master-key makes one)",
	"BILLING_MASTER_KEY_PREVIOUS":         "comma-separated older master keys, still accepted for reading",
	"BILLING_AUTO_MIGRATE":                "run migrations before the command (default true)",
	"BILLING_DEV":                         "development mode: a local master key in .billing/ when BILLING_MASTER_KEY is not set",
	"BILLING_LOG_LEVEL":                   "debug, info, warn or error (default info); logs are JSON lines on stderr",
	"BILLING_ADMIN_TOKEN":                 "bearer token of the admin API (admin API off when empty)",
	"BILLING_STRIPE_API_BASE":             "another Stripe endpoint, such as stripe-mock",
	"BILLING_REDIS_PREFIX":                "prefix of the Redis channel that carries cache invalidations (default billing:)",
	"BILLING_REDIS_URL":                   "share rate limits and cache invalidations between instances",
	"BILLING_RATE_LIMIT_CREATES_PER_HOUR": "POST/PUT/DELETE calls per project and environment (default 1000)",
	"BILLING_RATE_LIMIT_QUERIES_PER_HOUR": "GET calls per project and environment (default 5000)",
	"BILLING_METRICS_TOKEN":               "when set, /metrics needs Authorization: Bearer <token>",
	"BILLING_USAGE_FLUSH_INTERVAL":        "how often counted usage is written (default 5s)",
	"BILLING_ALLOW_PRIVATE_URLS":          "let configured URLs (JWKS, event endpoints) reach loopback and private addresses; development mode sets it",
	"BILLING_TRUSTED_PROXIES":             "comma-separated addresses or CIDR ranges of proxies whose X-Forwarded-For names the client",
	"BILLING_EVENT_RETENTION":             "how long received webhook payloads are kept (default 30d; at least 3d; 0 keeps them forever)",
	"BILLING_RECONCILE_INTERVAL":          "how often each project environment is resynced from Stripe (default 24h; 0 turns it off)",
}

// commands is the command table. A new command is one entry here and one
// function; a new flag is declared in the command's function and shows in
// its --help by itself; a new environment variable is a line in envDocs and
// a name in the env list of the commands that read it.
func commands() []command {
	return []command{
		{
			name: "serve", synopsis: "[--dev]",
			summary: "run the HTTP service",
			env:     concat(envServe, envStore),
			run:     runServe,
		},
		{
			name:    "demo",
			summary: "try the service without Stripe keys: stripe-mock as Stripe and a ready project",
			about: `Serves in development mode with stripe-mock as Stripe (an installed one, or built
once into the user cache; BILLING_STRIPE_API_BASE names a running one instead),
creates a tenant and a project, stores Stripe test keys, an HS256 buyer-token
secret and a webhook signing secret, and prints curl lines to paste.`,
			env: concat(envServe, envStore),
			run: runDemo,
		},
		{
			name: "migrate", summary: "apply database migrations",
			env: without(envStore, "BILLING_AUTO_MIGRATE"),
			run: runMigrate,
		},
		{
			name: "tenant create", synopsis: "--name N [--json]",
			summary: "create a tenant",
			env:     envStore,
			run:     runTenantCreate,
		},
		{
			name: "project create", synopsis: "--tenant ID --name N [--json]",
			summary: "create a project and print its credentials once",
			env:     envStore,
			run:     runProjectCreate,
		},
		{
			name: "project rotate-secret", synopsis: "--project ID [--json]",
			summary: "issue a new project secret key; the old one stops working",
			env:     envStore,
			run:     runProjectRotate,
		},
		{
			name: "sync", synopsis: "--project ID --environment test|live",
			summary: "backfill customers, products, prices and subscriptions from Stripe",
			env:     concat(envStore, []string{"BILLING_STRIPE_API_BASE", "BILLING_REDIS_URL", "BILLING_REDIS_PREFIX"}),
			run:     runSync,
		},
		{
			name: "token", synopsis: "--project ID --sub USER [--email E] [--ttl 1h]",
			summary: "print a buyer token signed with the project's HS256 secret",
			about: `Reads the project's buyer-token settings from the database (with BILLING_MASTER_KEY,
or the development key in .billing/master.key) and signs a token with its
issuer and audience, for trying the buyer endpoints.`,
			env: envStore,
			run: runToken,
		},
		{
			name: "webhook send", synopsis: "--project ID [--environment test] [--type customer.subscription.updated] [--customer ID] ...",
			summary: "sign a test Stripe event with the project's webhook secret and post it to the service",
			about: `Builds a realistic customer.subscription.* event, signs it as Stripe does with the
project's stored signing secret (read with BILLING_MASTER_KEY, or the development
key in .billing/master.key) and posts it to the service's webhook endpoint.`,
			env: concat([]string{"BILLING_ADDR"}, envStore),
			run: runWebhookSend,
		},
		{
			name: "rotate-master-key", summary: "re-encrypt stored secrets under BILLING_MASTER_KEY",
			about: "Old keys are read from BILLING_MASTER_KEY_PREVIOUS.",
			env:   envStore,
			run:   runRotateMasterKey,
		},
		{
			name: "gen-master-key", summary: "print a new random master key",
			run: runGenMasterKey,
		},
		{
			name: "version", summary: "print the version",
			run: runVersion,
		},
	}
}

// concat returns the names of lists in order, each once.
func concat(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, n := range l {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// without returns list less the names given.
func without(list []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(n string) bool { return slices.Contains(names, n) })
}
