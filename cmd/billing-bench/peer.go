package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The peer is @supabase/stripe-sync-engine, the Node.js package people use
// to sync Stripe into PostgreSQL from webhooks, run by peer/server.cjs.
const (
	peerPackage = "@supabase/stripe-sync-engine"
	peerVersion = "0.48.5"
	// peerStripeNode is stripe-node, the package's peer dependency
	// (> 18), pinned so that every install is the same.
	peerStripeNode = "stripe@23.1.0"
	peerName       = "stripe-sync-engine"
)

//go:embed peer/server.cjs
var peerServer []byte

// installPeer installs the peer with npm into its own folder under
// cacheDir, unless that version is there already, writes the server script
// next to it and returns the script's path.
func installPeer(ctx context.Context, cacheDir string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(cacheDir, "billing-bench", "stripe-sync-engine-"+peerVersion)
	manifest := filepath.Join(dir, "node_modules", "@supabase", "stripe-sync-engine", "package.json")
	var installed struct{ Version string }
	if b, err := os.ReadFile(manifest); err != nil || json.Unmarshal(b, &installed) != nil || installed.Version != peerVersion {
		if _, err := exec.LookPath("npm"); err != nil {
			return "", errors.New("-peer needs Node.js and npm on PATH")
		}
		logf("installing %s@%s with npm into %s", peerPackage, peerVersion, dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		// A package.json of its own, so that npm installs here and not in a
		// project above.
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"private": true}`+"\n"), 0o644); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--save-exact",
			peerPackage+"@"+peerVersion, peerStripeNode)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("npm install %s@%s: %v\n%s", peerPackage, peerVersion, err, out)
		}
	}
	script := filepath.Join(dir, "server.cjs")
	if err := os.WriteFile(script, peerServer, 0o644); err != nil {
		return "", err
	}
	return script, nil
}

// startPeer installs the peer, creates its database on the benchmark's
// PostgreSQL server and starts it.
func (b *bench) startPeer(ctx context.Context) error {
	cacheDir := b.opts.peerCache
	if cacheDir == "" {
		var err error
		if cacheDir, err = os.UserCacheDir(); err != nil {
			return fmt.Errorf("-peer: no cache folder (set -peer-cache): %w", err)
		}
	}
	script, err := installPeer(ctx, cacheDir, b.logf)
	if err != nil {
		return err
	}
	// Its migrations create the schema "stripe" by that name, so it needs
	// a database of its own.
	if b.peerDB, err = newPostgres(ctx, b.opts.postgresURL, false); err != nil {
		return fmt.Errorf("-peer: %w", err)
	}
	b.logf("starting %s (database %s)", peerName, b.peerDB.name)
	b.peer, err = startProcess(ctx, peerName, "node", filepath.Dir(script), []string{
		"PEER_DATABASE_URL=" + b.peerDB.URL,
		"PEER_WEBHOOK_SECRET=" + webhookSecret,
		"PEER_POOL_MAX=" + strconv.Itoa(b.opts.concurrency.webhook),
		"PEER_ADDR=127.0.0.1:0",
	}, script)
	return err
}

// webhookVsPeer sends the same signed events to the service and to the
// peer in alternating rounds, with the same load generator, and compares
// throughput and CPU per event (of each process, and of the PostgreSQL
// backends serving each database); then checks that both stored every
// object they acknowledged.
func (b *bench) webhookVsPeer(ctx context.Context) ([]Row, error) {
	c := b.opts.concurrency.webhook
	b.logf("webhook ingestion vs %s: %d rounds, concurrency %d", peerName, b.opts.rounds, c)
	run := newRunID()
	svcEvents, err := newEvents(run)
	if err != nil {
		return nil, err
	}
	peerEvents, err := newEvents(run)
	if err != nil {
		return nil, err
	}
	svcBackends, err := newBackendCPU(ctx, b.db)
	if err != nil {
		return nil, err
	}
	defer svcBackends.close()
	peerBackends, err := newBackendCPU(ctx, b.peerDB)
	if err != nil {
		return nil, err
	}
	defer peerBackends.close()

	hook := b.service.URL + "/v1/stripe/webhook/" + b.project.ProjectID + "?environment=test"
	var svc, peer tally
	var svcCPU, peerCPU cpuUse
	var svcDB, peerDB []float64 // database CPU ms per event, per measurement
	side := func(p *process, u *cpuUse, t *tally, backends *backendCPU, dbCPU *[]float64, tr vegeta.Targeter, name string) side {
		rt := newTransport()
		return func(d time.Duration) load {
			before := backends.read(ctx)
			l := u.measured(p, func() load { return attack(ctx, name, tr, rt, c, d, false, nil) })
			t.add(l)
			after := backends.read(ctx)
			if before < 0 || after < 0 {
				*dbCPU = append(*dbCPU, math.NaN())
			} else {
				*dbCPU = append(*dbCPU, perEvent(after-before, l.Requests))
			}
			return l
		}
	}
	anchors, values := b.alternate("webhook vs "+peerName,
		side(b.peer, &peerCPU, &peer, peerBackends, &peerDB, peerEvents.webhookTargeter(b.peer.URL+"/webhook", webhookSecret), "peer"),
		side(b.service, &svcCPU, &svc, svcBackends, &svcDB, svcEvents.webhookTargeter(hook, webhookSecret), "webhook"))
	// The rounds are the last measurements; the warm-up came before.
	svcDB, peerDB = svcDB[len(svcDB)-len(values):], peerDB[len(peerDB)-len(anchors):]

	svcStored, err := b.countServiceObjects(ctx, run)
	if err != nil {
		return nil, err
	}
	peerStored, err := countPeerObjects(ctx, b.peerDB.URL, run)
	if err != nil {
		return nil, err
	}
	svcLost := max(0, int64(svc.succeeded())-svcStored)
	peerLost := max(0, int64(peer.succeeded())-peerStored)
	b.note("webhook vs %s: the same events (%s) to both, concurrency %d; %s with a pool of %d PostgreSQL connections, "+
		"no Stripe calls (no revalidation, no backfill, no list expansion)", peerName, svcEvents.sizes(), c, peerName, c)
	b.note("webhook vs %s: service: %d sent, %d acknowledged, %d objects stored (%s); %s: %d sent, %d acknowledged, %d objects stored (%s)",
		peerName, svcEvents.next.Load(), svc.succeeded(), svcStored, svc.String(),
		peerName, peerEvents.next.Load(), peer.succeeded(), peerStored, peer.String())
	b.note("webhook CPU per event over all rounds: service %s, %s %s (processes only); PostgreSQL backends: service %.3f ms, %s %.3f ms",
		svcCPU.String(), peerName, peerCPU.String(), median(svcDB), peerName, median(peerDB))
	if n, lines := b.peer.errorLog(); n > 0 {
		b.note("%s logged %d errors; the first:\n      %s", peerName, n, trimLines(lines, 400))
	}

	dbRounds := make([]round, len(svcDB))
	for i := range svcDB {
		dbRounds[i] = round{value: svcDB[i], anchor: peerDB[i]}
	}
	lost := pairedRow("webhook objects not stored vs "+peerName, "objects", []round{{float64(svcLost), float64(peerLost)}}, none())
	lost.Met = lost.Met && peerLost == 0
	return []Row{
		pairedRow("webhook ingestion vs "+peerName, "events/s", pairs(values, anchors, throughput), atLeast(2)),
		pairedRow("webhook CPU per event", "ms", pairs(values, anchors, cpuPerEvent), below(0.3)),
		pairedRow("webhook database CPU per event vs "+peerName, "ms", dbRounds, reported()),
		lost,
	}, nil
}

// countServiceObjects counts the customers and subscriptions of run in the
// service's mirror.
func (b *bench) countServiceObjects(ctx context.Context, run string) (int64, error) {
	var n int64
	err := b.gdb.WithContext(ctx).Raw(`SELECT
		(SELECT count(*) FROM customers WHERE project_id = ? AND id LIKE ?) +
		(SELECT count(*) FROM subscriptions WHERE project_id = ? AND id LIKE ?)`,
		b.project.ProjectID, "cus_"+run+"%", b.project.ProjectID, "sub_"+run+"%").Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count the service's objects: %w", err)
	}
	return n, nil
}

// countPeerObjects counts the customers and subscriptions of run that the
// peer stored.
func countPeerObjects(ctx context.Context, url, run string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM stripe.customers WHERE id LIKE $1) +
		(SELECT count(*) FROM stripe.subscriptions WHERE id LIKE $2)`, "cus_"+run+"%", "sub_"+run+"%").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count the objects %s stored: %w", peerName, err)
	}
	return n, nil
}

// cpuPerEvent is a measurement's CPU time per request, in milliseconds.
func cpuPerEvent(l load) float64 {
	if l.CPU < 0 {
		return math.NaN()
	}
	return perEvent(l.CPU, l.Requests)
}

// perEvent divides a CPU time by a number of events, in milliseconds.
func perEvent(cpu time.Duration, events uint64) float64 {
	if events == 0 || cpu < 0 {
		return math.NaN()
	}
	return ms(cpu) / float64(events)
}

// backendCPU reads the CPU time of the PostgreSQL server processes
// (backends) connected to one database, from /proc: the server must run on
// this machine, and the database must be the benchmark's own (not a schema
// in a database others use). Backends that disconnect between two reads
// take their time with them, which the pools' long-lived connections make
// rare.
type backendCPU struct {
	conn  *pgx.Conn
	db    *database
	seen  map[int32]time.Duration // CPU of each backend at the last read
	total time.Duration           // CPU used since the first read
	ok    bool
	began bool // the first read is done
}

func newBackendCPU(ctx context.Context, db *database) (*backendCPU, error) {
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	c := &backendCPU{conn: conn, db: db, seen: map[int32]time.Duration{}, ok: db.own}
	c.read(ctx) // the baseline
	return c, nil
}

// read returns the CPU time the database's backends used since the first
// read, or -1 when it cannot be read.
func (c *backendCPU) read(ctx context.Context) time.Duration {
	if !c.ok {
		return -1
	}
	rows, err := c.conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return -1
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return -1
	}
	for _, pid := range pids {
		cpu, err := readCPU(int(pid))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && len(c.seen) == 0 {
				c.ok = false // the server runs elsewhere
				return -1
			}
			continue // gone since
		}
		if prev, known := c.seen[pid]; known || c.began {
			c.total += cpu - prev // a backend new since the last read counts whole
		}
		c.seen[pid] = cpu
	}
	c.began = true
	return c.total
}

func (c *backendCPU) close() { _ = c.conn.Close(context.Background()) }
