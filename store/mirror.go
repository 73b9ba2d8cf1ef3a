package store

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// ApplyResult says what ApplyEvent did.
type ApplyResult struct {
	// Duplicate is true when the event was stored before; nothing was
	// written.
	Duplicate bool
	// Written counts the objects that were inserted or replaced.
	Written int
	// Stale counts the objects skipped because the stored state came from
	// a newer event.
	Stale int
	// Ties holds the ids of the objects skipped because the stored state
	// came from an event of the same second: which is newer is unknown, so
	// the caller re-reads them from Stripe and calls UpsertFromStripe.
	Ties []string
}

// ApplyEvent stores a webhook event and applies change to the mirror, in one
// transaction. An event stored before (same project, environment and id) is
// a duplicate: nothing is written and the result says so. Each object is
// written only when the stored one is older than its EventAt (see
// ApplyResult for the others). Every object is forced into the event's
// project and environment. When ev.Status is empty it becomes
// EventApplied, or EventIgnored for an empty change.
//
// Customers keep an owner (UserID) set earlier when the new object has
// none; a checkout session with a buyer and a customer gives that customer
// to the buyer when it has no owner yet. The customers of a change that
// carries a checkout session are the session's customer, of which only the
// email and owner are known: they fill what the stored customer lacks and
// never replace it (a customer first known that way is stored as older than
// any event, so that its own events always win).
func (db *DB) ApplyEvent(ctx context.Context, ev billing.WebhookEvent, change billing.MirrorChange) (ApplyResult, error) {
	if err := validScope(ev.ProjectID, ev.Environment); err != nil {
		return ApplyResult{}, err
	} else if ev.ID == "" {
		return ApplyResult{}, billing.FieldErrorf("id", "An event needs an ID.")
	}
	if ev.Status == "" {
		ev.Status = billing.EventApplied
		if change.Empty() {
			ev.Status = billing.EventIgnored
		}
	}
	receivedAt := micros(ev.ReceivedAt)
	if receivedAt == 0 {
		receivedAt = db.nowMicros()
	}
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	var res ApplyResult
	err := db.transact(ctx, func(tx *gorm.DB) error {
		res = ApplyResult{}
		ins := tx.Exec(`INSERT INTO webhook_events (project_id, environment, id, type, api_version, created,
				payload, status, error, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id, environment, id) DO NOTHING`,
			ev.ProjectID, string(ev.Environment), ev.ID, ev.Type, ev.APIVersion, micros(ev.Created),
			payload, ev.Status, ev.Error, receivedAt)
		if ins.Error != nil {
			return ins.Error
		} else if ins.RowsAffected == 0 {
			res.Duplicate = true
			return nil
		}
		return db.applyChange(tx, ev.ProjectID, ev.Environment, change, writeNewer, &res)
	})
	if err != nil {
		return ApplyResult{}, translate(err, "Webhook event")
	}
	return res, nil
}

// UpsertFromStripe writes objects freshly read from Stripe to the mirror of
// a project and environment, in one transaction. The ordering rule is the
// one of ApplyEvent, except that a read wins a tie.
func (db *DB) UpsertFromStripe(ctx context.Context, projectID string, env billing.Environment, change billing.MirrorChange) error {
	if err := validScope(projectID, env); err != nil {
		return err
	}
	err := db.transact(ctx, func(tx *gorm.DB) error {
		var res ApplyResult
		return db.applyChange(tx, projectID, env, change, writeNotOlder, &res)
	})
	return translate(err, "Mirror object")
}

// applyChange writes the objects of change in a fixed order (products,
// prices, customers, checkout session, subscriptions; each kind by id) so
// that concurrent transactions lock rows in the same order.
func (db *DB) applyChange(tx *gorm.DB, projectID string, env billing.Environment, change billing.MirrorChange, mode writeMode, res *ApplyResult) error {
	key := func(table, id string, eventAt time.Time) objectKey {
		return objectKey{table: table, projectID: projectID, env: env, id: id, eventAt: eventMicros(eventAt)}
	}
	for _, p := range sortedByID(change.Products, func(p billing.Product) string { return p.ID }) {
		p.ProjectID, p.Environment = projectID, env
		rows, err := db.upsertProduct(tx, p, mode)
		if err = db.tally(tx, res, mode, key("products", p.ID, p.EventAt), rows, err); err != nil {
			return err
		}
	}
	for _, p := range sortedByID(change.Prices, func(p billing.Price) string { return p.ID }) {
		p.ProjectID, p.Environment = projectID, env
		rows, err := db.upsertPrice(tx, p, mode)
		if err = db.tally(tx, res, mode, key("prices", p.ID, p.EventAt), rows, err); err != nil {
			return err
		}
	}
	for _, c := range sortedByID(change.Customers, func(c billing.Customer) string { return c.ID }) {
		c.ProjectID, c.Environment = projectID, env
		if change.CheckoutSession != nil {
			// The customer of a checkout session: only its id, email and
			// owner are known, so it fills gaps and never replaces.
			rows, err := db.mergeSessionCustomer(tx, c)
			if err != nil {
				return err
			}
			res.Written += int(rows)
			continue
		}
		rows, err := db.upsertCustomer(tx, c, mode)
		if err = db.tally(tx, res, mode, key("customers", c.ID, c.EventAt), rows, err); err != nil {
			return err
		}
	}
	if change.CheckoutSession != nil {
		s := *change.CheckoutSession
		s.ProjectID, s.Environment = projectID, env
		rows, err := db.upsertCheckoutSession(tx, s, sessionMirrorSet, mode)
		if err = db.tally(tx, res, mode, key("checkout_sessions", s.ID, s.EventAt), rows, err); err != nil {
			return err
		}
		if err := db.claimSessionCustomer(tx, s); err != nil {
			return err
		}
	}
	for _, s := range sortedByID(change.Subscriptions, func(s billing.Subscription) string { return s.ID }) {
		s.ProjectID, s.Environment = projectID, env
		rows, err := db.upsertSubscription(tx, s, mode)
		if err = db.tally(tx, res, mode, key("subscriptions", s.ID, s.EventAt), rows, err); err != nil {
			return err
		}
	}
	return nil
}

// sortedByID returns a sorted copy of objects.
func sortedByID[T any](objects []T, id func(T) string) []T {
	return slices.SortedFunc(slices.Values(objects), func(a, b T) int { return cmp.Compare(id(a), id(b)) })
}

// objectKey names one mirror row and the event time of a write to it.
type objectKey struct {
	table     string
	projectID string
	env       billing.Environment
	id        string
	eventAt   int64
}

// tally records in res the outcome (rows, err) of an upsert of the object k:
// written, or else stale or a tie, told apart by the stored event time.
func (db *DB) tally(tx *gorm.DB, res *ApplyResult, mode writeMode, k objectKey, rows int64, err error) error {
	if err != nil {
		return err
	} else if rows > 0 {
		res.Written++
		return nil
	} else if mode != writeNewer {
		res.Stale++
		return nil
	}
	// The upsert locked the row, so it cannot change before commit.
	var stored int64
	err = tx.Raw(`SELECT event_at FROM `+k.table+` WHERE project_id = ? AND environment = ? AND id = ?`,
		k.projectID, string(k.env), k.id).Scan(&stored).Error
	if err != nil {
		return err
	}
	if stored == k.eventAt {
		res.Ties = append(res.Ties, k.id)
	} else {
		res.Stale++
	}
	return nil
}

// upsertProduct writes p under mode. A deleted product only marks the row.
func (db *DB) upsertProduct(tx *gorm.DB, p billing.Product, mode writeMode) (int64, error) {
	set := `name = excluded.name, active = excluded.active, deleted = FALSE`
	if p.Deleted {
		set = `active = FALSE, deleted = TRUE`
	}
	return rowsAffected(tx.Exec(`INSERT INTO products AS t (project_id, environment, id, name, active, deleted, event_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET `+set+`,
			event_at = excluded.event_at, updated_at = excluded.updated_at`+mode.condition("t"),
		p.ProjectID, string(p.Environment), p.ID, p.Name, p.Active && !p.Deleted, p.Deleted,
		eventMicros(p.EventAt), db.nowMicros()))
}

// upsertPrice writes p under mode. A deleted price only marks the row.
func (db *DB) upsertPrice(tx *gorm.DB, p billing.Price, mode writeMode) (int64, error) {
	set := `product_id = excluded.product_id, nickname = excluded.nickname, active = excluded.active, deleted = FALSE`
	if p.Deleted {
		set = `active = FALSE, deleted = TRUE`
	}
	return rowsAffected(tx.Exec(`INSERT INTO prices AS t (project_id, environment, id, product_id, nickname, active, deleted,
			event_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET `+set+`,
			event_at = excluded.event_at, updated_at = excluded.updated_at`+mode.condition("t"),
		p.ProjectID, string(p.Environment), p.ID, p.ProductID, p.Nickname, p.Active && !p.Deleted, p.Deleted,
		eventMicros(p.EventAt), db.nowMicros()))
}

// upsertSubscription writes s under mode. An email, owner or plan name set
// earlier is kept when s has none (a plan name only for the same price).
func (db *DB) upsertSubscription(tx *gorm.DB, s billing.Subscription, mode writeMode) (int64, error) {
	items := s.Items
	if items == nil {
		items = []billing.SubscriptionItem{}
	}
	itemsJSON, err := json.Marshal(items)
	if err != nil {
		return 0, err
	}
	var trialEnd *int64
	if s.TrialEnd != nil && !s.TrialEnd.IsZero() {
		v := micros(*s.TrialEnd)
		trialEnd = &v
	}
	return rowsAffected(tx.Exec(`INSERT INTO subscriptions AS t (project_id, environment, id, customer_id, email, email_lower,
			user_id, price_id, product_id, plan_name, status, current_period_end, cancel_at_period_end,
			trial_end, items, created, event_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, environment, id) DO UPDATE SET
			customer_id = COALESCE(NULLIF(excluded.customer_id, ''), t.customer_id),
			email = CASE WHEN excluded.email_lower <> '' THEN excluded.email ELSE t.email END,
			email_lower = CASE WHEN excluded.email_lower <> '' THEN excluded.email_lower ELSE t.email_lower END,
			user_id = COALESCE(NULLIF(excluded.user_id, ''), t.user_id),
			price_id = excluded.price_id,
			product_id = excluded.product_id,
			plan_name = CASE WHEN excluded.plan_name <> '' OR excluded.price_id <> t.price_id
				THEN excluded.plan_name ELSE t.plan_name END,
			status = excluded.status,
			current_period_end = excluded.current_period_end,
			cancel_at_period_end = excluded.cancel_at_period_end,
			trial_end = excluded.trial_end,
			items = excluded.items,
			created = excluded.created,
			event_at = excluded.event_at,
			updated_at = excluded.updated_at`+mode.condition("t"),
		s.ProjectID, string(s.Environment), s.ID, s.CustomerID, s.Email, billing.NormalizeEmail(s.Email),
		s.UserID, s.PriceID, s.ProductID, s.PlanName, s.Status, micros(s.CurrentPeriodEnd), s.CancelAtPeriodEnd,
		trialEnd, string(itemsJSON), micros(s.Created), eventMicros(s.EventAt), db.nowMicros()))
}

type webhookEventRow struct {
	ProjectID   string
	Environment string
	ID          string
	Type        string
	APIVersion  string `gorm:"column:api_version"`
	Created     int64
	Payload     []byte
	Status      string
	Error       string
	ReceivedAt  int64
}

func (r webhookEventRow) event() billing.WebhookEvent {
	return billing.WebhookEvent{
		ProjectID:   r.ProjectID,
		Environment: billing.Environment(r.Environment),
		ID:          r.ID,
		Type:        r.Type,
		APIVersion:  r.APIVersion,
		Created:     fromMicros(r.Created),
		Payload:     r.Payload,
		Status:      r.Status,
		Error:       r.Error,
		ReceivedAt:  fromMicros(r.ReceivedAt),
	}
}

const webhookEventColumns = `project_id, environment, id, type, api_version, created, status, error, received_at`

// ListWebhookEvents returns the stored events of a project and environment,
// newest first (by Stripe's created time, then id), without their payloads,
// and whether more follow. Limit is 1-100 (default 10); startingAfter is an
// event id cursor, EINVALID naming "starting_after" when unknown.
func (db *DB) ListWebhookEvents(ctx context.Context, projectID string, env billing.Environment, limit int, startingAfter string) ([]billing.WebhookEvent, bool, error) {
	if err := validScope(projectID, env); err != nil {
		return nil, false, err
	}
	limit = clampLimit(limit, 10, 100)
	q := `SELECT ` + webhookEventColumns + ` FROM webhook_events WHERE project_id = ? AND environment = ?`
	args := []any{projectID, string(env)}
	if startingAfter != "" {
		var created []int64
		err := db.reader(ctx).Raw(`SELECT created FROM webhook_events
			WHERE project_id = ? AND environment = ? AND id = ?`, projectID, string(env), startingAfter).
			Scan(&created).Error
		if err != nil {
			return nil, false, translate(err, "Webhook event")
		} else if len(created) == 0 {
			return nil, false, billing.FieldErrorf("starting_after", "No such event: %s.", startingAfter)
		}
		q += ` AND (created, id) < (?, ?)`
		args = append(args, created[0], startingAfter)
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit+1)
	var rows []webhookEventRow
	if err := db.reader(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, false, translate(err, "Webhook event")
	}
	hasMore := len(rows) > limit
	if hasMore {
		rows = rows[:limit]
	}
	out := make([]billing.WebhookEvent, len(rows))
	for i, r := range rows {
		out[i] = r.event()
	}
	return out, hasMore, nil
}

// FindWebhookEvent returns a stored event with its payload, or ENOTFOUND.
func (db *DB) FindWebhookEvent(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.WebhookEvent, error) {
	var row webhookEventRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+webhookEventColumns+`, payload FROM webhook_events
		WHERE project_id = ? AND environment = ? AND id = ?`, projectID, string(env), id), &row, "Webhook event")
	if err != nil {
		return nil, err
	}
	ev := row.event()
	return &ev, nil
}
