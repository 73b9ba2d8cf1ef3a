package store

import (
	"context"
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

type customerRow struct {
	ProjectID   string
	Environment string
	ID          string
	Email       string
	Name        string
	Description string
	Phone       string
	Metadata    string
	UserID      string
	Deleted     bool
	Created     int64
	EventAt     int64
	CreatedAt   int64
	UpdatedAt   int64
}

const customerColumns = `project_id, environment, id, email, name, description, phone, metadata,
	user_id, deleted, created, event_at, created_at, updated_at`

func (r customerRow) customer() (billing.Customer, error) {
	c := billing.Customer{
		ID:          r.ID,
		ProjectID:   r.ProjectID,
		Environment: billing.Environment(r.Environment),
		Email:       r.Email,
		Name:        r.Name,
		Description: r.Description,
		Phone:       r.Phone,
		UserID:      r.UserID,
		Deleted:     r.Deleted,
		Created:     fromMicros(r.Created),
		EventAt:     fromMicros(r.EventAt),
		CreatedAt:   fromMicros(r.CreatedAt),
		UpdatedAt:   fromMicros(r.UpdatedAt),
	}
	var err error
	c.Metadata, err = decodeMetadata(r.Metadata)
	return c, err
}

// encodeMetadata returns metadata as JSON text; no entries is "{}".
func encodeMetadata(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// decodeMetadata reverses encodeMetadata; no entries is a nil map.
func decodeMetadata(s string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("store: decode metadata: %w", err)
	}
	return m, nil
}

// validScope checks the project and environment every mirror call names.
func validScope(projectID string, env billing.Environment) error {
	if projectID == "" {
		return billing.FieldErrorf("project_id", "A project ID is required.")
	} else if !env.Valid() {
		return billing.FieldErrorf("environment", "The environment must be test or live.")
	}
	return nil
}

// UpsertCustomer records a customer as the service created or updated it,
// overwriting what is stored. A UserID set earlier is kept when c has none,
// and the stored EventAt never moves back. It returns ENOTFOUND when the
// project does not exist.
func (db *DB) UpsertCustomer(ctx context.Context, c billing.Customer) error {
	if err := validScope(c.ProjectID, c.Environment); err != nil {
		return err
	} else if c.ID == "" {
		return billing.FieldErrorf("id", "A customer needs an ID.")
	}
	return db.transact(ctx, func(tx *gorm.DB) error {
		_, err := db.upsertCustomer(tx, c, writeAlways)
		return translate(err, "Customer")
	})
}

// FindCustomer returns a customer of a project and environment, or
// ENOTFOUND when it is unknown or deleted.
func (db *DB) FindCustomer(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Customer, error) {
	var row customerRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+customerColumns+` FROM customers
		WHERE project_id = ? AND environment = ? AND id = ? AND deleted = FALSE AND stub = FALSE`,
		projectID, string(env), id), &row, "Customer")
	if err != nil {
		return nil, err
	}
	c, err := row.customer()
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// ListCustomers returns the customers of one project and environment that
// match f, newest first (by Stripe's created time, then id), without
// deleted ones, and whether more follow. Limit is 1-100 (default 10). An
// unknown StartingAfter is EINVALID naming "starting_after".
func (db *DB) ListCustomers(ctx context.Context, f billing.CustomerFilter) ([]billing.Customer, bool, error) {
	if err := validScope(f.ProjectID, f.Environment); err != nil {
		return nil, false, err
	}
	limit := clampLimit(f.Limit, 10, 100)
	q := `SELECT ` + customerColumns + ` FROM customers
		WHERE project_id = ? AND environment = ? AND deleted = FALSE AND stub = FALSE`
	args := []any{f.ProjectID, string(f.Environment)}
	if f.Email != "" {
		q += ` AND email_lower = ?`
		args = append(args, billing.NormalizeEmail(f.Email))
	}
	if f.StartingAfter != "" {
		var created []int64
		err := db.reader(ctx).Raw(`SELECT created FROM customers
			WHERE project_id = ? AND environment = ? AND id = ? AND stub = FALSE`,
			f.ProjectID, string(f.Environment), f.StartingAfter).Scan(&created).Error
		if err != nil {
			return nil, false, translate(err, "Customer")
		} else if len(created) == 0 {
			return nil, false, billing.FieldErrorf("starting_after", "No such customer: %s.", f.StartingAfter)
		}
		q += ` AND (created, id) < (?, ?)`
		args = append(args, created[0], f.StartingAfter)
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit+1)

	var rows []customerRow
	if err := db.reader(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, false, translate(err, "Customer")
	}
	hasMore := len(rows) > limit
	if hasMore {
		rows = rows[:limit]
	}
	out := make([]billing.Customer, len(rows))
	for i, r := range rows {
		c, err := r.customer()
		if err != nil {
			return nil, false, err
		}
		out[i] = c
	}
	return out, hasMore, nil
}

// DeleteCustomer marks a customer deleted. Deleting a deleted customer
// again is not an error; an unknown one is ENOTFOUND.
func (db *DB) DeleteCustomer(ctx context.Context, projectID string, env billing.Environment, id string) error {
	return db.transact(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE customers SET deleted = TRUE, updated_at = ?
			WHERE project_id = ? AND environment = ? AND id = ? AND stub = FALSE`,
			db.nowMicros(), projectID, string(env), id)
		if res.Error != nil {
			return translate(res.Error, "Customer")
		} else if res.RowsAffected == 0 {
			return notFound("Customer")
		}
		return nil
	})
}

// writeMode says when an upsert replaces a stored mirror row.
type writeMode int

const (
	// writeAlways replaces the row whatever its event time.
	writeAlways writeMode = iota
	// writeNewer replaces a row only with a strictly newer event: a
	// webhook event.
	writeNewer
	// writeNotOlder replaces a row with a newer or equally new one: a
	// fresh read from Stripe, which wins ties.
	writeNotOlder
)

// condition returns the WHERE clause of an upsert into table.
func (m writeMode) condition(table string) string {
	switch m {
	case writeNewer:
		return ` WHERE ` + table + `.event_at < excluded.event_at`
	case writeNotOlder:
		return ` WHERE ` + table + `.event_at <= excluded.event_at`
	}
	return ``
}

// upsertCustomer writes c under mode. A deleted customer only marks the
// stored row deleted (or inserts a deleted row, so that older events cannot
// bring it back).
func (db *DB) upsertCustomer(tx *gorm.DB, c billing.Customer, mode writeMode) (int64, error) {
	metadata, err := encodeMetadata(c.Metadata)
	if err != nil {
		return 0, err
	}
	now := db.nowMicros()
	created := micros(c.Created)
	if created == 0 {
		created = now
	}
	set := `event_at = excluded.event_at, updated_at = excluded.updated_at, `
	if mode == writeAlways {
		set = `event_at = CASE WHEN excluded.event_at > customers.event_at
				THEN excluded.event_at ELSE customers.event_at END,
			updated_at = excluded.updated_at, `
	}
	if c.Deleted {
		set += `deleted = TRUE`
	} else {
		set += `email = excluded.email, email_lower = excluded.email_lower, name = excluded.name,
			description = excluded.description, phone = excluded.phone, metadata = excluded.metadata,
			user_id = COALESCE(NULLIF(excluded.user_id, ''), customers.user_id),
			deleted = FALSE, stub = FALSE, created = excluded.created`
	}
	return rowsAffected(tx.Exec(`INSERT INTO customers (project_id, environment, id, email, email_lower, name,
			description, phone, metadata, user_id, deleted, stub, created, event_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?, ?, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET `+set+mode.condition("customers"),
		c.ProjectID, string(c.Environment), c.ID, c.Email, billing.NormalizeEmail(c.Email), c.Name,
		c.Description, c.Phone, metadata, c.UserID, c.Deleted, created, eventMicros(c.EventAt), now, now))
}

// claimCustomer gives a customer to a buyer when it has none yet. When the
// customer is not mirrored yet, it stores a stub (invisible to finds and
// lists, older than any event) that carries the owner until the customer
// itself is written.
func (db *DB) claimCustomer(tx *gorm.DB, projectID string, env billing.Environment, customerID, userID string) error {
	if customerID == "" || userID == "" {
		return nil
	}
	now := db.nowMicros()
	return tx.Exec(`INSERT INTO customers (project_id, environment, id, email, email_lower, name,
			description, phone, metadata, user_id, deleted, stub, created, event_at, created_at, updated_at)
		VALUES (?, ?, ?, '', '', '', '', '', '{}', ?, FALSE, TRUE, 0, 0, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET
			user_id = excluded.user_id, updated_at = excluded.updated_at
		WHERE customers.user_id = ''`,
		projectID, string(env), customerID, userID, now, now).Error
}

// mergeSessionCustomer records what a checkout session says of its customer:
// the email and the owner fill the stored customer's empty ones, nothing else
// changes. An unknown customer is stored, visible, with the event time 0, so
// that the customer's own events replace it whatever their order.
func (db *DB) mergeSessionCustomer(tx *gorm.DB, c billing.Customer) (int64, error) {
	now := db.nowMicros()
	return rowsAffected(tx.Exec(`INSERT INTO customers (project_id, environment, id, email, email_lower, name,
			description, phone, metadata, user_id, deleted, stub, created, event_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, '', '', '', '{}', ?, FALSE, FALSE, ?, 0, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET
			email = CASE WHEN customers.email_lower = '' THEN excluded.email ELSE customers.email END,
			email_lower = CASE WHEN customers.email_lower = '' THEN excluded.email_lower ELSE customers.email_lower END,
			user_id = COALESCE(NULLIF(customers.user_id, ''), excluded.user_id),
			stub = FALSE, updated_at = excluded.updated_at`,
		c.ProjectID, string(c.Environment), c.ID, c.Email, billing.NormalizeEmail(c.Email), c.UserID, now, now, now))
}
