package store

import (
	"cmp"
	"context"
	"reflect"
	"slices"

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
		if err := writeRow(db, tx, res, mode, key(p.ID, eventMicros(p.EventAt)), productTable, db.productUpsert(p)); err != nil {
			return err
		}
	}
	for _, p := range sortedByID(change.Prices, func(p billing.Price) string { return p.ID }) {
		p.ProjectID, p.Environment = projectID, env
		if err := writeRow(db, tx, res, mode, key(p.ID, eventMicros(p.EventAt)), priceTable, db.priceUpsert(p)); err != nil {
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
		if err := writeRow(db, tx, res, m, key(c.ID, eventMicros(c.EventAt)), customerTable, up); err != nil {
			return err
		}
	}
	if change.CheckoutSession != nil {
		s := *change.CheckoutSession
		s.ProjectID, s.Environment = projectID, env
		up := db.checkoutSessionUpsert(s, sessionMirrorSet)
		if err := writeRow(db, tx, res, mode, key(s.ID, eventMicros(s.EventAt)), checkoutSessionTable, up); err != nil {
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
		if err := writeRow(db, tx, res, mode, key(s.ID, eventMicros(s.EventAt)), subscriptionTable, up); err != nil {
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

// upsert is the statement that writes one mirror object: insert (an INSERT
// with its VALUES) and, for a row already stored, set, the ON CONFLICT ...
// DO UPDATE SET clause in which the stored row is "t" (with the WHERE of the
// write's ordering rule, added by writeRow unless set has its own).
type upsert struct {
	insert string
	set    string
	args   []any
	err    error
}

// mirrorTable describes a mirror table for writeRow: its name, the columns
// its rows are read with, and what a change from one stored row to the next
// is.
type mirrorTable[R any] struct {
	name    string
	columns string
	// change reports what turned before (nil when there was no row) into
	// after, and false when nothing that matters changed.
	change func(id string, before, after *R) (billing.ObjectChange, bool)
	// eventAt returns the stored event time of a row.
	eventAt func(*R) int64
}

// writeRow writes one object into table: it reads the stored row (locking
// it on PostgreSQL, so that it cannot change before commit), runs the upsert
// and records in res whether the object was written and what changed, or
// why it was not: stale, or, for an event, a tie.
func writeRow[R any](db *DB, tx *gorm.DB, res *Applied, mode writeMode, k objectKey, table mirrorTable[R], up upsert) error {
	before, err := readRow(db, tx, table, k)
	if err != nil {
		return err
	}
	after, err := runUpsert(db, tx, table, up, mode, before == nil, k)
	if err != nil {
		return err
	}
	if after == nil && before == nil {
		// Another transaction inserted the row since it was read: read it
		// again, locked now, and write over it as over any stored row.
		if before, err = readRow(db, tx, table, k); err != nil {
			return err
		}
		if after, err = runUpsert(db, tx, table, up, mode, before == nil, k); err != nil {
			return err
		}
	}
	switch {
	case after != nil:
		res.Written++
		if ch, ok := table.change(k.id, before, after); ok {
			res.Changes = append(res.Changes, ch)
		}
	case mode == writeMerge:
	case mode == writeNewer && before != nil && table.eventAt(before) == k.eventAt:
		res.Ties = append(res.Ties, k.id)
	default:
		res.Stale++
	}
	return nil
}

// readRow returns the stored row of k, or nil.
func readRow[R any](db *DB, tx *gorm.DB, table mirrorTable[R], k objectKey) (*R, error) {
	rows, err := txQuery[R](db, tx, `SELECT `+table.columns+` FROM `+table.name+`
		WHERE project_id = ? AND environment = ? AND id = ?`+db.forUpdate(),
		k.projectID, string(k.env), k.id)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// runUpsert runs up and returns the row it wrote, or nil when it wrote none.
// A fresh write (no stored row was read) only inserts. PostgreSQL returns
// the row with RETURNING; SQLite reads it back with a second statement,
// which costs it less than RETURNING does.
func runUpsert[R any](db *DB, tx *gorm.DB, table mirrorTable[R], up upsert, mode writeMode, fresh bool, k objectKey) (*R, error) {
	q := up.insert + ` ON CONFLICT (project_id, environment, id) DO `
	if fresh {
		q += `NOTHING`
	} else {
		q += `UPDATE SET ` + up.set + mode.condition("t")
	}
	if db.postgres {
		rows, err := txQuery[R](db, tx, q+` RETURNING `+table.columns, up.args...)
		if err != nil || len(rows) == 0 {
			return nil, err
		}
		return &rows[0], nil
	}
	n, err := db.txExec(tx, q, up.args...)
	if err != nil || n == 0 {
		return nil, err
	}
	return readRow(db, tx, table, k)
}

// forUpdate returns the locking clause of a read made before a write: rows
// are locked on PostgreSQL; SQLite has one writer, which already excludes
// every other.
func (db *DB) forUpdate() string {
	if db.postgres {
		return ` FOR UPDATE`
	}
	return ``
}

// sameContent reports whether two rows hold the same state, apart from the
// bookkeeping columns, which bookkeeping clears in each.
func sameContent[R any](a, b R, bookkeeping func(*R)) bool {
	bookkeeping(&a)
	bookkeeping(&b)
	return reflect.DeepEqual(a, b)
}

// statusChange is the change of an object with a status (subscriptions,
// checkout sessions): created, or updated when its content differs, with
// the status before and after. state returns a row's status and customer.
func statusChange[R any](kind billing.ObjectKind, id string, before, after *R, state func(*R) (status, customerID string), bookkeeping func(*R)) (billing.ObjectChange, bool) {
	ch := billing.ObjectChange{Kind: kind, ID: id, Op: billing.Created}
	ch.Status, ch.CustomerID = state(after)
	if before != nil {
		if sameContent(*before, *after, bookkeeping) {
			return ch, false
		}
		ch.Op = billing.Updated
		ch.PreviousStatus, _ = state(before)
	}
	return ch, true
}

type productRow struct {
	ProjectID   string
	Environment string
	ID          string
	Name        string
	Active      bool
	Deleted     bool
	EventAt     int64
	UpdatedAt   int64
}

var productTable = mirrorTable[productRow]{
	name:    "products",
	columns: `project_id, environment, id, name, active, deleted, event_at, updated_at`,
	change: func(id string, before, after *productRow) (billing.ObjectChange, bool) {
		return deletableChange(billing.KindProduct, id, "", before, after, func(r *productRow) bool { return r.Deleted },
			func(r *productRow) { r.EventAt, r.UpdatedAt = 0, 0 })
	},
	eventAt: func(r *productRow) int64 { return r.EventAt },
}

// deletableChange is the change of an object that a write can mark deleted
// (customers, products, prices): created, deleted, or updated when its
// content differs. An object first known deleted is no change.
func deletableChange[R any](kind billing.ObjectKind, id, customerID string, before, after *R, deleted func(*R) bool, bookkeeping func(*R)) (billing.ObjectChange, bool) {
	ch := billing.ObjectChange{Kind: kind, ID: id, CustomerID: customerID}
	switch {
	case before == nil && deleted(after):
		return ch, false
	case before == nil:
		ch.Op = billing.Created
	case deleted(after) && !deleted(before):
		ch.Op = billing.Deleted
	case sameContent(*before, *after, bookkeeping):
		return ch, false
	default:
		ch.Op = billing.Updated
	}
	return ch, true
}

// productUpsert writes p. A deleted product only marks the row.
func (db *DB) productUpsert(p billing.Product) upsert {
	set := `name = excluded.name, active = excluded.active, deleted = FALSE`
	if p.Deleted {
		set = `active = FALSE, deleted = TRUE`
	}
	return upsert{
		insert: `INSERT INTO products AS t (project_id, environment, id, name, active, deleted, event_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		set: set + `, event_at = excluded.event_at, updated_at = excluded.updated_at`,
		args: []any{p.ProjectID, string(p.Environment), p.ID, p.Name, p.Active && !p.Deleted, p.Deleted,
			eventMicros(p.EventAt), db.nowMicros()},
	}
}

type priceRow struct {
	ProjectID   string
	Environment string
	ID          string
	ProductID   string
	Nickname    string
	Active      bool
	Deleted     bool
	EventAt     int64
	UpdatedAt   int64
}

var priceTable = mirrorTable[priceRow]{
	name:    "prices",
	columns: `project_id, environment, id, product_id, nickname, active, deleted, event_at, updated_at`,
	change: func(id string, before, after *priceRow) (billing.ObjectChange, bool) {
		return deletableChange(billing.KindPrice, id, "", before, after, func(r *priceRow) bool { return r.Deleted },
			func(r *priceRow) { r.EventAt, r.UpdatedAt = 0, 0 })
	},
	eventAt: func(r *priceRow) int64 { return r.EventAt },
}

// priceUpsert writes p. A deleted price only marks the row.
func (db *DB) priceUpsert(p billing.Price) upsert {
	set := `product_id = excluded.product_id, nickname = excluded.nickname, active = excluded.active, deleted = FALSE`
	if p.Deleted {
		set = `active = FALSE, deleted = TRUE`
	}
	return upsert{
		insert: `INSERT INTO prices AS t (project_id, environment, id, product_id, nickname, active, deleted,
				event_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		set: set + `, event_at = excluded.event_at, updated_at = excluded.updated_at`,
		args: []any{p.ProjectID, string(p.Environment), p.ID, p.ProductID, p.Nickname, p.Active && !p.Deleted, p.Deleted,
			eventMicros(p.EventAt), db.nowMicros()},
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
	var row productRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+productTable.columns+` FROM products
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
