// Command billing-bench measures the billing service against anchors run on
// the same machine at the same time, and says which performance targets
// are met.
//
//	go run ./cmd/billing-bench [-db sqlite|postgres] [-postgres-url URL]
//	    [-duration 1.5s] [-rounds 5] [-concurrency N|status=N,create=N,webhook=N]
//	    [-peer] [-scale] [-json bench-results.json]
//
// It builds cmd/billing and a bare Echo server (cmd/billing-bench/anchor),
// starts them as separate processes on loopback together with stripe-mock
// and the chosen database, and drives load from this process with vegeta.
// Each scenario is measured in several short rounds alternating with its
// anchor (anchor, scenario, anchor, scenario...); the table shows the
// medians and the median of the per-round ratios, so that machine noise
// common to a round cancels. It prints one table to stdout, writes the
// same rows as JSON, and exits 0 whether or not the targets are met.
//
// With -peer (PostgreSQL only) it also installs @supabase/stripe-sync-engine
// with npm into the user's cache folder, runs it under Node.js on a
// database of its own on the same server, and measures webhook ingestion
// against it. With -scale it measures the access answers with a million
// subscriptions in one project and with 10,000 projects, and ingestion
// with a million events in the ledger, each on a fresh database seeded
// directly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "billing-bench:", err)
		os.Exit(1)
	}
}

// options are the command line's.
type options struct {
	db          string
	postgresURL string
	duration    time.Duration
	rounds      int
	warmup      time.Duration
	customers   int
	starts      int
	concurrency concurrency
	jsonPath    string
	keep        bool
	peer        bool
	peerCache   string
	perfDir     string
	scale       scaleOptions
}

// scaleOptions size the scale scenarios.
type scaleOptions struct {
	on            bool
	subscriptions int // in one project
	projects      int
	perProject    int // subscriptions of each of those projects
	events        int // in the full ledger
}

// concurrency is the number of requests in flight per scenario.
type concurrency struct {
	status, create, webhook int
}

func (c *concurrency) String() string {
	return fmt.Sprintf("status=%d,create=%d,webhook=%d", c.status, c.create, c.webhook)
}

// Set reads "N" (every scenario) or "status=N,create=N,webhook=N" (any of
// them).
func (c *concurrency) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return errors.New("must be positive")
		}
		c.status, c.create, c.webhook = n, n, n
		return nil
	}
	for part := range strings.SplitSeq(s, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n <= 0 {
			return fmt.Errorf("want N or status=N,create=N,webhook=N, got %q", s)
		}
		switch name {
		case "status":
			c.status = n
		case "create":
			c.create = n
		case "webhook":
			c.webhook = n
		default:
			return fmt.Errorf("unknown scenario %q (status, create, webhook)", name)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{concurrency: concurrency{status: 32, create: 16, webhook: 32}}
	fs := flag.NewFlagSet("billing-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.db, "db", "sqlite", "database of the service: sqlite or postgres")
	fs.StringVar(&o.postgresURL, "postgres-url", "", "PostgreSQL server for -db postgres; a fresh database (or schema) is created on it and dropped after")
	fs.DurationVar(&o.duration, "duration", 1500*time.Millisecond, "length of each measurement (one round of a scenario or of its anchor)")
	fs.IntVar(&o.rounds, "rounds", 5, "alternating rounds per scenario")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured load on each side before the rounds")
	fs.IntVar(&o.customers, "customers", 10_000, "customers with a subscription in the mirror")
	fs.IntVar(&o.starts, "starts", 5, "service starts measured on a fresh SQLite database")
	fs.Var(&o.concurrency, "concurrency", "requests in flight: N for every scenario, or status=N,create=N,webhook=N")
	fs.StringVar(&o.jsonPath, "json", "bench-results.json", "file to write the rows to as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, SQLite files)")
	fs.BoolVar(&o.peer, "peer", false, "also measure webhook ingestion against @supabase/stripe-sync-engine (needs -db postgres, Node.js and npm)")
	fs.StringVar(&o.peerCache, "peer-cache", "", "folder to install the peer into (default: the user's cache folder)")
	fs.StringVar(&o.perfDir, "perf", "", "record the service's CPU profile during each scenario's rounds with Linux perf into this folder (perf report -i FILE)")
	fs.BoolVar(&o.scale.on, "scale", false, "also run the scale scenarios (access answers with many subscriptions and projects, ingestion with a full ledger)")
	fs.IntVar(&o.scale.subscriptions, "scale-subscriptions", 1_000_000, "active subscriptions of the one-project scale scenario")
	fs.IntVar(&o.scale.projects, "scale-projects", 10_000, "projects of the many-projects scale scenario")
	fs.IntVar(&o.scale.perProject, "scale-project-subscriptions", 100, "active subscriptions of each of those projects")
	fs.IntVar(&o.scale.events, "scale-events", 1_000_000, "events in the ledger of the full-ledger scale scenario")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.db != "sqlite" && o.db != "postgres":
		return o, fmt.Errorf("-db: want sqlite or postgres, got %q", o.db)
	case o.db == "postgres" && o.postgresURL == "":
		return o, errors.New("-db postgres needs -postgres-url")
	case o.duration <= 0 || o.rounds <= 0 || o.customers <= 0 || o.starts <= 0:
		return o, errors.New("-duration, -rounds, -customers and -starts must be positive")
	case o.peer && o.db != "postgres":
		return o, errors.New("-peer needs -db postgres: the peer stores into PostgreSQL")
	case o.scale.subscriptions <= 0 || o.scale.projects <= 0 || o.scale.perProject <= 0 || o.scale.events <= 0:
		return o, errors.New("-scale-subscriptions, -scale-projects, -scale-project-subscriptions and -scale-events must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := &bench{opts: opts, log: stderr, began: time.Now()}
	defer b.close()
	if err := b.prepare(ctx); err != nil {
		return err
	}
	rows, err := b.measure(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "billing-bench: db=%s, %d rounds of %v per side, concurrency %s, %d customers%s%s, %v in all\n\n",
		opts.db, opts.rounds, opts.duration, opts.concurrency.String(), opts.customers,
		map[bool]string{true: ", peer " + peerPackage + "@" + peerVersion}[opts.peer],
		map[bool]string{true: ", scale"}[opts.scale.on], time.Since(b.began).Round(time.Second))
	if err := printTable(stdout, rows); err != nil {
		return err
	}
	if len(b.notes) > 0 {
		fmt.Fprintln(stdout, "\nnotes:")
		for _, n := range b.notes {
			fmt.Fprintln(stdout, "  - "+n)
		}
	}
	if err := writeJSON(opts.jsonPath, rows); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nratio: median of per-round value/anchor; rows written to %s\n", opts.jsonPath)
	return nil
}
