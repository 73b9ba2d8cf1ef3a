package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/store"
)

// accessQuery is one access answer the scale scenarios measure: GET path
// with the customer's email and extra query parameters. A path the
// service's spec does not have is skipped.
type accessQuery struct {
	name  string // in the rows' names
	path  string
	extra string // more query parameters, "" or "a=b&c=d"
}

// accessQueries are the access answers measured at scale; a new one is one
// more line.
var accessQueries = []accessQuery{
	{name: "subscription", path: "/v1/customer/subscription"},
	{name: "access?feature=", path: "/v1/customer/access", extra: "feature=" + seedFeature},
}

// scaleWarmupFactor lengthens the warm-up of the access scenarios at scale.
const scaleWarmupFactor = 10

// seedFeature is the feature the access queries ask about.
const seedFeature = "bench_pro"

// scaleEnv is a fresh database of its own, migrated by `billing migrate`,
// with the store open for seeding, and later a service on it.
type scaleEnv struct {
	db      *database
	st      *store.DB
	w       *bulk
	service *process
}

// newScaleEnv creates and migrates a database named for a scenario.
func (b *bench) newScaleEnv(ctx context.Context, name string) (*scaleEnv, error) {
	db, err := newDatabase(ctx, b.opts.db, b.opts.postgresURL, b.dir, name)
	if err != nil {
		return nil, err
	}
	e := &scaleEnv{db: db}
	cmd := exec.CommandContext(ctx, b.serviceBin, "migrate")
	cmd.Dir, cmd.Env = b.dir, append([]string{"PATH=/usr/bin:/bin"}, b.serviceEnv(db.URL)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.close(b)
		return nil, fmt.Errorf("billing migrate: %v\n%s", err, out)
	}
	ring, err := secret.ParseKeyring(b.masterKey, "")
	if err != nil {
		e.close(b)
		return nil, err
	}
	if e.st, err = store.Open(ctx, db.URL, store.Options{Keyring: ring}); err != nil {
		e.close(b)
		return nil, err
	}
	if e.w, err = openBulk(ctx, db); err != nil {
		e.close(b)
		return nil, err
	}
	return e, nil
}

// serve starts a service on the environment's database and waits until it
// is ready.
func (b *bench) serve(ctx context.Context, e *scaleEnv) (*process, error) {
	p, err := b.startService(ctx, e.db.URL)
	if err != nil {
		return nil, err
	}
	e.service, b.profiled = p, p
	if _, err := waitHTTP200(ctx, p.URL+"/readyz", p.exited, time.Minute); err != nil {
		return nil, err
	}
	return p, nil
}

func (e *scaleEnv) close(b *bench) {
	if e.service != nil {
		e.service.Stop()
		if n, lines := e.service.errorLog(); n > 0 {
			b.note("the service on %s logged %d lines at level ERROR; the first:\n      %s", e.db.URL, n, trimLines(lines, 400))
		}
	}
	if e.w != nil {
		e.w.close()
	}
	if e.st != nil {
		_ = e.st.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.db.drop(ctx); err != nil {
		b.logf("dropping a scale database: %v", err)
	}
}

// scale runs the scale scenarios, each on a database of its own.
func (b *bench) scale(ctx context.Context) ([]Row, error) {
	var rows []Row
	o := b.opts.scale
	for _, s := range []struct {
		label      string
		projects   int
		perProject int
	}{
		{count(o.subscriptions) + " subscriptions", 1, o.subscriptions},
		{count(o.projects) + " projects", o.projects, o.perProject},
	} {
		r, err := b.accessAtScale(ctx, s.label, s.projects, s.perProject)
		if err != nil {
			return nil, fmt.Errorf("scale, %s: %w", s.label, err)
		}
		rows = append(rows, r...)
	}
	r, err := b.fullLedger(ctx)
	if err != nil {
		return nil, fmt.Errorf("scale, full ledger: %w", err)
	}
	return append(rows, r...), nil
}

// accessAtScale seeds projects of perProject active subscriptions each,
// starts a fresh service on them and measures every access query over
// random emails of random projects (one in five unknown): p99, the
// service's RSS, and its growth per subscription.
func (b *bench) accessAtScale(ctx context.Context, label string, nProjects, perProject int) ([]Row, error) {
	b.logf("scale, %s: seeding %d projects of %d subscriptions", label, nProjects, perProject)
	e, err := b.newScaleEnv(ctx, "access")
	if err != nil {
		return nil, err
	}
	defer e.close(b)
	start := time.Now()
	projects, err := createProjects(ctx, e.st, nProjects)
	if err != nil {
		return nil, err
	}
	mirror := []string{"customers", "subscriptions"}
	before, err := e.w.tableBytes(ctx, mirror...)
	if err != nil {
		return nil, err
	}
	if err := seedSubscriptions(ctx, e.st, e.w, projects, perProject); err != nil {
		return nil, err
	}
	after, err := e.w.tableBytes(ctx, mirror...)
	if err != nil {
		return nil, err
	}
	if err := e.w.analyze(ctx); err != nil {
		return nil, err
	}
	n := nProjects * perProject
	b.logf("scale, %s: seeded in %v", label, time.Since(start).Round(time.Second))

	svc, err := b.serve(ctx, e)
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	idle := b.memoryOf(svc)
	paths, err := servedPaths(ctx, svc.URL)
	if err != nil {
		return nil, err
	}
	c := b.opts.concurrency.status
	span := perProject + perProject/4
	var rows []Row
	for _, q := range accessQueries {
		if !paths[q.path] {
			b.note("scale, %s: %s is not served by this build; %s skipped", label, q.path, q.name)
			continue
		}
		targeter := func(t *vegeta.Target) error {
			p := projects[rand.IntN(len(projects))]
			t.Method = "GET"
			t.URL = svc.URL + q.path + "?customerEmail=" + url.QueryEscape(seedEmail(rand.IntN(span)))
			if q.extra != "" {
				t.URL += "&" + q.extra
			}
			t.Header = p.header()
			return nil
		}
		rt := newTransport()
		var t tally
		var cpu cpuUse
		// A longer warm-up than elsewhere: the service indexes a project
		// after a burst of misses, and the rounds measure the steady state.
		if w := scaleWarmupFactor * b.opts.warmup; w > 0 {
			attack(ctx, q.name, targeter, rt, c, w, false, nil)
		}
		var p99s []float64
		stop := b.profile("scale " + label + " " + q.name)
		for i := range b.opts.rounds {
			l := cpu.measured(svc, func() load { return attack(ctx, q.name, targeter, rt, c, b.opts.duration, false, nil) })
			t.add(l)
			p99s = append(p99s, ms(l.P99))
			b.logf("scale, %s, %s round %d: %.0f/s p50 %.2fms p99 %.2fms", label, q.name, i+1, l.Throughput, ms(l.P50), ms(l.P99))
		}
		stop()
		b.note("scale, %s, %s: answers %s; CPU per request %s", label, q.name, t.String(), cpu.String())
		if f := t.failed(); f > 0 {
			p99s = []float64{math.NaN()} // a fast error is no answer
			b.note("scale, %s, %s: %d answers were not 2xx, so its p99 is not met", label, q.name, f)
		}
		rows = append(rows, soloRow(q.name+" p99, "+label, "ms", p99s, below(10)))
	}
	loaded := b.memoryOf(svc)
	perSub := (loaded.RSS - idle.RSS) * (1 << 20) / float64(n)
	b.note("scale, %s: service RSS %.1f MiB idle, %.1f MiB after the access queries (peak %.1f MiB); mirror tables %.0f MiB for %d subscriptions and their customers",
		label, idle.RSS, loaded.RSS, loaded.Peak, float64(after-before)/(1<<20), n)
	rows = append(rows,
		soloRow("service RSS, "+label, "MiB", []float64{loaded.RSS}, below(512)),
		soloRow("index memory per subscription, "+label, "bytes", []float64{perSub}, reported()),
	)
	if nProjects == 1 {
		rows = append(rows, soloRow("mirror size per 1,000,000 subscriptions", "MiB",
			[]float64{perMillionMiB(before, after, n)}, reported()))
	}
	return rows, nil
}

// servedPaths returns the paths of the spec the service serves.
func servedPaths(ctx context.Context, base string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/openapi.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var spec struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("/openapi.json: %w", err)
	}
	out := make(map[string]bool, len(spec.Paths))
	for p := range spec.Paths {
		out[p] = true
	}
	return out, nil
}

// fullLedger measures webhook ingestion into a database whose ledger holds
// the configured number of events against one whose ledger is empty, in
// alternating rounds, each with a service of its own.
func (b *bench) fullLedger(ctx context.Context) ([]Row, error) {
	n := b.opts.scale.events
	label := count(n) + " events"
	b.logf("scale, full ledger: seeding %s", label)
	empty, err := b.newScaleEnv(ctx, "ledger-empty")
	if err != nil {
		return nil, err
	}
	defer empty.close(b)
	full, err := b.newScaleEnv(ctx, "ledger-full")
	if err != nil {
		return nil, err
	}
	defer full.close(b)
	var projects [2]credentials
	for i, e := range []*scaleEnv{empty, full} {
		p, err := createProjects(ctx, e.st, 1)
		if err != nil {
			return nil, err
		}
		projects[i] = p[0]
	}
	start := time.Now()
	before, err := full.w.tableBytes(ctx, "webhook_events")
	if err != nil {
		return nil, err
	}
	if err := seedLedger(ctx, full.w, projects[1].ProjectID, n); err != nil {
		return nil, err
	}
	after, err := full.w.tableBytes(ctx, "webhook_events")
	if err != nil {
		return nil, err
	}
	for _, e := range []*scaleEnv{empty, full} {
		if err := e.w.analyze(ctx); err != nil {
			return nil, err
		}
	}
	b.logf("scale, full ledger: seeded in %v", time.Since(start).Round(time.Second))

	var services [2]*process
	for i, e := range []*scaleEnv{empty, full} {
		if services[i], err = b.serve(ctx, e); err != nil {
			return nil, err
		}
	}
	c := b.opts.concurrency.webhook
	run := newRunID()
	var tallies [2]tally
	side := func(i int) side {
		ev, _ := newEvents(run) // the same events to both
		hook := services[i].URL + "/v1/stripe/webhook/" + projects[i].ProjectID + "?environment=test"
		tr, rt := ev.webhookTargeter(hook, webhookSecret), newTransport()
		return func(d time.Duration) load {
			l := attack(ctx, "webhook", tr, rt, c, d, false, nil)
			tallies[i].add(l)
			return l
		}
	}
	anchors, values := b.alternate("webhook ingestion, full ledger", side(0), side(1))
	b.note("scale, full ledger: %s in the ledger (%.0f MiB) against an empty one, each its own database and service, the same events; answers: full %s; empty %s",
		label, float64(after-before)/(1<<20), tallies[1].String(), tallies[0].String())
	row := pairedRow("webhook ingestion, full ledger ("+label+")", "events/s", pairs(values, anchors, throughput), atLeast(0.9))
	if tallies[0].failed()+tallies[1].failed() > 0 {
		row.Met = false
	}
	return []Row{
		row,
		soloRow("ledger size per 1,000,000 events", "MiB", []float64{perMillionMiB(before, after, n)}, reported()),
	}, nil
}

// count writes n with thousands separators: 1,000,000.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
