package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// activeStatuses are the subscription statuses FindActiveSubscription
// considers current.
var activeStatuses = []string{"active", "trialing", "past_due"}

type subscriptionRow struct {
	ProjectID          string
	Environment        string
	ID                 string
	CustomerID         string
	Email              string
	UserID             string
	PriceID            string
	ProductID          string
	PlanName           string
	Status             string
	CurrentPeriodStart int64
	CurrentPeriodEnd   int64
	CancelAtPeriodEnd  bool
	CancelAt           int64
	CanceledAt         int64
	EndedAt            int64
	TrialEnd           *int64
	Items              string
	Created            int64
	EventAt            int64
	UpdatedAt          int64
	// Names found through the product and price tables.
	ProductName      string
	PriceProductName string
	PriceNickname    string
}

// subscriptionSelect reads subscriptions from source (a table or a derived
// table, named "s") with the names that make their plan name: the
// product's, the price's product's and the price's nickname.
func subscriptionSelect(source string) string {
	return `SELECT s.project_id, s.environment, s.id, s.customer_id, s.email, s.user_id,
		s.price_id, s.product_id, s.plan_name, s.status, s.current_period_start, s.current_period_end,
		s.cancel_at_period_end, s.cancel_at, s.canceled_at, s.ended_at,
		s.trial_end, s.items, s.created, s.event_at, s.updated_at,
		COALESCE(p.name, '') AS product_name,
		COALESCE(pp.name, '') AS price_product_name,
		COALESCE(pr.nickname, '') AS price_nickname
	FROM ` + source + ` s
	LEFT JOIN prices pr
		ON pr.project_id = s.project_id AND pr.environment = s.environment AND pr.id = s.price_id
	LEFT JOIN products p
		ON p.project_id = s.project_id AND p.environment = s.environment AND p.id = s.product_id
	LEFT JOIN products pp
		ON pp.project_id = s.project_id AND pp.environment = s.environment AND pp.id = pr.product_id`
}

func (r subscriptionRow) subscription() (billing.Subscription, error) {
	s := billing.Subscription{
		ID:                 r.ID,
		ProjectID:          r.ProjectID,
		Environment:        billing.Environment(r.Environment),
		CustomerID:         r.CustomerID,
		Email:              r.Email,
		UserID:             r.UserID,
		PriceID:            r.PriceID,
		ProductID:          r.ProductID,
		PlanName:           firstNonEmpty(r.ProductName, r.PriceProductName, r.PlanName, r.PriceNickname),
		Status:             r.Status,
		CurrentPeriodStart: fromMicros(r.CurrentPeriodStart),
		CurrentPeriodEnd:   fromMicros(r.CurrentPeriodEnd),
		CancelAtPeriodEnd:  r.CancelAtPeriodEnd,
		CancelAt:           optionalMicros(r.CancelAt),
		CanceledAt:         optionalMicros(r.CanceledAt),
		EndedAt:            optionalMicros(r.EndedAt),
		Created:            fromMicros(r.Created),
		EventAt:            fromMicros(r.EventAt),
		UpdatedAt:          fromMicros(r.UpdatedAt),
	}
	if r.TrialEnd != nil {
		s.TrialEnd = optionalMicros(*r.TrialEnd)
	}
	if r.Items != "" && r.Items != "[]" {
		if err := json.Unmarshal([]byte(r.Items), &s.Items); err != nil {
			return billing.Subscription{}, fmt.Errorf("store: decode subscription items: %w", err)
		}
	}
	return s, nil
}

// optionalMicros reverses micros for a time that may be absent (0).
func optionalMicros(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := fromMicros(v)
	return &t
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

var subscriptionTable = statusTable(billing.KindSubscription, "subscriptions")

// subscriptionUpsert writes s. An email, owner or plan name set earlier is
// kept when s has none (a plan name only for the same price).
func (db *DB) subscriptionUpsert(s billing.Subscription) upsert {
	items := s.Items
	if items == nil {
		items = []billing.SubscriptionItem{}
	}
	itemsJSON, err := json.Marshal(items)
	if err != nil {
		return upsert{err: err}
	}
	var trialEnd *int64
	if s.TrialEnd != nil && !s.TrialEnd.IsZero() {
		v := micros(*s.TrialEnd)
		trialEnd = &v
	}
	optional := func(t *time.Time) int64 {
		if t == nil {
			return 0
		}
		return micros(*t)
	}
	return upsert{
		insert: `INSERT INTO subscriptions AS t (project_id, environment, id, customer_id, email, email_lower,
				user_id, price_id, product_id, plan_name, status, current_period_start, current_period_end,
				cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_end, items, created, event_at, updated_at,
				last_change, previous_status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'created', '')`,
		content: [][2]string{
			{"customer_id", "COALESCE(NULLIF(excluded.customer_id, ''), t.customer_id)"},
			{"email", "CASE WHEN excluded.email_lower <> '' THEN excluded.email ELSE t.email END"},
			{"email_lower", "CASE WHEN excluded.email_lower <> '' THEN excluded.email_lower ELSE t.email_lower END"},
			{"user_id", "COALESCE(NULLIF(excluded.user_id, ''), t.user_id)"},
			{"price_id", "excluded.price_id"},
			{"product_id", "excluded.product_id"},
			{"plan_name", "CASE WHEN excluded.plan_name <> '' OR excluded.price_id <> t.price_id THEN excluded.plan_name ELSE t.plan_name END"},
			{"status", "excluded.status"},
			{"current_period_start", "excluded.current_period_start"},
			{"current_period_end", "excluded.current_period_end"},
			{"cancel_at_period_end", "excluded.cancel_at_period_end"},
			{"cancel_at", "excluded.cancel_at"},
			{"canceled_at", "excluded.canceled_at"},
			{"ended_at", "excluded.ended_at"},
			{"trial_end", "excluded.trial_end"},
			{"items", "excluded.items"},
			{"created", "excluded.created"}},
		other:  `event_at = excluded.event_at, updated_at = excluded.updated_at`,
		change: updatedIf,
		args: []any{s.ProjectID, string(s.Environment), s.ID, s.CustomerID, s.Email, billing.NormalizeEmail(s.Email),
			s.UserID, s.PriceID, s.ProductID, s.PlanName, s.Status, micros(s.CurrentPeriodStart), micros(s.CurrentPeriodEnd),
			s.CancelAtPeriodEnd, optional(s.CancelAt), optional(s.CanceledAt), optional(s.EndedAt), trialEnd,
			string(itemsJSON), micros(s.Created), eventMicros(s.EventAt), db.nowMicros()},
	}
}

// FindActiveSubscription returns the current subscription of a customer of
// a project and environment: among those active, trialing or past due, the
// one whose period ends last (then the greatest id). The customer is who
// names: by email (compared case-insensitively; known from the
// subscription or from its customer, unless the customer is deleted), by
// owner (the subscription's or its customer's user id, likewise) or by
// customer id. PlanName is the product's name, or
// else the price's nickname. It returns ENOTFOUND when there is none, and
// EINVALID when who names no customer or several ways.
func (db *DB) FindActiveSubscription(ctx context.Context, projectID string, env billing.Environment, who billing.Who) (*billing.Subscription, error) {
	who = who.Normalized()
	if !who.Valid() {
		return nil, billing.Errorf(billing.EINVALID, "Name the customer by exactly one of email, user id and customer id.")
	}
	// Two index lookups, by the subscription's own field and by its
	// customer's; a subscription found by both appears twice, which LIMIT 1
	// absorbs.
	var column, value string
	switch {
	case who.Email != "":
		column, value = "email_lower", who.Email
	case who.UserID != "":
		column, value = "user_id", who.UserID
	default:
		column, value = "customer_id", who.CustomerID
	}
	var candidates string
	var args []any
	if column == "customer_id" {
		candidates = `(SELECT * FROM subscriptions
			WHERE project_id = ? AND environment = ? AND customer_id = ? AND status IN ?)`
		args = []any{projectID, string(env), value, activeStatuses}
	} else {
		candidates = `(
			SELECT * FROM subscriptions
			WHERE project_id = ? AND environment = ? AND ` + column + ` = ? AND status IN ?
			UNION ALL
			SELECT * FROM subscriptions
			WHERE project_id = ? AND environment = ? AND status IN ? AND customer_id IN (
				SELECT id FROM customers WHERE project_id = ? AND environment = ? AND ` + column + ` = ? AND deleted = FALSE)
		)`
		args = []any{projectID, string(env), value, activeStatuses,
			projectID, string(env), activeStatuses, projectID, string(env), value}
	}
	var row subscriptionRow
	err := scanOne(db.reader(ctx).Raw(subscriptionSelect(candidates)+`
		ORDER BY s.current_period_end DESC, s.id DESC
		LIMIT 1`, args...), &row, "Subscription")
	if err != nil {
		return nil, err
	}
	s, err := row.subscription()
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// FindActiveSubscriptionByEmail is FindActiveSubscription by email; an empty
// email is ENOTFOUND.
func (db *DB) FindActiveSubscriptionByEmail(ctx context.Context, projectID string, env billing.Environment, email string) (*billing.Subscription, error) {
	if billing.NormalizeEmail(email) == "" {
		return nil, notFound("Subscription")
	}
	return db.FindActiveSubscription(ctx, projectID, env, billing.Who{Email: email})
}

// FindSubscription returns a subscription of a project and environment, or
// ENOTFOUND.
func (db *DB) FindSubscription(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Subscription, error) {
	return findSubscription(db.reader(ctx), projectID, env, id)
}

func findSubscription(q *gorm.DB, projectID string, env billing.Environment, id string) (*billing.Subscription, error) {
	var row subscriptionRow
	err := scanOne(q.Raw(subscriptionSelect(`subscriptions`)+`
		WHERE s.project_id = ? AND s.environment = ? AND s.id = ?`,
		projectID, string(env), id), &row, "Subscription")
	if err != nil {
		return nil, err
	}
	s, err := row.subscription()
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// ListSubscriptionsForCustomer returns all subscriptions of a customer,
// whatever their status, the latest period end first.
func (db *DB) ListSubscriptionsForCustomer(ctx context.Context, projectID string, env billing.Environment, customerID string) ([]billing.Subscription, error) {
	var rows []subscriptionRow
	err := db.reader(ctx).Raw(subscriptionSelect(`subscriptions`)+`
		WHERE s.project_id = ? AND s.environment = ? AND s.customer_id = ?
		ORDER BY s.current_period_end DESC, s.id DESC`,
		projectID, string(env), customerID).Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "Subscription")
	}
	out := make([]billing.Subscription, len(rows))
	for i, r := range rows {
		if out[i], err = r.subscription(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxIndexedSubscriptions bounds ActiveSubscriptionIndex: a project with
// more active subscriptions is answered one customer at a time.
const maxIndexedSubscriptions = 200_000

// ActiveSubscriptionIndex returns, for every customer of a project and
// environment that FindActiveSubscription would answer, the same
// subscription it would return, keyed by each normalized Who that finds it
// (its emails, its owners and its customer id), in two queries. It returns
// ECONFLICT when the project has more active subscriptions than are worth
// holding in memory.
func (db *DB) ActiveSubscriptionIndex(ctx context.Context, projectID string, env billing.Environment) (map[billing.Who]*billing.Subscription, error) {
	var rows []subscriptionRow
	err := db.reader(ctx).Raw(subscriptionSelect(`subscriptions`)+`
		WHERE s.project_id = ? AND s.environment = ? AND s.status IN ?
		LIMIT ?`,
		projectID, string(env), activeStatuses, maxIndexedSubscriptions+1).Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "Subscription")
	}
	if len(rows) > maxIndexedSubscriptions {
		return nil, billing.Errorf(billing.ECONFLICT, "Too many active subscriptions to index.")
	}
	var customers []struct {
		ID         string
		EmailLower string
		UserID     string
	}
	err = db.reader(ctx).Raw(`SELECT id, email_lower, user_id FROM customers
		WHERE project_id = ? AND environment = ? AND deleted = FALSE AND id IN (
			SELECT customer_id FROM subscriptions WHERE project_id = ? AND environment = ? AND status IN ?)`,
		projectID, string(env), projectID, string(env), activeStatuses).Scan(&customers).Error
	if err != nil {
		return nil, translate(err, "Customer")
	}
	type owner struct{ email, userID string }
	byCustomer := make(map[string]owner, len(customers))
	for _, c := range customers {
		byCustomer[c.ID] = owner{c.EmailLower, c.UserID}
	}
	out := make(map[billing.Who]*billing.Subscription, 2*len(rows))
	for _, r := range rows {
		s, err := r.subscription()
		if err != nil {
			return nil, err
		}
		c := byCustomer[s.CustomerID]
		for _, who := range [...]billing.Who{{Email: billing.NormalizeEmail(s.Email)}, {Email: c.email},
			{UserID: s.UserID}, {UserID: c.userID}, {CustomerID: s.CustomerID}} {
			if !who.Valid() {
				continue
			}
			if cur, ok := out[who]; !ok || laterSubscription(&s, cur) {
				out[who] = &s
			}
		}
	}
	return out, nil
}

// laterSubscription orders as FindActiveSubscription does: the latest
// period end, then the greatest id.
func laterSubscription(a, b *billing.Subscription) bool {
	if !a.CurrentPeriodEnd.Equal(b.CurrentPeriodEnd) {
		return a.CurrentPeriodEnd.After(b.CurrentPeriodEnd)
	}
	return a.ID > b.ID
}
