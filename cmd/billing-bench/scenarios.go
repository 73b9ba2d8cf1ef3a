package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// side is one thing a scenario measures: the service or the anchor.
type side func(d time.Duration) load

// alternate warms both sides up, then measures anchor and scenario in turn
// for the configured rounds, and returns the rounds of each.
func (b *bench) alternate(name string, anchor, scenario side) (anchors, values []load) {
	if b.opts.warmup > 0 {
		anchor(b.opts.warmup)
		scenario(b.opts.warmup)
	}
	defer b.profile(name)()
	for i := range b.opts.rounds {
		a := anchor(b.opts.duration)
		s := scenario(b.opts.duration)
		anchors, values = append(anchors, a), append(values, s)
		b.logf("%s round %d: anchor %.0f/s p50 %.2fms p99 %.2fms | service %.0f/s p50 %.2fms p99 %.2fms",
			name, i+1, a.Throughput, ms(a.P50), ms(a.P99), s.Throughput, ms(s.P50), ms(s.P99))
	}
	return anchors, values
}

// cpuUse adds up the CPU time a process spent over measurements, and the
// requests it answered meanwhile.
type cpuUse struct {
	cpu      time.Duration
	requests uint64
	failed   bool
}

// measured runs f and charges p's CPU time over it to u.
func (u *cpuUse) measured(p *process, f func() load) load {
	before, err1 := readCPU(p.PID())
	l := f()
	after, err2 := readCPU(p.PID())
	if err1 != nil || err2 != nil {
		u.failed = true
		l.CPU = -1
	} else {
		l.CPU = after - before
	}
	u.cpu += after - before
	u.requests += l.Requests
	return l
}

// String is the CPU time per request, in microseconds.
func (u *cpuUse) String() string {
	if u.failed || u.requests == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f µs", float64(u.cpu.Microseconds())/float64(u.requests))
}

// pairs returns the per-round (service, anchor) values of f.
func pairs(values, anchors []load, f func(load) float64) []round {
	out := make([]round, len(values))
	for i := range values {
		out[i] = round{value: f(values[i]), anchor: f(anchors[i])}
	}
	return out
}

func throughput(l load) float64 { return l.Throughput }
func p99ms(l load) float64      { return ms(l.P99) }

// memoryOf reads a process's memory, noting a failure.
func (b *bench) memoryOf(p *process) memory {
	m, err := readMemory(p.PID())
	if err != nil {
		b.note("memory of %s: %v", p.name, err)
		return memory{RSS: math.NaN(), Peak: math.NaN()}
	}
	return m
}

// measure runs the scenarios and returns the table's rows.
func (b *bench) measure(ctx context.Context) ([]Row, error) {
	b.describe()
	time.Sleep(500 * time.Millisecond) // let the start-up garbage go
	idle, anchorIdle := b.memoryOf(b.service), b.memoryOf(b.anchor)

	statusRows, afterStatus, anchorLoaded := b.subscriptionStatus(ctx)
	createRows, afterCreate := b.proxiedCreate(ctx)
	webhookRows, afterWebhook, err := b.webhookIngestion(ctx)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	final := b.memoryOf(b.service)

	var rows []Row
	rows = append(rows, statusRows...)
	rows = append(rows, createRows...)
	rows = append(rows, webhookRows...)
	if b.opts.peer {
		peerRows, err := b.webhookVsPeer(ctx)
		if err != nil {
			return nil, err
		}
		rows = append(rows, peerRows...)
	}
	rows = append(rows,
		pairedRow("memory idle", "MiB", []round{{idle.RSS, anchorIdle.RSS}}, below(40)),
		pairedRow("memory after subscription status", "MiB", []round{{afterStatus.RSS, anchorLoaded.RSS}}, below(120)),
		pairedRow("memory after proxied create", "MiB", []round{{afterCreate.RSS, anchorLoaded.RSS}}, below(120)),
		pairedRow("memory after webhook ingestion", "MiB", []round{{afterWebhook.RSS, anchorLoaded.RSS}}, below(120)),
		pairedRow("memory peak (VmHWM)", "MiB", []round{{final.Peak, anchorLoaded.Peak}}, below(120)),
		soloRow("start to /readyz 200 (SQLite)", "ms", b.starts, below(300)),
	)
	b.note("start: median of %d starts, each on a fresh SQLite file (migrations included): %s ms",
		len(b.starts), formatList(b.starts))
	select {
	case <-b.service.exited:
		b.note("the service exited during the benchmark; its last log lines:\n      %s",
			trimLines(strings.Split(b.service.lastLines(), "\n"), 400))
	default:
	}
	if n, lines := b.service.errorLog(); n > 0 {
		b.note("the service logged %d lines at level ERROR; the first:\n      %s", n, trimLines(lines, 400))
	}
	if b.opts.scale.on {
		// The scale scenarios start services of their own: stop the others.
		b.stopServers()
		scaleRows, err := b.scale(ctx)
		if err != nil {
			return nil, err
		}
		rows = append(rows, scaleRows...)
	}
	return rows, nil
}

// subscriptionStatus measures GET /v1/customer/subscription over seeded
// emails and unknown ones (one in five), against the bare Echo anchor
// answering the same body.
func (b *bench) subscriptionStatus(ctx context.Context) (rows []Row, after, anchorAfter memory) {
	c := b.opts.concurrency.status
	b.logf("subscription status: %d rounds, concurrency %d", b.opts.rounds, c)
	header := b.project.header()
	span := b.opts.customers + b.opts.customers/4
	targeter := func(base string) vegeta.Targeter {
		return func(t *vegeta.Target) error {
			t.Method = "GET"
			t.URL = base + "/v1/customer/subscription?customerEmail=" + url.QueryEscape(seedEmail(rand.IntN(span)))
			t.Header = header
			return nil
		}
	}
	var svc, anc tally
	var svcCPU, ancCPU cpuUse
	svcRT, ancRT := newTransport(), newTransport()
	anchors, values := b.alternate("subscription status",
		func(d time.Duration) load {
			l := ancCPU.measured(b.anchor, func() load {
				return attack(ctx, "anchor", targeter(b.anchor.URL), ancRT, c, d, false, nil)
			})
			anc.add(l)
			return l
		},
		func(d time.Duration) load {
			l := svcCPU.measured(b.service, func() load {
				return attack(ctx, "status", targeter(b.service.URL), svcRT, c, d, false, nil)
			})
			svc.add(l)
			return l
		})
	after, anchorAfter = b.memoryOf(b.service), b.memoryOf(b.anchor)
	b.note("subscription status: emails drawn uniformly from %d, of which %d are seeded customers; answers: service %s; anchor %s",
		span, b.opts.customers, svc.String(), anc.String())
	b.note("subscription status CPU per request: service %s, bare Echo anchor %s", svcCPU.String(), ancCPU.String())
	rows = []Row{
		pairedRow("subscription status", "req/s", pairs(values, anchors, throughput), atLeast(0.4)),
		pairedRow("subscription status p99", "ms", pairs(values, anchors, p99ms), below(10)),
	}
	return rows, after, anchorAfter
}

// proxiedCreate measures POST /v1/stripe/customers through the service to
// stripe-mock, against the same creation sent straight to stripe-mock.
func (b *bench) proxiedCreate(ctx context.Context) (rows []Row, after memory) {
	c := b.opts.concurrency.create
	b.logf("proxied create: %d rounds, concurrency %d", b.opts.rounds, c)
	var n atomic.Int64
	header := b.project.header()
	header.Set("Content-Type", "application/json")
	service := func(t *vegeta.Target) error {
		i := n.Add(1)
		t.Method, t.URL, t.Header = "POST", b.service.URL+"/v1/stripe/customers", header
		t.Body = fmt.Appendf(nil, `{"email":"new%d@bench.example","name":"Bench Customer %d"}`, i, i)
		return nil
	}
	// What the service sends Stripe: the fields, the reserved metadata and
	// an idempotency key.
	direct := func(t *vegeta.Target) error {
		i := n.Add(1)
		form := url.Values{
			"email":                {fmt.Sprintf("new%d@bench.example", i)},
			"name":                 {fmt.Sprintf("Bench Customer %d", i)},
			"metadata[tenant_id]":  {b.project.TenantID},
			"metadata[project_id]": {b.project.ProjectID},
		}
		t.Method, t.URL = "POST", b.stripe.URL+"/v1/customers"
		t.Header = http.Header{
			"Authorization":   {"Bearer " + stripeSecretKey},
			"Content-Type":    {"application/x-www-form-urlencoded"},
			"Idempotency-Key": {fmt.Sprintf("bench-%s-%d", b.run, i)},
		}
		t.Body = []byte(form.Encode())
		return nil
	}
	var svc, anc tally
	var svcCPU cpuUse
	svcRT, ancRT := newTransport(), newTransport()
	anchors, values := b.alternate("proxied create",
		func(d time.Duration) load {
			l := attack(ctx, "direct", direct, ancRT, c, d, false, nil)
			anc.add(l)
			return l
		},
		func(d time.Duration) load {
			l := svcCPU.measured(b.service, func() load {
				return attack(ctx, "create", service, svcRT, c, d, false, nil)
			})
			svc.add(l)
			return l
		})
	after = b.memoryOf(b.service)
	b.note("proxied create answers: service %s; stripe-mock direct %s", svc.String(), anc.String())
	b.note("proxied create CPU per request in the service (stripe-mock's not counted): %s", svcCPU.String())
	added := make([]round, len(values))
	for i := range values {
		added[i] = round{value: ms(values[i].P50) - ms(anchors[i].P50), anchor: ms(anchors[i].P50)}
	}
	rows = []Row{
		pairedRow("proxied create", "req/s", pairs(values, anchors, throughput), atLeast(0.5)),
		pairedRow("proxied create added p50", "ms", added, below(1)),
	}
	return rows, after
}

// webhookIngestion measures signed customer.subscription.updated events,
// each with its own id, against one transaction inserting the same 2 KB
// row into the same database; then checks that every acknowledged event
// is stored once and that a redelivery is a no-op.
func (b *bench) webhookIngestion(ctx context.Context) (rows []Row, after memory, err error) {
	c := b.opts.concurrency.webhook
	b.logf("webhook ingestion: %d rounds, concurrency %d", b.opts.rounds, c)
	run := newRunID()
	svcEvents, err := newEvents(run)
	if err != nil {
		return nil, memory{}, err
	}
	ancEvents, err := newEvents(run)
	if err != nil {
		return nil, memory{}, err
	}
	before, err := countEvents(ctx, b.gdb, b.project.ProjectID)
	if err != nil {
		return nil, memory{}, fmt.Errorf("count webhook events: %w", err)
	}
	hook := b.service.URL + "/v1/stripe/webhook/" + b.project.ProjectID + "?environment=test"
	var svc, anc tally
	var svcCPU cpuUse
	var acked, duplicates, notApplied int64
	onResult := func(r *vegeta.Result) {
		if r.Code/100 != 2 {
			return
		}
		acked++
		if bytes.Contains(r.Body, []byte(`"duplicate":true`)) {
			duplicates++
		}
		if !bytes.Contains(r.Body, []byte(`"status":"applied"`)) {
			notApplied++
		}
	}
	svcRT := newTransport()
	ancRT := &insertTransport{db: b.gdb, projectID: b.anchorProject.ProjectID}
	anchors, values := b.alternate("webhook ingestion",
		func(d time.Duration) load {
			l := attack(ctx, "insert", ancEvents.insertTargeter(), ancRT, c, d, false, nil)
			anc.add(l)
			return l
		},
		func(d time.Duration) load {
			l := svcCPU.measured(b.service, func() load {
				return attack(ctx, "webhook", svcEvents.webhookTargeter(hook, webhookSecret), svcRT, c, d, true, onResult)
			})
			svc.add(l)
			return l
		})
	after = b.memoryOf(b.service)

	stored, err := countEvents(ctx, b.gdb, b.project.ProjectID)
	if err != nil {
		return nil, memory{}, fmt.Errorf("count webhook events: %w", err)
	}
	stored -= before
	sent := svcEvents.next.Load()
	lost := max(0, acked-stored)
	var twice int64
	b.note("webhook ingestion: %d events sent (%s), %d acknowledged (2xx), %d stored; answers: service %s; database insert %s",
		sent, svcEvents.sizes(), acked, stored, svc.String(), anc.String())
	b.note("webhook ingestion CPU per event in the service (the database server's not counted): %s", svcCPU.String())
	if duplicates > 0 {
		b.note("webhook ingestion: %d first deliveries were answered as duplicates, though every event id is new", duplicates)
	}
	if notApplied > 0 {
		b.note("webhook ingestion: %d acknowledged events were not reported \"applied\"", notApplied)
	}
	if stored > acked {
		b.note("webhook ingestion: %d events were stored without a 2xx answer (Stripe would redeliver them as duplicates)", stored-acked)
	}

	// Redeliver the first events: each must be acknowledged as a duplicate
	// and change nothing.
	redo := min(sent, 100)
	redelivered, stillNew, err := b.redeliver(ctx, hook, svcEvents, redo)
	if err != nil {
		b.note("webhook redelivery check failed: %v", err)
	} else {
		total, err := countEvents(ctx, b.gdb, b.project.ProjectID)
		if err != nil {
			return nil, memory{}, fmt.Errorf("count webhook events: %w", err)
		}
		grew := total - before - stored
		// Every redelivered event answered as new was applied twice, unless
		// its first delivery failed (then it is new for the first time).
		twice = stillNew
		if f := svc.failed(); f > 0 {
			twice = max(0, stillNew-int64(f))
			b.note("webhook redelivery: %d deliveries failed during the load, so up to %d new answers may be legitimate", f, f)
		}
		b.note("webhook redelivery: %d of %d redelivered events answered as duplicates, %d as new; stored rows grew by %d",
			redelivered, redo, stillNew, grew)
	}

	rows = []Row{
		pairedRow("webhook ingestion", "events/s", pairs(values, anchors, throughput), atLeast(0.5)),
		soloRow("webhook events lost (2xx, not stored)", "events", []float64{float64(lost)}, none()),
		soloRow("webhook events applied twice", "events", []float64{float64(max(0, twice))}, none()),
	}
	if !b.opts.peer {
		// With -peer the row comes from the rounds against the peer.
		cpu := make([]float64, len(values))
		for i, v := range values {
			cpu[i] = cpuPerEvent(v)
		}
		rows = append(rows, soloRow("webhook CPU per event", "ms", cpu, below(0.3)))
	}
	return rows, after, nil
}

// redeliver sends events 1..n again, freshly signed, one at a time, and
// returns how many were answered as duplicates and how many as new.
func (b *bench) redeliver(ctx context.Context, hook string, ev *events, n int64) (duplicates, fresh int64, err error) {
	client := &http.Client{Timeout: 10 * time.Second}
	for i := int64(1); i <= n; i++ {
		_, body := ev.payload(i)
		req, err := http.NewRequestWithContext(ctx, "POST", hook, bytes.NewReader(body))
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", sign(body, webhookSecret, time.Now()))
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 != 2:
			return 0, 0, fmt.Errorf("redelivery answered %s: %s", resp.Status, strings.TrimSpace(string(got)))
		case bytes.Contains(got, []byte(`"duplicate":true`)):
			duplicates++
		default:
			fresh++
		}
	}
	return duplicates, fresh, nil
}
