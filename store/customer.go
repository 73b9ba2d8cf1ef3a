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
// overwriting what is stored: Apply of a FromService write. A UserID set
// earlier is kept when c has none, and the stored EventAt never moves back.
// It returns ENOTFOUND when the project does not exist.
func (db *DB) UpsertCustomer(ctx context.Context, c billing.Customer) error {
	if c.ID == "" {
		return billing.FieldErrorf("id", "A customer needs an ID.")
	}
	_, err := db.Apply(ctx, Write{ProjectID: c.ProjectID, Environment: c.Environment, Origin: FromService,
		Change: billing.MirrorChange{Customers: []billing.Customer{c}}})
	return err
}

// FindCustomer returns a customer of a project and environment, or
// ENOTFOUND when it is unknown or deleted.
func (db *DB) FindCustomer(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Customer, error) {
	return findCustomer(db.reader(ctx), projectID, env, id)
}

func findCustomer(q *gorm.DB, projectID string, env billing.Environment, id string) (*billing.Customer, error) {
	var row customerRow
	err := scanOne(q.Raw(`SELECT `+customerColumns+` FROM customers
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
	// writeMerge fills a row with what a related object says of it (a
	// checkout session of its customer); its statement decides alone
	// what it changes.
	writeMerge
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

var customerTable = mirrorTable{kind: billing.KindCustomer, name: "customers", previous: `''`,
	report: `last_change, previous_status, '' AS status, id AS customer_id`}

// customerInsert is the INSERT of every customer statement; its VALUES
// are the table's columns in order.
const customerInsert = `INSERT INTO customers AS t (project_id, environment, id, email, email_lower, name,
		description, phone, metadata, user_id, deleted, stub, created, event_at, created_at, updated_at,
		last_change, previous_status)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')`

// createdUnlessStub is the change of an update that makes a customer
// visible: created when the stored row was a stub (see claimUpsert).
func createdUnlessStub(differs string) string {
	return `CASE WHEN t.stub THEN ` + lastCreated + ` WHEN ` + differs + ` THEN ` + lastUpdated + ` ELSE ` + lastUnchanged + ` END`
}

// customerUpsert writes c under mode. A deleted customer only marks the
// stored row deleted (or inserts a deleted row, so that older events cannot
// bring it back).
func (db *DB) customerUpsert(c billing.Customer, mode writeMode) upsert {
	metadata, err := encodeMetadata(c.Metadata)
	if err != nil {
		return upsert{err: err}
	}
	now := db.nowMicros()
	created, setCreated := micros(c.Created), `excluded.created`
	if created == 0 {
		// Unknown: a new row is created now, a stored one keeps its time.
		created, setCreated = now, `t.created`
	}
	other := `event_at = excluded.event_at, updated_at = excluded.updated_at`
	if mode == writeAlways {
		other = `event_at = CASE WHEN excluded.event_at > t.event_at THEN excluded.event_at ELSE t.event_at END,
			updated_at = excluded.updated_at`
	}
	up := upsert{insert: customerInsert, other: other, args: []any{
		c.ProjectID, string(c.Environment), c.ID, c.Email, billing.NormalizeEmail(c.Email), c.Name,
		c.Description, c.Phone, metadata, c.UserID, c.Deleted, false, created, eventMicros(c.EventAt), now, now,
		firstKnown(c.Deleted)}}
	if c.Deleted {
		up.content = [][2]string{{"deleted", "TRUE"}}
		up.change = func(string) string {
			return `CASE WHEN t.stub OR t.deleted THEN ` + lastUnchanged + ` ELSE ` + lastDeleted + ` END`
		}
		return up
	}
	up.content = [][2]string{{"email", "excluded.email"}, {"email_lower", "excluded.email_lower"}, {"name", "excluded.name"},
		{"description", "excluded.description"}, {"phone", "excluded.phone"}, {"metadata", "excluded.metadata"},
		{"user_id", "COALESCE(NULLIF(excluded.user_id, ''), t.user_id)"}, {"deleted", "FALSE"}, {"stub", "FALSE"},
		{"created", "CASE WHEN t.stub THEN excluded.created ELSE " + setCreated + " END"}}
	up.change = createdUnlessStub
	return up
}

// claimUpsert gives a customer to a buyer when it has none yet. When the
// customer is not mirrored yet, it stores a stub (invisible to finds and
// lists, older than any event) that carries the owner until the customer
// itself is written.
func (db *DB) claimUpsert(projectID string, env billing.Environment, customerID, userID string) upsert {
	now := db.nowMicros()
	return upsert{insert: customerInsert,
		content: [][2]string{{"user_id", "excluded.user_id"}},
		other:   `updated_at = excluded.updated_at`,
		change:  updatedIf,
		where:   ` WHERE t.user_id = ''`,
		args:    []any{projectID, string(env), customerID, "", "", "", "", "", "{}", userID, false, true, 0, 0, now, now, ""}}
}

// sessionCustomerUpsert records what a checkout session says of its
// customer: the email and the owner fill the stored customer's empty ones,
// nothing else changes. An unknown customer is stored, visible, with the
// event time 0, so that the customer's own events replace it whatever their
// order.
func (db *DB) sessionCustomerUpsert(c billing.Customer) upsert {
	now := db.nowMicros()
	return upsert{insert: customerInsert,
		content: [][2]string{
			{"email", "CASE WHEN t.email_lower = '' THEN excluded.email ELSE t.email END"},
			{"email_lower", "CASE WHEN t.email_lower = '' THEN excluded.email_lower ELSE t.email_lower END"},
			{"user_id", "COALESCE(NULLIF(t.user_id, ''), excluded.user_id)"},
			{"stub", "FALSE"}},
		other:  `updated_at = excluded.updated_at`,
		change: createdUnlessStub,
		args: []any{c.ProjectID, string(c.Environment), c.ID, c.Email, billing.NormalizeEmail(c.Email), "", "", "", "{}",
			c.UserID, false, false, now, 0, now, now, "created"}}
}
