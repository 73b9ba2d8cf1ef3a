package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// eventSize is the size of every webhook payload of the benchmark.
const eventSize = 2048

// Placeholders in the event template, as long as the ids that replace them
// (a prefix, the 8-character run id and a 17-digit number), so that every
// event has the same size.
var (
	eventIDHole = "evt_" + strings.Repeat("E", 25)
	subIDHole   = "sub_" + strings.Repeat("S", 25)
)

// events builds customer.subscription.updated events of exactly eventSize
// bytes, each with its own event id and subscription id, from one
// template made by stripetest.SubscriptionEvent.
type events struct {
	template []byte
	run      string // distinguishes the ids of this run
	next     atomic.Int64
}

func newEvents(run, customerID string) (*events, error) {
	if len(run) != 8 {
		return nil, fmt.Errorf("run id %q: want 8 characters", run)
	}
	build := func(padding int) []byte {
		return stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
			EventID:        eventIDHole,
			SubscriptionID: subIDHole,
			CustomerID:     customerID,
			PriceID:        seedPrice,
			ProductID:      seedProduct,
			Metadata:       map[string]string{"padding": strings.Repeat("x", padding)},
		})
	}
	b := build(0)
	if len(b) > eventSize {
		return nil, fmt.Errorf("a subscription event is %d bytes, more than %d", len(b), eventSize)
	}
	b = build(eventSize - len(b))
	if len(b) != eventSize {
		return nil, fmt.Errorf("padded subscription event is %d bytes, want %d", len(b), eventSize)
	}
	return &events{template: b, run: run}, nil
}

// ids returns the event id and subscription id of event n, as long as the
// placeholders.
func (e *events) ids(n int64) (eventID, subID string) {
	return fmt.Sprintf("evt_%s%017d", e.run, n), fmt.Sprintf("sub_%s%017d", e.run, n)
}

// payload returns event n.
func (e *events) payload(n int64) (id string, body []byte) {
	eventID, subID := e.ids(n)
	body = bytes.ReplaceAll(e.template, []byte(eventIDHole), []byte(eventID))
	body = bytes.ReplaceAll(body, []byte(subIDHole), []byte(subID))
	return eventID, body
}

// sign returns the Stripe-Signature header of payload signed with secret at
// ts, as Stripe computes it: t=TS,v1=hex(HMAC-SHA256(secret, "TS.payload")).
func sign(payload []byte, secret string, ts time.Time) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write(payload)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookTargeter sends each next event, freshly signed, to the service's
// webhook URL.
func (e *events) webhookTargeter(url, secret string) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		_, body := e.payload(e.next.Add(1))
		t.Method, t.URL, t.Body = "POST", url, body
		t.Header = map[string][]string{
			"Content-Type":     {"application/json"},
			"Stripe-Signature": {sign(body, secret, time.Now())},
		}
		return nil
	}
}

// insertTargeter sends each next event to the insertTransport; the
// transport reads the event id from X-Event-Id.
func (e *events) insertTargeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		id, body := e.payload(e.next.Add(1))
		t.Method, t.URL, t.Body = "POST", "http://anchor.invalid/insert", body
		t.Header = map[string][]string{"X-Event-Id": {id}}
		return nil
	}
}
