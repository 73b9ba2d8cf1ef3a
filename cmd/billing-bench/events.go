package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// Placeholders in the event templates, as long as the ids that replace them
// (a prefix, the 8-character run id and a 17-digit number).
var (
	eventIDHole    = "evt_" + strings.Repeat("E", 25)
	customerIDHole = "cus_" + strings.Repeat("C", 25)
	subIDHole      = "sub_" + strings.Repeat("S", 25)
	itemIDHole     = "si_" + strings.Repeat("I", 25)
)

// eventTypes are the webhook events of the benchmark, sent in turn: event n
// is of type eventTypes[n % 4]. Each creates or replaces its own object: a
// customer, or a subscription of the customer of the event before it. Both
// the service and stripe-sync-engine store every one of them from the
// payload alone.
var eventTypes = []string{
	"customer.created",
	"customer.subscription.created",
	"customer.updated",
	"customer.subscription.updated",
}

// events builds the benchmark's webhook events from one template per type,
// each with its own event id and object id.
type events struct {
	templates [][]byte // by n % len(eventTypes)
	run       string   // distinguishes the ids of this run
	next      atomic.Int64
}

func newEvents(run string) (*events, error) {
	if len(run) != 8 {
		return nil, fmt.Errorf("run id %q: want 8 characters", run)
	}
	created := time.Now().Add(-time.Minute)
	e := &events{run: run}
	for _, typ := range eventTypes {
		var b []byte
		if strings.HasPrefix(typ, "customer.subscription.") {
			b = stripetest.SubscriptionEvent(stripetest.SubscriptionEventOptions{
				EventID:        eventIDHole,
				Type:           typ,
				Created:        created,
				SubscriptionID: subIDHole,
				CustomerID:     customerIDHole,
				PriceID:        seedPrice,
				ProductID:      seedProduct,
			})
			// The item's id is random: make it a placeholder too, so that
			// every subscription has an item of its own.
			var sub struct {
				Data struct {
					Object struct {
						Items struct {
							Data []struct{ ID string }
						}
					}
				}
			}
			if err := json.Unmarshal(b, &sub); err != nil || len(sub.Data.Object.Items.Data) != 1 {
				return nil, fmt.Errorf("subscription event template: %v", err)
			}
			b = bytes.ReplaceAll(b, []byte(sub.Data.Object.Items.Data[0].ID), []byte(itemIDHole))
		} else {
			b = customerEvent(typ, created)
		}
		e.templates = append(e.templates, b)
	}
	return e, nil
}

// customerEvent returns a customer.* event in the shape Stripe sends (API
// version 2023-10-16) with placeholder ids.
func customerEvent(typ string, created time.Time) []byte {
	customer := map[string]any{
		"id":                    customerIDHole,
		"object":                "customer",
		"address":               nil,
		"balance":               0,
		"created":               created.Unix(),
		"currency":              nil,
		"default_source":        nil,
		"delinquent":            false,
		"description":           "Created through Checkout",
		"discount":              nil,
		"email":                 strings.ToLower(customerIDHole) + "@bench.example",
		"invoice_prefix":        "8F2C1A9B",
		"invoice_settings":      map[string]any{"custom_fields": nil, "default_payment_method": nil, "footer": nil, "rendering_options": nil},
		"livemode":              false,
		"metadata":              map[string]string{"user_id": "user_" + customerIDHole},
		"name":                  "Bench Customer",
		"next_invoice_sequence": 1,
		"phone":                 "+14155550123",
		"preferred_locales":     []string{"en-US"},
		"shipping":              nil,
		"tax_exempt":            "none",
		"test_clock":            nil,
	}
	event := map[string]any{
		"id":               eventIDHole,
		"object":           "event",
		"api_version":      stripetest.APIVersion2023,
		"created":          created.Unix(),
		"data":             map[string]any{"object": customer},
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             typ,
	}
	b, err := json.Marshal(event)
	if err != nil {
		panic(err)
	}
	return b
}

// id returns the id of kind ("evt", "cus" or "sub") of number n in this run,
// as long as the placeholders.
func (e *events) id(kind string, n int64) string {
	return fmt.Sprintf("%s_%s%017d", kind, e.run, n)
}

// isSubscription reports whether event n is a subscription event.
func isSubscription(n int64) bool { return n%2 == 1 }

// payload returns event n: its id and its JSON. A customer event's object
// is customer n; a subscription event's is subscription n, of customer
// n-1.
func (e *events) payload(n int64) (id string, body []byte) {
	id = e.id("evt", n)
	body = bytes.ReplaceAll(e.templates[n%int64(len(e.templates))], []byte(eventIDHole), []byte(id))
	if isSubscription(n) {
		body = bytes.ReplaceAll(body, []byte(subIDHole), []byte(e.id("sub", n)))
		body = bytes.ReplaceAll(body, []byte(itemIDHole), []byte(e.id("si", n)))
		body = bytes.ReplaceAll(body, []byte(customerIDHole), []byte(e.id("cus", n-1)))
	} else {
		body = bytes.ReplaceAll(body, []byte(customerIDHole), []byte(e.id("cus", n)))
		body = bytes.ReplaceAll(body, []byte(strings.ToLower(customerIDHole)), []byte(e.id("cus", n)))
	}
	return id, body
}

// sizes returns the size of each type's events.
func (e *events) sizes() string {
	parts := make([]string, len(eventTypes))
	for i, typ := range eventTypes {
		_, b := e.payload(int64(i))
		parts[i] = fmt.Sprintf("%s %d B", typ, len(b))
	}
	return strings.Join(parts, ", ")
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

// webhookTargeter sends each next event, freshly signed, to url.
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
