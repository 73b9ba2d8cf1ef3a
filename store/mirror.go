package store

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

// Origin says where a mirror write comes from, which decides whether it
// replaces what is stored.
type Origin int

const (
	// FromEvent is a webhook event: an object is written only over state
	// from a strictly older event. State from an event of the same second
	// is a tie (Applied.Ties), which the caller settles by reading the
	// object from Stripe.
	FromEvent Origin = iota
	// FromStripe is a read from Stripe: it replaces older or equally old
	// state.
	FromStripe
	// FromService is the service's own change, made through Stripe's API
	// (a customer created, updated or deleted): it always replaces, and the
	// stored event time never moves back.
	FromService
)

func (o Origin) mode() writeMode {
	switch o {
	case FromStripe:
		return writeNotOlder
	case FromService:
		return writeAlways
	}
	return writeNewer
}

// Write is one change to the mirror of a project's environment, applied in
// one transaction by Apply.
type Write struct {
	ProjectID   string
	Environment billing.Environment
	Origin      Origin
	// Event, when set, is the webhook event that carries Change. It is
	// stored in the ledger in the same transaction; when it was stored
	// before, nothing is written and Applied.Duplicate is set. When its
	// Status is empty it becomes EventApplied, or EventIgnored for an
	// empty change.
	Event *billing.WebhookEvent
	// Change holds the objects to write. Each is forced into the write's
	// project and environment and carries the EventAt that orders it.
	Change billing.MirrorChange
	// InTx, when set, runs inside the transaction once the mirror rows are
	// written (never for a duplicate event), with the objects that changed
	// (possibly none). It is where rows that must commit or roll back with
	// the change are written, through methods of Tx, such as the outgoing
	// events that announce it; its error rolls the whole write back. When
	// the database aborts the transaction for a conflict it is retried, and
	// InTx runs again: it must write through tx only.
	InTx func(tx *Tx, changes []billing.ObjectChange) error
}

// Applied says what Apply did.
type Applied struct {
	// Duplicate is true when the write's event was stored before; nothing
	// was written.
	Duplicate bool
	// Changes are the objects the write created, changed or deleted, in
	// the order they were written. An object written again as it was is
	// counted in Written but is no change.
	Changes []billing.ObjectChange
	// Written counts the objects that were inserted or replaced.
	Written int
	// Stale counts the objects skipped because the stored state came from
	// a newer event (or read).
	Stale int
	// Ties holds the ids of the objects an event skipped because the stored
	// state came from an event of the same second: which is newer is
	// unknown, so the caller re-reads them from Stripe and writes what it
	// read FromStripe.
	Ties []string
}

// ApplyResult is what ApplyEvent returns.
type ApplyResult = Applied

// Tx is a mirror write in progress, handed to Write.InTx. Reads through it
// see the write's own rows; rows written through it commit or roll back
// with the change. Methods that write other tables in the transaction of a
// mirror change (an outbox of outgoing events, for example) belong on Tx,
// beside their table.
type Tx struct {
	db          *DB
	tx          *gorm.DB
	ProjectID   string
	Environment billing.Environment
	// Event is the webhook event being applied; nil for other writes.
	Event *billing.WebhookEvent
}

// FindSubscription returns a subscription of the write's project and
// environment as the transaction sees it, with its plan name, or ENOTFOUND.
func (t *Tx) FindSubscription(id string) (*billing.Subscription, error) {
	return findSubscription(t.tx, t.ProjectID, t.Environment, id)
}

// FindCustomer returns a customer of the write's project and environment as
// the transaction sees it, or ENOTFOUND when it is unknown or deleted.
func (t *Tx) FindCustomer(id string) (*billing.Customer, error) {
	return findCustomer(t.tx, t.ProjectID, t.Environment, id)
}

// Apply writes w to the mirror in one transaction: the event (when there is
// one) into the ledger, then each object under the rule of w.Origin, then
// whatever w.InTx adds. Objects are written in a fixed order (products,
// prices, customers, checkout session, subscriptions; each kind by id) so
// that concurrent transactions lock rows in the same order.
//
// Customers keep an owner (UserID) set earlier when the new object has
// none; a checkout session with a buyer and a customer gives that customer
// to the buyer when it has no owner yet. The customers of a change that
// carries a checkout session are the session's customer, of which only the
// email and owner are known: they fill what the stored customer lacks and
// never replace it (a customer first known that way is stored as older than
// any event, so that its own events always win).
func (db *DB) Apply(ctx context.Context, w Write) (Applied, error) {
	if err := validScope(w.ProjectID, w.Environment); err != nil {
		return Applied{}, err
	}
	var ev *billing.WebhookEvent
	var payload []byte
	var receivedAt int64
	if w.Event != nil {
		e := *w.Event
		e.ProjectID, e.Environment = w.ProjectID, w.Environment
		if e.ID == "" {
			return Applied{}, billing.FieldErrorf("id", "An event needs an ID.")
		}
		if e.Status == "" {
			e.Status = billing.EventApplied
			if w.Change.Empty() {
				e.Status = billing.EventIgnored
			}
		}
		if receivedAt = micros(e.ReceivedAt); receivedAt == 0 {
			receivedAt = db.nowMicros()
		}
		if payload = e.Payload; payload == nil {
			payload = []byte{}
		}
		ev = &e
	}
	var res Applied
	err := db.transact(ctx, func(tx *gorm.DB) error {
		res = Applied{}
		if ev != nil {
			inserted, err := db.txExec(tx, `INSERT INTO webhook_events (project_id, environment, id, type, api_version, created,
					payload, status, error, received_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (project_id, environment, id) DO NOTHING`,
				ev.ProjectID, string(ev.Environment), ev.ID, ev.Type, ev.APIVersion, micros(ev.Created),
				payload, ev.Status, ev.Error, receivedAt)
			if err != nil {
				return err
			} else if inserted == 0 {
				res.Duplicate = true
				return nil
			}
		}
		if err := db.applyChange(tx, w.ProjectID, w.Environment, w.Change, w.Origin.mode(), &res); err != nil {
			return err
		}
		if w.InTx != nil {
			return w.InTx(&Tx{db: db, tx: tx, ProjectID: w.ProjectID, Environment: w.Environment, Event: ev}, res.Changes)
		}
		return nil
	})
	db.prepareWanted(ctx)
	if err != nil {
		return Applied{}, translate(err, "Mirror object")
	}
	return res, nil
}

// ApplyEvent stores a webhook event and applies change to the mirror, in one
// transaction: Apply of a FromEvent write in the event's project and
// environment.
func (db *DB) ApplyEvent(ctx context.Context, ev billing.WebhookEvent, change billing.MirrorChange) (ApplyResult, error) {
	return db.Apply(ctx, Write{ProjectID: ev.ProjectID, Environment: ev.Environment, Origin: FromEvent, Event: &ev, Change: change})
}

// UpsertFromStripe writes objects freshly read from Stripe to the mirror of
// a project and environment, in one transaction: Apply of a FromStripe
// write.
func (db *DB) UpsertFromStripe(ctx context.Context, projectID string, env billing.Environment, change billing.MirrorChange) error {
	_, err := db.Apply(ctx, Write{ProjectID: projectID, Environment: env, Origin: FromStripe, Change: change})
	return err
}

// applyChange writes the objects of change in a fixed order (products,
// prices, customers, checkout session, subscriptions; each kind by id).
func (db *DB) applyChange(tx *gorm.DB, projectID string, env billing.Environment, change billing.MirrorChange, mode writeMode, res *Applied) error {
	key := func(id string, eventAt int64) objectKey {
		return objectKey{projectID: projectID, env: env, id: id, eventAt: eventAt}
	}
	for _, p := range sortedByID(change.Products, func(p billing.Product) string { return p.ID }) {
		p.ProjectID, p.Environment = projectID, env
		if err := db.writeRow(tx, res, mode, key(p.ID, eventMicros(p.EventAt)), productTable, db.productUpsert(p)); err != nil {
			return err
		}
	}
	for _, p := range sortedByID(change.Prices, func(p billing.Price) string { return p.ID }) {
		p.ProjectID, p.Environment = projectID, env
		if err := db.writeRow(tx, res, mode, key(p.ID, eventMicros(p.EventAt)), priceTable, db.priceUpsert(p)); err != nil {
			return err
		}
	}
	for _, c := range sortedByID(change.Customers, func(c billing.Customer) string { return c.ID }) {
		c.ProjectID, c.Environment = projectID, env
		up, m := db.customerUpsert(c, mode), mode
		if change.CheckoutSession != nil {
			// The customer of a checkout session: only its id, email and
			// owner are known, so it fills gaps and never replaces.
			up, m = db.sessionCustomerUpsert(c), writeMerge
		}
		if up.err != nil {
			return up.err
		}
		if err := db.writeRow(tx, res, m, key(c.ID, eventMicros(c.EventAt)), customerTable, up); err != nil {
			return err
		}
	}
	if change.CheckoutSession != nil {
		s := *change.CheckoutSession
		s.ProjectID, s.Environment = projectID, env
		up := db.checkoutSessionUpsert(s)
		if err := db.writeRow(tx, res, mode, key(s.ID, eventMicros(s.EventAt)), checkoutSessionTable, up); err != nil {
			return err
		}
		if err := db.claimSessionCustomer(tx, s, res); err != nil {
			return err
		}
	}
	for _, s := range sortedByID(change.Subscriptions, func(s billing.Subscription) string { return s.ID }) {
		s.ProjectID, s.Environment = projectID, env
		up := db.subscriptionUpsert(s)
		if up.err != nil {
			return up.err
		}
		if err := db.writeRow(tx, res, mode, key(s.ID, eventMicros(s.EventAt)), subscriptionTable, up); err != nil {
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
	projectID string
	env       billing.Environment
	id        string
	eventAt   int64
}

// What a write did to a mirror row, as its statement records it in the
// row's last_change column (with previous_status, the status before it):
// the write reports it without reading the row before, so that the report
// is exact however transactions interleave.
const (
	lastCreated   = `'created'`
	lastUpdated   = `'updated'`
	lastDeleted   = `'deleted'`
	lastUnchanged = `''`
)

// upsert is the statement that writes one mirror object.
type upsert struct {
	// insert is the INSERT with its VALUES, which set last_change (see
	// lastCreated) and previous_status like every other column.
	insert string
	args   []any
	// content are the assignments ("column", "expression"; the stored row
	// is "t") that update a stored row's content: a write that changes
	// none of them is no change.
	content [][2]string
	// other are the remaining assignments (event time, bookkeeping).
	other string
	// change is the expression of an update's last_change, given differs,
	// an expression that is true when the content changes.
	change func(differs string) string
	// where is the update's own condition; empty means the write's
	// ordering rule.
	where string
	err   error
}

// statement returns the INSERT ... ON CONFLICT DO UPDATE of up, whose
// previous_status is previous (an expression of "t").
func (up upsert) statement(mode writeMode, previous string) string {
	var set, differs []string
	for _, a := range up.content {
		set = append(set, a[0]+` = `+a[1])
		differs = append(differs, `(`+a[1]+`) IS DISTINCT FROM t.`+a[0])
	}
	if up.other != "" {
		set = append(set, up.other)
	}
	set = append(set, `last_change = `+up.change(strings.Join(differs, ` OR `)), `previous_status = `+previous)
	where := up.where
	if where == "" {
		where = mode.condition("t")
	}
	return up.insert + ` ON CONFLICT (project_id, environment, id) DO UPDATE SET ` + strings.Join(set, `, `) + where
}

// updatedIf is the usual change of an update: updated when the content
// differs.
func updatedIf(differs string) string {
	return `CASE WHEN ` + differs + ` THEN ` + lastUpdated + ` ELSE ` + lastUnchanged + ` END`
}

// mirrorTable describes a mirror table for writeRow.
type mirrorTable struct {
	kind billing.ObjectKind
	name string
	// previous is the expression of previous_status in an update ("t" is
	// the stored row).
	previous string
	// report is what a written row tells of itself: last_change,
	// previous_status, status and customer_id, in that order.
	report string
}

// changeRow is a written row's report (see mirrorTable.report).
type changeRow struct {
	LastChange     string
	PreviousStatus string
	Status         string
	CustomerID     string
}

// writeRow writes one object into table and records in res whether it was
// written and what changed, or why it was not: stale, or, for an event, a
// tie.
func (db *DB) writeRow(tx *gorm.DB, res *Applied, mode writeMode, k objectKey, table mirrorTable, up upsert) error {
	where := ` WHERE project_id = ? AND environment = ? AND id = ?`
	q := up.statement(mode, table.previous)
	var written []changeRow
	var err error
	if db.postgres {
		// RETURNING saves PostgreSQL a round trip; it costs SQLite more
		// than a read of the row its one writer holds.
		written, err = txQuery[changeRow](db, tx, q+` RETURNING `+table.report, up.args...)
	} else {
		var n int64
		if n, err = db.txExec(tx, q, up.args...); err == nil && n > 0 {
			written, err = txQuery[changeRow](db, tx, `SELECT `+table.report+` FROM `+table.name+where,
				k.projectID, string(k.env), k.id)
		}
	}
	if err != nil {
		return err
	}
	if len(written) > 0 {
		res.Written++
		if w := written[0]; w.LastChange != "" {
			res.Changes = append(res.Changes, billing.ObjectChange{Kind: table.kind, ID: k.id, Op: billing.ChangeOp(w.LastChange),
				Status: w.Status, PreviousStatus: w.PreviousStatus, CustomerID: w.CustomerID})
		}
		return nil
	}
	if mode == writeMerge {
		return nil
	}
	if mode != writeNewer {
		res.Stale++
		return nil
	}
	// The upsert locked the row, so it cannot change before commit.
	stored, err := txQuery[struct{ EventAt int64 }](db, tx, `SELECT event_at FROM `+table.name+where,
		k.projectID, string(k.env), k.id)
	if err != nil {
		return err
	}
	if len(stored) > 0 && stored[0].EventAt == k.eventAt {
		res.Ties = append(res.Ties, k.id)
	} else {
		res.Stale++
	}
	return nil
}

// statusTable describes a mirror table of objects with a status.
func statusTable(kind billing.ObjectKind, name string) mirrorTable {
	return mirrorTable{kind: kind, name: name, previous: `t.status`,
		report: `last_change, previous_status, status, customer_id`}
}

// deletableChange is the change of an update of an object that a write can
// mark deleted (customers, products, prices): deleted, or updated when its
// content differs (a deleted object brought back is updated).
func deletableChange(deleted bool) func(differs string) string {
	if deleted {
		return func(string) string {
			return `CASE WHEN t.deleted THEN ` + lastUnchanged + ` ELSE ` + lastDeleted + ` END`
		}
	}
	return updatedIf
}

// firstKnown is the last_change of an object inserted: created, unless it is
// first known deleted, which is no change.
func firstKnown(deleted bool) string {
	if deleted {
		return ""
	}
	return "created"
}

var productTable = mirrorTable{kind: billing.KindProduct, name: "products", previous: `''`,
	report: `last_change, previous_status, '' AS status, '' AS customer_id`}

// productUpsert writes p. A deleted product only marks the row.
func (db *DB) productUpsert(p billing.Product) upsert {
	content := [][2]string{{"name", "excluded.name"}, {"active", "excluded.active"}, {"deleted", "FALSE"}}
	if p.Deleted {
		content = [][2]string{{"active", "FALSE"}, {"deleted", "TRUE"}}
	}
	return upsert{
		insert: `INSERT INTO products AS t (project_id, environment, id, name, active, deleted, event_at, updated_at,
				last_change, previous_status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')`,
		content: content,
		other:   `event_at = excluded.event_at, updated_at = excluded.updated_at`,
		change:  deletableChange(p.Deleted),
		args: []any{p.ProjectID, string(p.Environment), p.ID, p.Name, p.Active && !p.Deleted, p.Deleted,
			eventMicros(p.EventAt), db.nowMicros(), firstKnown(p.Deleted)},
	}
}

var priceTable = mirrorTable{kind: billing.KindPrice, name: "prices", previous: `''`,
	report: `last_change, previous_status, '' AS status, '' AS customer_id`}

// priceUpsert writes p. A deleted price only marks the row.
func (db *DB) priceUpsert(p billing.Price) upsert {
	content := [][2]string{{"product_id", "excluded.product_id"}, {"nickname", "excluded.nickname"},
		{"active", "excluded.active"}, {"deleted", "FALSE"}}
	if p.Deleted {
		content = [][2]string{{"active", "FALSE"}, {"deleted", "TRUE"}}
	}
	return upsert{
		insert: `INSERT INTO prices AS t (project_id, environment, id, product_id, nickname, active, deleted,
				event_at, updated_at, last_change, previous_status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')`,
		content: content,
		other:   `event_at = excluded.event_at, updated_at = excluded.updated_at`,
		change:  deletableChange(p.Deleted),
		args: []any{p.ProjectID, string(p.Environment), p.ID, p.ProductID, p.Nickname, p.Active && !p.Deleted, p.Deleted,
			eventMicros(p.EventAt), db.nowMicros(), firstKnown(p.Deleted)},
	}
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

// FindProduct returns a product of a project and environment, deleted ones
// included, or ENOTFOUND.
func (db *DB) FindProduct(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Product, error) {
	var row struct {
		ProjectID   string
		Environment string
		ID          string
		Name        string
		Active      bool
		Deleted     bool
		EventAt     int64
	}
	err := scanOne(db.reader(ctx).Raw(`SELECT project_id, environment, id, name, active, deleted, event_at FROM products
		WHERE project_id = ? AND environment = ? AND id = ?`, projectID, string(env), id), &row, "Product")
	if err != nil {
		return nil, err
	}
	return &billing.Product{
		ID:          row.ID,
		ProjectID:   row.ProjectID,
		Environment: billing.Environment(row.Environment),
		Name:        row.Name,
		Active:      row.Active,
		Deleted:     row.Deleted,
		EventAt:     fromMicros(row.EventAt),
	}, nil
}
