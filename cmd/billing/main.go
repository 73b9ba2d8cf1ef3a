// Command billing runs the billing service and its operator commands.
//
//	billing serve [--dev]
//	billing migrate
//	billing tenant create --name N [--json]
//	billing project create --tenant ID --name N [--json]
//	billing project rotate-secret --project ID [--json]
//	billing sync --project ID --environment test|live
//	billing rotate-master-key
//	billing gen-master-key
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "billing:", err)
		os.Exit(1)
	}
}

const usageText = `usage: billing <command> [flags]

commands:
  serve                         run the HTTP service (--dev: local development mode)
  migrate                       apply database migrations
  tenant create --name N        create a tenant (--json for machine output)
  project create --tenant ID --name N
                                create a project and print its credentials once
  project rotate-secret --project ID
                                issue a new project secret key
  sync --project ID --environment test|live
                                backfill customers, products, prices and subscriptions from Stripe
  rotate-master-key             re-encrypt stored secrets under BILLING_MASTER_KEY
                                (old keys in BILLING_MASTER_KEY_PREVIOUS)
  gen-master-key                print a new random master key
`

// run is the whole program: main only wires the process to it, and tests
// call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 && (cmd == "tenant" || cmd == "project") {
		sub, rest = rest[0], rest[1:]
	}
	switch {
	case cmd == "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case cmd == "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case cmd == "tenant" && sub == "create":
		return runTenantCreate(ctx, rest, getenv, stdout, stderr)
	case cmd == "project" && sub == "create":
		return runProjectCreate(ctx, rest, getenv, stdout, stderr)
	case cmd == "project" && sub == "rotate-secret":
		return runProjectRotate(ctx, rest, getenv, stdout, stderr)
	case cmd == "sync":
		return runSync(ctx, rest, getenv, stdout, stderr)
	case cmd == "rotate-master-key":
		return runRotateMasterKey(ctx, rest, getenv, stdout, stderr)
	case cmd == "gen-master-key":
		return runGenMasterKey(stdout)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return fmt.Errorf("unknown command %q", args)
}
