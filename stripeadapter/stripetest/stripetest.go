// Package stripetest builds Stripe webhook events for tests: recorded-shape
// fixtures, generated subscription events, and their Stripe-Signature
// headers.
package stripetest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// TB is the part of testing.TB the helpers use; tests pass their *testing.T.
// The package does not import testing, so that the billing binary (its demo
// and test-event commands) can use it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

//go:embed testdata/*.json
var fixtures embed.FS

// API versions of the two subscription shapes.
const (
	// APIVersion2023 has current_period_end at the subscription's top level.
	APIVersion2023 = "2023-10-16"
	// APIVersion2025 has current_period_end on each subscription item.
	APIVersion2025 = "2025-03-31.basil"
)

// SignedPayload signs payload with a webhook secret at time ts, as Stripe
// does, and returns the body and its Stripe-Signature header. A zero ts
// means now.
func SignedPayload(tb TB, payload []byte, secret string, ts time.Time) (body []byte, header string) {
	tb.Helper()
	return payload, Signature(payload, secret, ts)
}

// Signature returns the Stripe-Signature header Stripe sends with payload
// when signing with a webhook secret at time ts. A zero ts means now.
func Signature(payload []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   payload,
		Secret:    secret,
		Timestamp: ts,
	}).Header
}

// EventNames returns the names of the fixture events Event can load, such
// as "customer.created" or "customer.subscription.updated.2025-03-31".
func EventNames() []string {
	entries, err := fs.ReadDir(fixtures, "testdata")
	if err != nil {
		panic(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(names)
	return names
}

// Event returns the fixture event name (see EventNames) with the fields of
// set replaced. Keys of set are dotted paths into the event, with numbers
// indexing arrays: "id", "created", "data.object.status",
// "data.object.items.data.0.current_period_end". A nil value sets JSON
// null; missing objects on the way are created. With no set, the fixture is
// returned byte for byte.
func Event(tb TB, name string, set map[string]any) []byte {
	tb.Helper()
	b, err := fixtures.ReadFile(path.Join("testdata", name+".json"))
	if err != nil {
		tb.Fatalf("stripetest: no fixture event %q (have %v)", name, EventNames())
	}
	if len(set) == 0 {
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		tb.Fatalf("stripetest: fixture %q: %v", name, err)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if doc, err = setPath(doc, strings.Split(k, "."), set[k]); err != nil {
			tb.Fatalf("stripetest: fixture %q: set %q: %v", name, k, err)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		tb.Fatalf("stripetest: fixture %q: %v", name, err)
	}
	return out
}

// setPath sets the value at path inside doc and returns the new doc.
func setPath(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	switch d := doc.(type) {
	case []any:
		i, err := strconv.Atoi(path[0])
		if err != nil || i < 0 || i >= len(d) {
			return nil, fmt.Errorf("no index %q in an array of %d", path[0], len(d))
		}
		if d[i], err = setPath(d[i], path[1:], v); err != nil {
			return nil, err
		}
		return d, nil
	case map[string]any:
		child, err := setPath(d[path[0]], path[1:], v)
		if err != nil {
			return nil, err
		}
		d[path[0]] = child
		return d, nil
	case nil:
		return setPath(map[string]any{}, path, v)
	default:
		return nil, fmt.Errorf("%q is inside a %T, not an object", path[0], doc)
	}
}

// SubscriptionEventOptions describe a generated subscription event. Zero
// fields take the defaults named.
type SubscriptionEventOptions struct {
	EventID string    // default a random evt_ id
	Type    string    // default "customer.subscription.updated"
	Created time.Time // default now
	// Shape is "2025" for API version 2025-03-31.basil, with the current
	// period on the items; anything else is the 2023-10-16 shape.
	Shape             string
	SubscriptionID    string    // default a random sub_ id
	CustomerID        string    // default a random cus_ id
	Status            string    // default "active"
	PriceID           string    // default "price_test_default"
	ProductID         string    // default "prod_test_default"
	CurrentPeriodEnd  time.Time // default Created plus 30 days
	CancelAtPeriodEnd bool
	// Metadata is the subscription's metadata, such as user_id.
	Metadata map[string]string
}

// SubscriptionEvent returns the JSON of a customer.subscription.* event with
// a realistic subscription object in the 2023 or the 2025 shape.
func SubscriptionEvent(o SubscriptionEventOptions) []byte {
	if o.EventID == "" {
		o.EventID = "evt_" + randomID()
	}
	if o.Type == "" {
		o.Type = "customer.subscription.updated"
	}
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	if o.SubscriptionID == "" {
		o.SubscriptionID = "sub_" + randomID()
	}
	if o.CustomerID == "" {
		o.CustomerID = "cus_" + randomID()
	}
	if o.Status == "" {
		o.Status = "active"
	}
	if o.PriceID == "" {
		o.PriceID = "price_test_default"
	}
	if o.ProductID == "" {
		o.ProductID = "prod_test_default"
	}
	if o.CurrentPeriodEnd.IsZero() {
		o.CurrentPeriodEnd = o.Created.Add(30 * 24 * time.Hour)
	}
	if o.Metadata == nil {
		o.Metadata = map[string]string{}
	}

	created := o.Created.Unix()
	periodEnd := o.CurrentPeriodEnd.Unix()
	periodStart := o.CurrentPeriodEnd.AddDate(0, -1, 0).Unix()
	price := map[string]any{
		"id":                  o.PriceID,
		"object":              "price",
		"active":              true,
		"billing_scheme":      "per_unit",
		"created":             created - 86400,
		"currency":            "usd",
		"livemode":            false,
		"lookup_key":          nil,
		"metadata":            map[string]string{},
		"nickname":            nil,
		"product":             o.ProductID,
		"recurring":           map[string]any{"interval": "month", "interval_count": 1, "usage_type": "licensed"},
		"tax_behavior":        "unspecified",
		"type":                "recurring",
		"unit_amount":         2000,
		"unit_amount_decimal": "2000",
	}
	item := map[string]any{
		"id":           "si_" + randomID(),
		"object":       "subscription_item",
		"created":      created,
		"metadata":     map[string]string{},
		"price":        price,
		"quantity":     1,
		"subscription": o.SubscriptionID,
		"tax_rates":    []any{},
	}
	sub := map[string]any{
		"id":                     o.SubscriptionID,
		"object":                 "subscription",
		"billing_cycle_anchor":   periodStart,
		"cancel_at":              nil,
		"cancel_at_period_end":   o.CancelAtPeriodEnd,
		"canceled_at":            nil,
		"collection_method":      "charge_automatically",
		"created":                periodStart,
		"currency":               "usd",
		"customer":               o.CustomerID,
		"default_payment_method": "pm_" + randomID(),
		"ended_at":               nil,
		"latest_invoice":         "in_" + randomID(),
		"livemode":               false,
		"metadata":               o.Metadata,
		"pending_update":         nil,
		"schedule":               nil,
		"start_date":             periodStart,
		"status":                 o.Status,
		"trial_end":              nil,
		"trial_start":            nil,
	}
	apiVersion := APIVersion2023
	if o.Shape == "2025" {
		apiVersion = APIVersion2025
		item["current_period_end"] = periodEnd
		item["current_period_start"] = periodStart
		item["discounts"] = []any{}
		sub["discounts"] = []any{}
	} else {
		sub["current_period_end"] = periodEnd
		sub["current_period_start"] = periodStart
		sub["discount"] = nil
		item["plan"] = map[string]any{
			"id": o.PriceID, "object": "plan", "active": true, "amount": 2000, "currency": "usd",
			"interval": "month", "interval_count": 1, "nickname": nil, "product": o.ProductID,
		}
		sub["plan"] = item["plan"]
		sub["quantity"] = 1
	}
	sub["items"] = map[string]any{
		"object":      "list",
		"data":        []any{item},
		"has_more":    false,
		"total_count": 1,
		"url":         "/v1/subscription_items?subscription=" + o.SubscriptionID,
	}
	event := map[string]any{
		"id":               o.EventID,
		"object":           "event",
		"api_version":      apiVersion,
		"created":          created,
		"data":             map[string]any{"object": sub},
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             o.Type,
	}
	b, err := json.Marshal(event)
	if err != nil {
		panic(err)
	}
	return b
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomID returns 24 random characters in the style of Stripe's ids.
func randomID() string {
	var b [24]byte
	for i := range b {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return string(b[:])
}
