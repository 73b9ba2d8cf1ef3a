package stripeadapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stackfordevs/billing"
)

// The types below decode Stripe objects from JSON leniently, with
// encoding/json and only the fields the service reads, so that responses and
// events of any API version map alike. Every string decoded is cleaned
// (NUL bytes removed, invalid UTF-8 replaced), so that no value from Stripe
// reaches a database that cannot store it. API responses are decoded from their
// raw body for the same reason: stripe-go's typed structs follow one API
// version only (2023-10-16 for v76), and newer versions moved fields such as
// a subscription's current_period_end.

// expandable is a field that holds either an object's id or, when expanded,
// the object itself.
type expandable struct {
	ID     string
	Object json.RawMessage // nil unless expanded
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *expandable) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '"':
		if err := json.Unmarshal(b, &e.ID); err != nil {
			return err
		}
		e.ID = clean(e.ID)
		return nil
	case b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		e.ID = clean(o.ID)
		e.Object = append(json.RawMessage(nil), b...)
		return nil
	default:
		return fmt.Errorf("want an id or an object, got %.20s", b)
	}
}

// metadata is Stripe metadata. Values are strings in Stripe; anything else
// is kept in its JSON form rather than failing the whole object.
type metadata map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (m *metadata) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	out := make(metadata, len(raw))
	for k, v := range raw {
		var s string
		switch {
		case bytes.Equal(v, []byte("null")):
			continue
		case json.Unmarshal(v, &s) == nil:
			out[clean(k)] = clean(s)
		default:
			out[clean(k)] = clean(string(v))
		}
	}
	*m = out
	return nil
}

// userID returns the buyer the object was created for.
func (m metadata) userID() string { return m["user_id"] }

// foreign reports whether the object is tagged with another project than
// projectID: several projects may share one Stripe account, and each
// mirrors only its own objects and those no project tagged.
func (m metadata) foreign(projectID string) bool {
	tag := m["project_id"]
	return tag != "" && projectID != "" && tag != projectID
}

// errForeign is returned by the decoders for an object of another project.
var errForeign = errors.New("object belongs to another project")

// clean returns s without NUL bytes and with invalid UTF-8 replaced by
// U+FFFD: PostgreSQL stores neither in text.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// cleanStrings cleans every string field of a decoded raw object, in place,
// through nested structs, pointers and slices. Maps (metadata) and raw JSON
// clean themselves when they are decoded.
func cleanStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			cleanStrings(v.Elem())
		}
	case reflect.String:
		if s := v.String(); s != clean(s) {
			v.SetString(clean(s))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				cleanStrings(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			cleanStrings(v.Index(i))
		}
	}
}

type rawCustomer struct {
	ID          string   `json:"id"`
	Object      string   `json:"object"`
	Email       string   `json:"email"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Phone       string   `json:"phone"`
	Metadata    metadata `json:"metadata"`
	Deleted     bool     `json:"deleted"`
	Created     int64    `json:"created"`
}

type rawProduct struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Name    string `json:"name"`
	Active  bool   `json:"active"`
	Deleted bool   `json:"deleted"`
	Updated int64  `json:"updated"`
	Created int64  `json:"created"`
}

// rawPrice also decodes a legacy plan, which has the same fields and its
// interval at the top level rather than under recurring.
type rawPrice struct {
	ID        string     `json:"id"`
	Object    string     `json:"object"`
	Product   expandable `json:"product"`
	Nickname  string     `json:"nickname"`
	Active    bool       `json:"active"`
	Deleted   bool       `json:"deleted"`
	Created   int64      `json:"created"`
	Recurring *struct {
		Interval      string `json:"interval"`
		IntervalCount int64  `json:"interval_count"`
	} `json:"recurring"`
	Interval      string `json:"interval"`
	IntervalCount int64  `json:"interval_count"`
}

// interval returns how often the price recurs ("" for a one-time price).
func (p *rawPrice) interval() (string, int64) {
	if p.Recurring != nil && p.Recurring.Interval != "" {
		return p.Recurring.Interval, p.Recurring.IntervalCount
	}
	return p.Interval, p.IntervalCount
}

type rawSubscriptionItem struct {
	ID       string    `json:"id"`
	Price    *rawPrice `json:"price"`
	Plan     *rawPrice `json:"plan"`
	Quantity int64     `json:"quantity"`
	// The current period is on items from API version 2025-03-31 on.
	CurrentPeriodStart int64 `json:"current_period_start"`
	CurrentPeriodEnd   int64 `json:"current_period_end"`
}

type rawSubscription struct {
	ID       string     `json:"id"`
	Object   string     `json:"object"`
	Status   string     `json:"status"`
	Customer expandable `json:"customer"`
	// The current period is at the top level up to API version 2025-02-24.
	CurrentPeriodStart int64    `json:"current_period_start"`
	CurrentPeriodEnd   int64    `json:"current_period_end"`
	CancelAtPeriodEnd  bool     `json:"cancel_at_period_end"`
	CancelAt           int64    `json:"cancel_at"`
	CanceledAt         int64    `json:"canceled_at"`
	EndedAt            int64    `json:"ended_at"`
	TrialEnd           int64    `json:"trial_end"`
	Created            int64    `json:"created"`
	StartDate          int64    `json:"start_date"`
	Metadata           metadata `json:"metadata"`
	Items              struct {
		Data []rawSubscriptionItem `json:"data"`
	} `json:"items"`
	Plan *rawPrice `json:"plan"`
}

type rawCheckoutSession struct {
	ID              string     `json:"id"`
	Object          string     `json:"object"`
	Status          string     `json:"status"`
	PaymentStatus   string     `json:"payment_status"`
	Mode            string     `json:"mode"`
	Customer        expandable `json:"customer"`
	CustomerEmail   string     `json:"customer_email"`
	CustomerDetails *struct {
		Email string `json:"email"`
	} `json:"customer_details"`
	Subscription      expandable `json:"subscription"`
	PaymentIntent     expandable `json:"payment_intent"`
	AmountTotal       int64      `json:"amount_total"`
	Currency          string     `json:"currency"`
	URL               string     `json:"url"`
	Created           int64      `json:"created"`
	ClientReferenceID string     `json:"client_reference_id"`
	Metadata          metadata   `json:"metadata"`
}

type rawInvoice struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	// Subscription is at the top level up to API version 2025-02-24, and
	// under parent.subscription_details from 2025-03-31 on.
	Subscription expandable `json:"subscription"`
	Parent       *struct {
		SubscriptionDetails *struct {
			Subscription expandable `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
}

// errNoID is returned by the decoders for an object without an id.
var errNoID = errors.New("object has no id")

// decodeObject decodes one Stripe object of the given object type. An object
// whose "object" field names another type is an error.
func decodeObject(b []byte, want string, v any, id, object *string) error {
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	cleanStrings(reflect.ValueOf(v))
	if *id == "" {
		return errNoID
	}
	if *object != "" && *object != want {
		return fmt.Errorf("object is a %q, want a %q", *object, want)
	}
	return nil
}

func decodeCustomer(b []byte, projectID string, env billing.Environment, at time.Time) (billing.Customer, error) {
	var r rawCustomer
	if err := decodeObject(b, "customer", &r, &r.ID, &r.Object); err != nil {
		return billing.Customer{}, err
	}
	if r.Metadata.foreign(projectID) {
		return billing.Customer{}, errForeign
	}
	at = stamp(at, r.Created)
	return billing.Customer{
		ID:          r.ID,
		ProjectID:   projectID,
		Environment: env,
		Email:       r.Email,
		Name:        r.Name,
		Description: r.Description,
		Phone:       r.Phone,
		Metadata:    r.Metadata,
		UserID:      r.Metadata.userID(),
		Deleted:     r.Deleted,
		Created:     unixTime(r.Created),
		EventAt:     at,
	}, nil
}

func decodeProduct(b []byte, projectID string, env billing.Environment, at time.Time) (billing.Product, error) {
	var r rawProduct
	if err := decodeObject(b, "product", &r, &r.ID, &r.Object); err != nil {
		return billing.Product{}, err
	}
	at = stamp(at, r.Created, r.Updated)
	return billing.Product{
		ID:          r.ID,
		ProjectID:   projectID,
		Environment: env,
		Name:        r.Name,
		Active:      r.Active,
		Deleted:     r.Deleted,
		EventAt:     at,
	}, nil
}

func decodePrice(b []byte, projectID string, env billing.Environment, at time.Time) (billing.Price, error) {
	var r rawPrice
	if err := decodeObject(b, "price", &r, &r.ID, &r.Object); err != nil {
		return billing.Price{}, err
	}
	at = stamp(at, r.Created)
	return billing.Price{
		ID:          r.ID,
		ProjectID:   projectID,
		Environment: env,
		ProductID:   r.Product.ID,
		Nickname:    r.Nickname,
		Active:      r.Active,
		Deleted:     r.Deleted,
		EventAt:     at,
	}, nil
}

func decodeSubscription(b []byte, projectID string, env billing.Environment, at time.Time) (billing.Subscription, error) {
	s, _, err := decodeSubscriptionProducts(b, projectID, env, at)
	return s, err
}

// decodeSubscriptionProducts decodes a subscription and the products its
// items carry expanded (with their names).
func decodeSubscriptionProducts(b []byte, projectID string, env billing.Environment, at time.Time) (billing.Subscription, []billing.Product, error) {
	var r rawSubscription
	if err := decodeObject(b, "subscription", &r, &r.ID, &r.Object); err != nil {
		return billing.Subscription{}, nil, err
	}
	if r.Metadata.foreign(projectID) {
		return billing.Subscription{}, nil, errForeign
	}
	s := billing.Subscription{
		ID:                r.ID,
		ProjectID:         projectID,
		Environment:       env,
		CustomerID:        r.Customer.ID,
		UserID:            r.Metadata.userID(),
		Status:            r.Status,
		CancelAtPeriodEnd: r.CancelAtPeriodEnd,
		CancelAt:          optionalTime(r.CancelAt),
		CanceledAt:        optionalTime(r.CanceledAt),
		EndedAt:           optionalTime(r.EndedAt),
		TrialEnd:          optionalTime(r.TrialEnd),
		Created:           unixTime(r.Created),
	}
	if r.Customer.Object != nil {
		var c struct {
			Email string `json:"email"`
		}
		if json.Unmarshal(r.Customer.Object, &c) == nil {
			s.Email = clean(c.Email)
		}
	}

	periodStart, periodEnd := r.CurrentPeriodStart, r.CurrentPeriodEnd
	var products []billing.Product
	for i, it := range r.Items.Data {
		price := it.Price
		if price == nil {
			price = it.Plan
		}
		if price != nil && price.Product.Object != nil {
			if p, err := decodeProduct(price.Product.Object, projectID, env, at); err == nil && p.Name != "" {
				products = append(products, p)
			}
		}
		item := billing.SubscriptionItem{ID: it.ID, Quantity: it.Quantity,
			CurrentPeriodStart: it.CurrentPeriodStart, CurrentPeriodEnd: it.CurrentPeriodEnd}
		if price != nil {
			item.PriceID = price.ID
			item.ProductID = price.Product.ID
			item.Interval, item.IntervalCount = price.interval()
		}
		s.Items = append(s.Items, item)
		if i == 0 && price != nil {
			s.PriceID, s.ProductID, s.PlanName = item.PriceID, item.ProductID, planName(price)
		}
		// From 2025-03-31 on, the subscription's period is its items' that
		// ends last.
		if r.CurrentPeriodEnd == 0 && it.CurrentPeriodEnd > periodEnd {
			periodStart, periodEnd = it.CurrentPeriodStart, it.CurrentPeriodEnd
		}
	}
	if s.PriceID == "" && r.Plan != nil {
		s.PriceID, s.ProductID, s.PlanName = r.Plan.ID, r.Plan.Product.ID, planName(r.Plan)
	}
	s.CurrentPeriodStart = unixTime(periodStart)
	s.CurrentPeriodEnd = unixTime(periodEnd)
	s.EventAt = stamp(at, r.Created, r.StartDate, periodStart, r.CanceledAt, r.EndedAt)
	for i := range products {
		products[i].EventAt = s.EventAt
	}
	return s, products, nil
}

// planName returns the expanded product's name, or else the price's nickname.
func planName(p *rawPrice) string {
	if p.Product.Object != nil {
		var prod struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(p.Product.Object, &prod) == nil && prod.Name != "" {
			return clean(prod.Name)
		}
	}
	return p.Nickname
}

func decodeCheckoutSession(b []byte, projectID string, env billing.Environment, at time.Time) (billing.CheckoutSession, error) {
	var r rawCheckoutSession
	if err := decodeObject(b, "checkout.session", &r, &r.ID, &r.Object); err != nil {
		return billing.CheckoutSession{}, err
	}
	if r.Metadata.foreign(projectID) {
		return billing.CheckoutSession{}, errForeign
	}
	return r.session(projectID, env, stamp(at, r.Created)), nil
}

func (r *rawCheckoutSession) session(projectID string, env billing.Environment, at time.Time) billing.CheckoutSession {
	email := r.CustomerEmail
	if email == "" && r.CustomerDetails != nil {
		email = r.CustomerDetails.Email
	}
	userID := r.ClientReferenceID
	if userID == "" {
		userID = r.Metadata.userID()
	}
	return billing.CheckoutSession{
		ID:              r.ID,
		ProjectID:       projectID,
		Environment:     env,
		UserID:          userID,
		Mode:            r.Mode,
		Status:          r.Status,
		PaymentStatus:   r.PaymentStatus,
		CustomerID:      r.Customer.ID,
		CustomerEmail:   email,
		SubscriptionID:  r.Subscription.ID,
		PaymentIntentID: r.PaymentIntent.ID,
		AmountTotal:     r.AmountTotal,
		Currency:        r.Currency,
		URL:             r.URL,
		Created:         unixTime(r.Created),
		EventAt:         at,
	}
}

// stamp returns at, the time Stripe gave for the event or the read; when
// Stripe gave none, the latest of the object's own timestamps (Unix
// seconds). The local clock never orders a write.
func stamp(at time.Time, own ...int64) time.Time {
	if !at.IsZero() {
		return at
	}
	var latest int64
	for _, t := range own {
		latest = max(latest, t)
	}
	return unixTime(latest)
}

// optionalTime converts a Stripe timestamp that may be absent.
func optionalTime(sec int64) *time.Time {
	if sec <= 0 {
		return nil
	}
	t := unixTime(sec)
	return &t
}

// unixTime converts a Stripe timestamp; 0 (or null) is the zero time.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
