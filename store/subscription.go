package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stackfordevs/billing"
)

// activeStatuses are the subscription statuses FindActiveSubscriptionByEmail
// considers current.
var activeStatuses = []string{"active", "trialing", "past_due"}

type subscriptionRow struct {
	ProjectID         string
	Environment       string
	ID                string
	CustomerID        string
	Email             string
	UserID            string
	PriceID           string
	ProductID         string
	PlanName          string
	Status            string
	CurrentPeriodEnd  int64
	CancelAtPeriodEnd bool
	TrialEnd          *int64
	Items             string
	Created           int64
	EventAt           int64
	UpdatedAt         int64
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
		s.price_id, s.product_id, s.plan_name, s.status, s.current_period_end, s.cancel_at_period_end,
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
		ID:                r.ID,
		ProjectID:         r.ProjectID,
		Environment:       billing.Environment(r.Environment),
		CustomerID:        r.CustomerID,
		Email:             r.Email,
		UserID:            r.UserID,
		PriceID:           r.PriceID,
		ProductID:         r.ProductID,
		PlanName:          firstNonEmpty(r.ProductName, r.PriceProductName, r.PlanName, r.PriceNickname),
		Status:            r.Status,
		CurrentPeriodEnd:  fromMicros(r.CurrentPeriodEnd),
		CancelAtPeriodEnd: r.CancelAtPeriodEnd,
		Created:           fromMicros(r.Created),
		EventAt:           fromMicros(r.EventAt),
		UpdatedAt:         fromMicros(r.UpdatedAt),
	}
	if r.TrialEnd != nil {
		t := fromMicros(*r.TrialEnd)
		s.TrialEnd = &t
	}
	if r.Items != "" && r.Items != "[]" {
		if err := json.Unmarshal([]byte(r.Items), &s.Items); err != nil {
			return billing.Subscription{}, fmt.Errorf("store: decode subscription items: %w", err)
		}
	}
	return s, nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// FindActiveSubscriptionByEmail returns the current subscription of the
// customer with an email (compared case-insensitively) in a project and
// environment: among those active, trialing or past due, the one whose
// period ends last. The email may be known from the subscription or from
// its customer. PlanName is the product's name, or else the price's
// nickname. It returns ENOTFOUND when there is none.
func (db *DB) FindActiveSubscriptionByEmail(ctx context.Context, projectID string, env billing.Environment, email string) (*billing.Subscription, error) {
	email = billing.NormalizeEmail(email)
	if email == "" {
		return nil, notFound("Subscription")
	}
	// Two index lookups, by the subscription's email and by its customer's;
	// a subscription found by both appears twice, which LIMIT 1 absorbs.
	candidates := `(
		SELECT * FROM subscriptions
		WHERE project_id = ? AND environment = ? AND email_lower = ? AND status IN ?
		UNION ALL
		SELECT * FROM subscriptions
		WHERE project_id = ? AND environment = ? AND status IN ? AND customer_id IN (
			SELECT id FROM customers WHERE project_id = ? AND environment = ? AND email_lower = ?)
	)`
	var row subscriptionRow
	err := scanOne(db.reader(ctx).Raw(subscriptionSelect(candidates)+`
		ORDER BY s.current_period_end DESC, s.id DESC
		LIMIT 1`,
		projectID, string(env), email, activeStatuses,
		projectID, string(env), activeStatuses, projectID, string(env), email), &row, "Subscription")
	if err != nil {
		return nil, err
	}
	s, err := row.subscription()
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// FindSubscription returns a subscription of a project and environment, or
// ENOTFOUND.
func (db *DB) FindSubscription(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Subscription, error) {
	var row subscriptionRow
	err := scanOne(db.reader(ctx).Raw(subscriptionSelect(`subscriptions`)+`
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

// maxIndexedSubscriptions bounds ActiveSubscriptionsByEmail: a project with
// more active subscriptions is answered one email at a time.
const maxIndexedSubscriptions = 200_000

// ActiveSubscriptionsByEmail returns, for every email of a project and
// environment that FindActiveSubscriptionByEmail would answer, the same
// subscription it would return, in two queries. It returns ECONFLICT when
// the project has more active subscriptions than are worth holding in
// memory.
func (db *DB) ActiveSubscriptionsByEmail(ctx context.Context, projectID string, env billing.Environment) (map[string]billing.Subscription, error) {
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
	var emails []struct {
		ID         string
		EmailLower string
	}
	err = db.reader(ctx).Raw(`SELECT id, email_lower FROM customers
		WHERE project_id = ? AND environment = ? AND email_lower <> '' AND id IN (
			SELECT customer_id FROM subscriptions WHERE project_id = ? AND environment = ? AND status IN ?)`,
		projectID, string(env), projectID, string(env), activeStatuses).Scan(&emails).Error
	if err != nil {
		return nil, translate(err, "Customer")
	}
	customerEmail := make(map[string]string, len(emails))
	for _, e := range emails {
		customerEmail[e.ID] = e.EmailLower
	}
	out := make(map[string]billing.Subscription, len(rows))
	for _, r := range rows {
		s, err := r.subscription()
		if err != nil {
			return nil, err
		}
		for _, email := range []string{billing.NormalizeEmail(s.Email), customerEmail[s.CustomerID]} {
			if email == "" {
				continue
			}
			if cur, ok := out[email]; !ok || laterSubscription(s, cur) {
				out[email] = s
			}
		}
	}
	return out, nil
}

// laterSubscription orders as FindActiveSubscriptionByEmail does: the latest
// period end, then the greatest id.
func laterSubscription(a, b billing.Subscription) bool {
	if !a.CurrentPeriodEnd.Equal(b.CurrentPeriodEnd) {
		return a.CurrentPeriodEnd.After(b.CurrentPeriodEnd)
	}
	return a.ID > b.ID
}
