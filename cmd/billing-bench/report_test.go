package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"Odd", []float64{5, 1, 3}, 3},
		{"Even", []float64{4, 1, 3, 2}, 2.5},
		{"One", []float64{7}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	t.Run("Empty", func(t *testing.T) {
		if got := median(nil); !math.IsNaN(got) {
			t.Errorf("median(nil) = %v, want NaN", got)
		}
	})
}

func TestPairedRow(t *testing.T) {
	rounds := []round{{value: 2, anchor: 4}, {value: 3, anchor: 5}, {value: 10, anchor: 10}}

	t.Run("RatioIsMedianOfRounds", func(t *testing.T) {
		r := pairedRow("s", "req/s", rounds, atLeast(0.5))
		if r.Value != 3 || r.AnchorValue == nil || *r.AnchorValue != 5 {
			t.Errorf("value, anchor = %v, %v; want 3, 5", r.Value, r.AnchorValue)
		}
		// Per-round ratios 0.5, 0.6, 1: the median is 0.6, not 3/5 by chance.
		if r.Ratio == nil || math.Abs(*r.Ratio-0.6) > 1e-9 {
			t.Errorf("ratio = %v, want 0.6", r.Ratio)
		}
		if !r.Met || r.Target != ">= 0.5 x anchor" {
			t.Errorf("met, target = %v, %q; want true, %q", r.Met, r.Target, ">= 0.5 x anchor")
		}
	})
	t.Run("RatioBelowTarget", func(t *testing.T) {
		if r := pairedRow("s", "req/s", rounds, atLeast(0.7)); r.Met {
			t.Errorf("met = true for ratio %v and target 0.7", *r.Ratio)
		}
	})
	t.Run("ZeroAnchorHasNoRatio", func(t *testing.T) {
		r := pairedRow("s", "req/s", []round{{value: 5, anchor: 0}}, atLeast(0.1))
		if r.Ratio != nil || r.Met {
			t.Errorf("ratio, met = %v, %v; want nil, false", r.Ratio, r.Met)
		}
	})
	t.Run("ValueLimit", func(t *testing.T) {
		for _, tc := range []struct {
			value float64
			want  bool
		}{{9.99, true}, {10, false}, {math.NaN(), false}} {
			r := pairedRow("p99", "ms", []round{{value: tc.value, anchor: 1}}, below(10))
			if r.Met != tc.want || r.Target != "< 10 ms" {
				t.Errorf("value %v: met, target = %v, %q; want %v, %q", tc.value, r.Met, r.Target, tc.want, "< 10 ms")
			}
		}
	})
	t.Run("Zero", func(t *testing.T) {
		if r := soloRow("lost", "events", []float64{0}, none()); !r.Met || r.Target != "= 0" {
			t.Errorf("met, target = %v, %q; want true, %q", r.Met, r.Target, "= 0")
		}
		if r := soloRow("lost", "events", []float64{1}, none()); r.Met {
			t.Error("met = true for 1 lost event")
		}
	})
	t.Run("Reported", func(t *testing.T) {
		if r := soloRow("size", "MiB", []float64{1045}, reported()); !r.Met || r.Target != "reported" {
			t.Errorf("met, target = %v, %q; want true, %q", r.Met, r.Target, "reported")
		}
		if r := soloRow("size", "MiB", nil, reported()); r.Met {
			t.Error("met = true for a measurement that failed")
		}
	})
}

func TestWriteJSON(t *testing.T) {
	rows := []Row{
		pairedRow("proxied create", "req/s", []round{{value: 50, anchor: 100}}, atLeast(0.5)),
		soloRow("start", "ms", []float64{120, 100, 110}, below(300)),
		soloRow("broken", "ms", nil, below(300)),
	}
	path := filepath.Join(t.TempDir(), "out.json")
	if err := writeJSON(path, rows); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not a JSON list of objects: %v\n%s", err, b)
	}
	if len(got) != len(rows) {
		t.Fatalf("got %d objects, want %d", len(got), len(rows))
	}
	wantKeys := []string{"anchor_value", "met", "ratio", "scenario", "target", "unit", "value"}
	for i, o := range got {
		var keys []string
		for k := range o {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, wantKeys) {
			t.Errorf("object %d has keys %v, want %v", i, keys, wantKeys)
		}
	}
	if got[0]["ratio"] != 0.5 || got[0]["anchor_value"] != 100.0 || got[0]["met"] != true {
		t.Errorf("anchored row = %v, want ratio 0.5, anchor_value 100, met", got[0])
	}
	if got[1]["ratio"] != nil || got[1]["anchor_value"] != nil || got[1]["value"] != 110.0 || got[1]["met"] != true {
		t.Errorf("row without anchor = %v, want null ratio and anchor_value, value 110, met", got[1])
	}
	if got[2]["value"] != 0.0 || got[2]["met"] != false {
		t.Errorf("failed row = %v, want value 0, not met", got[2])
	}

	var sb strings.Builder
	if err := printTable(&sb, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proxied create", "0.50", "NOT MET", "n/a"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
}

func TestEvents(t *testing.T) {
	ev, err := newEvents("0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	for n := int64(1); n <= 4; n++ {
		id, body := ev.payload(n)
		if id != ev.id("evt", n) {
			t.Errorf("event %d: id %s, want %s", n, id, ev.id("evt", n))
		}
		_, wantHeader := stripetest.SignedPayload(t, body, webhookSecret, ts)
		if got := sign(body, webhookSecret, ts); got != wantHeader {
			t.Errorf("sign = %s, want %s", got, wantHeader)
		}
		if err := stripeadapter.VerifyWebhook(body, sign(body, webhookSecret, ts), webhookSecret, time.Minute); err != nil {
			t.Errorf("VerifyWebhook: %v", err)
		}
		p, err := stripeadapter.ParseEvent(body, "prj_test", billing.EnvTest)
		if err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
		if p.Event.ID != id || p.Event.Type != eventTypes[n%4] {
			t.Errorf("event %d: parsed %s of type %s, want %s of type %s", n, p.Event.ID, p.Event.Type, id, eventTypes[n%4])
		}
		if isSubscription(n) {
			subs := p.Change.Subscriptions
			if len(subs) != 1 || subs[0].ID != ev.id("sub", n) || subs[0].CustomerID != ev.id("cus", n-1) ||
				len(subs[0].Items) != 1 || subs[0].Items[0].ID != ev.id("si", n) {
				t.Errorf("event %d changes subscriptions %+v, want %s of customer %s with item %s",
					n, subs, ev.id("sub", n), ev.id("cus", n-1), ev.id("si", n))
			}
		} else {
			cus := p.Change.Customers
			if len(cus) != 1 || cus[0].ID != ev.id("cus", n) || cus[0].Email != ev.id("cus", n)+"@bench.example" {
				t.Errorf("event %d changes customers %+v, want %s", n, cus, ev.id("cus", n))
			}
		}
		if bytes.Contains(body, []byte("SSSSS")) || bytes.Contains(body, []byte("CCCCC")) || bytes.Contains(body, []byte("IIIII")) {
			t.Errorf("event %d keeps a placeholder: %s", n, body)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{7: "7", 100: "100", 1000: "1,000", 10_000: "10,000", 1_000_000: "1,000,000"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestConcurrencyFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    concurrency
		wantErr bool
	}{
		{in: "8", want: concurrency{8, 8, 8}},
		{in: "status=64,webhook=4", want: concurrency{64, 16, 4}},
		{in: "0", wantErr: true},
		{in: "other=3", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c := concurrency{status: 32, create: 16, webhook: 32}
			err := c.Set(tc.in)
			if (err != nil) != tc.wantErr || (!tc.wantErr && c != tc.want) {
				t.Errorf("Set(%q) = %+v, %v; want %+v, error %v", tc.in, c, err, tc.want, tc.wantErr)
			}
		})
	}
}
