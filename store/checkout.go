package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

type checkoutSessionRow struct {
	ProjectID       string
	Environment     string
	ID              string
	UserID          string
	Mode            string
	Status          string
	PaymentStatus   string
	CustomerID      string
	CustomerEmail   string
	SubscriptionID  string
	PaymentIntentID string
	AmountTotal     int64
	Currency        string
	URL             string `gorm:"column:url"`
	Created         int64
	EventAt         int64
	CreatedAt       int64
	UpdatedAt       int64
}

const checkoutSessionColumns = `project_id, environment, id, user_id, mode, status, payment_status,
	customer_id, customer_email, subscription_id, payment_intent_id, amount_total, currency, url,
	created, event_at, created_at, updated_at`

func (r checkoutSessionRow) session() *billing.CheckoutSession {
	return &billing.CheckoutSession{
		ID:              r.ID,
		ProjectID:       r.ProjectID,
		Environment:     billing.Environment(r.Environment),
		UserID:          r.UserID,
		Mode:            r.Mode,
		Status:          r.Status,
		PaymentStatus:   r.PaymentStatus,
		CustomerID:      r.CustomerID,
		CustomerEmail:   r.CustomerEmail,
		SubscriptionID:  r.SubscriptionID,
		PaymentIntentID: r.PaymentIntentID,
		AmountTotal:     r.AmountTotal,
		Currency:        r.Currency,
		URL:             r.URL,
		Created:         fromMicros(r.Created),
		EventAt:         fromMicros(r.EventAt),
		CreatedAt:       fromMicros(r.CreatedAt),
		UpdatedAt:       fromMicros(r.UpdatedAt),
	}
}

// CreateCheckoutSession records a session the service created. Recording
// the same session again (a retried request) is not an error: it only
// fills what the stored row lacks. It returns ENOTFOUND when the project
// does not exist.
func (db *DB) CreateCheckoutSession(ctx context.Context, s billing.CheckoutSession) error {
	if err := validScope(s.ProjectID, s.Environment); err != nil {
		return err
	} else if s.ID == "" {
		return billing.FieldErrorf("id", "A checkout session needs an ID.")
	}
	return db.transact(ctx, func(tx *gorm.DB) error {
		return db.createCheckoutSession(tx, s)
	})
}

// createCheckoutSession records in tx a session the service created: it
// only fills what a stored row lacks.
func (db *DB) createCheckoutSession(tx *gorm.DB, s billing.CheckoutSession) error {
	up := db.checkoutSessionUpsert(s)
	up.content = [][2]string{
		{"user_id", "COALESCE(NULLIF(t.user_id, ''), excluded.user_id)"},
		{"mode", "COALESCE(NULLIF(t.mode, ''), excluded.mode)"},
		{"status", "COALESCE(NULLIF(t.status, ''), excluded.status)"},
		{"payment_status", "COALESCE(NULLIF(t.payment_status, ''), excluded.payment_status)"},
		{"customer_id", "COALESCE(NULLIF(t.customer_id, ''), excluded.customer_id)"},
		{"customer_email", "COALESCE(NULLIF(t.customer_email, ''), excluded.customer_email)"},
		{"subscription_id", "COALESCE(NULLIF(t.subscription_id, ''), excluded.subscription_id)"},
		{"payment_intent_id", "COALESCE(NULLIF(t.payment_intent_id, ''), excluded.payment_intent_id)"},
		{"amount_total", "CASE WHEN t.amount_total = 0 THEN excluded.amount_total ELSE t.amount_total END"},
		{"currency", "COALESCE(NULLIF(t.currency, ''), excluded.currency)"},
		{"url", "COALESCE(NULLIF(t.url, ''), excluded.url)"},
		{"created", "CASE WHEN t.created = 0 THEN excluded.created ELSE t.created END"}}
	err := tx.Exec(up.statement(writeAlways, `t.previous_status`), up.args...).Error
	return translate(err, "Checkout session")
}

var checkoutSessionTable = statusTable(billing.KindCheckoutSession, "checkout_sessions")

// checkoutSessionUpsert writes s as read from Stripe (or sent in an event):
// the status fields are replaced, the others filled when known.
func (db *DB) checkoutSessionUpsert(s billing.CheckoutSession) upsert {
	now := db.nowMicros()
	return upsert{
		insert: `INSERT INTO checkout_sessions AS t (` + checkoutSessionColumns + `, last_change, previous_status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'created', '')`,
		content: [][2]string{
			{"status", "excluded.status"}, {"payment_status", "excluded.payment_status"},
			{"user_id", "COALESCE(NULLIF(excluded.user_id, ''), t.user_id)"},
			{"mode", "COALESCE(NULLIF(excluded.mode, ''), t.mode)"},
			{"customer_id", "COALESCE(NULLIF(excluded.customer_id, ''), t.customer_id)"},
			{"customer_email", "COALESCE(NULLIF(excluded.customer_email, ''), t.customer_email)"},
			{"subscription_id", "COALESCE(NULLIF(excluded.subscription_id, ''), t.subscription_id)"},
			{"payment_intent_id", "COALESCE(NULLIF(excluded.payment_intent_id, ''), t.payment_intent_id)"},
			{"amount_total", "CASE WHEN excluded.amount_total <> 0 THEN excluded.amount_total ELSE t.amount_total END"},
			{"currency", "COALESCE(NULLIF(excluded.currency, ''), t.currency)"},
			{"url", "COALESCE(NULLIF(excluded.url, ''), t.url)"},
			{"created", "CASE WHEN t.created = 0 THEN excluded.created ELSE t.created END"}},
		other:  `event_at = excluded.event_at, updated_at = excluded.updated_at`,
		change: updatedIf,
		args: []any{s.ProjectID, string(s.Environment), s.ID, s.UserID, s.Mode, s.Status, s.PaymentStatus,
			s.CustomerID, s.CustomerEmail, s.SubscriptionID, s.PaymentIntentID, s.AmountTotal, s.Currency, s.URL,
			micros(s.Created), eventMicros(s.EventAt), now, now},
	}
}

// FindCheckoutSession returns a session of a project and environment, or
// ENOTFOUND.
func (db *DB) FindCheckoutSession(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.CheckoutSession, error) {
	var row checkoutSessionRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+checkoutSessionColumns+` FROM checkout_sessions
		WHERE project_id = ? AND environment = ? AND id = ?`, projectID, string(env), id), &row, "Checkout session")
	if err != nil {
		return nil, err
	}
	return row.session(), nil
}

// claimSessionCustomer gives the customer of a session to the session's
// buyer when the customer has no owner yet, taking what s lacks from the
// stored session.
func (db *DB) claimSessionCustomer(tx *gorm.DB, s billing.CheckoutSession, res *Applied) error {
	var row checkoutSessionRow
	err := tx.Raw(`SELECT user_id, customer_id FROM checkout_sessions
		WHERE project_id = ? AND environment = ? AND id = ?`,
		s.ProjectID, string(s.Environment), s.ID).Scan(&row).Error
	if err != nil {
		return err
	}
	userID, customerID := s.UserID, s.CustomerID
	if userID == "" {
		userID = row.UserID
	}
	if customerID == "" {
		customerID = row.CustomerID
	}
	if customerID == "" || userID == "" {
		return nil
	}
	return db.writeRow(tx, res, writeMerge, objectKey{projectID: s.ProjectID, env: s.Environment, id: customerID},
		customerTable, db.claimUpsert(s.ProjectID, s.Environment, customerID, userID))
}

type paymentIntentRow struct {
	ProjectID    string
	Environment  string
	ID           string
	UserID       string
	CustomerID   string
	Amount       int64
	Currency     string
	Description  string
	ReceiptEmail string
	Status       string
	CreatedAt    int64
}

const paymentIntentColumns = `project_id, environment, id, user_id, customer_id, amount, currency,
	description, receipt_email, status, created_at`

// CreatePaymentIntent records a payment intent the service created,
// without its client secret. Recording it again (a retried request) only
// updates its status. It returns ENOTFOUND when the project does not exist.
func (db *DB) CreatePaymentIntent(ctx context.Context, pi billing.PaymentIntent) error {
	if err := validScope(pi.ProjectID, pi.Environment); err != nil {
		return err
	} else if pi.ID == "" {
		return billing.FieldErrorf("id", "A payment intent needs an ID.")
	}
	return db.transact(ctx, func(tx *gorm.DB) error {
		return db.createPaymentIntent(tx, pi)
	})
}

// createPaymentIntent records a payment intent the service created in tx.
func (db *DB) createPaymentIntent(tx *gorm.DB, pi billing.PaymentIntent) error {
	createdAt := micros(pi.CreatedAt)
	if createdAt == 0 {
		createdAt = db.nowMicros()
	}
	err := tx.Exec(`INSERT INTO payment_intents (`+paymentIntentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET status = excluded.status`,
		pi.ProjectID, string(pi.Environment), pi.ID, pi.UserID, pi.CustomerID, pi.Amount, pi.Currency,
		pi.Description, pi.ReceiptEmail, pi.Status, createdAt).Error
	return translate(err, "Payment intent")
}

// FindPaymentIntent returns a payment intent of a project and environment
// (its ClientSecret empty), or ENOTFOUND.
func (db *DB) FindPaymentIntent(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.PaymentIntent, error) {
	var row paymentIntentRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+paymentIntentColumns+` FROM payment_intents
		WHERE project_id = ? AND environment = ? AND id = ?`, projectID, string(env), id), &row, "Payment intent")
	if err != nil {
		return nil, err
	}
	return &billing.PaymentIntent{
		ID:           row.ID,
		ProjectID:    row.ProjectID,
		Environment:  billing.Environment(row.Environment),
		UserID:       row.UserID,
		CustomerID:   row.CustomerID,
		Amount:       row.Amount,
		Currency:     row.Currency,
		Description:  row.Description,
		ReceiptEmail: row.ReceiptEmail,
		Status:       row.Status,
		CreatedAt:    fromMicros(row.CreatedAt),
	}, nil
}
