package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/stackfordevs/billing"
)

type intentRow struct {
	ProjectID      string
	Environment    string
	IdempotencyKey string
	Operation      string
	Fingerprint    string
	UserID         string
	State          string
	ObjectID       string
	CreatedAt      int64
	UpdatedAt      int64
}

func (r intentRow) intent() billing.Intent {
	return billing.Intent{
		ProjectID:      r.ProjectID,
		Environment:    billing.Environment(r.Environment),
		IdempotencyKey: r.IdempotencyKey,
		Operation:      r.Operation,
		Fingerprint:    r.Fingerprint,
		UserID:         r.UserID,
		State:          r.State,
		ObjectID:       r.ObjectID,
		CreatedAt:      fromMicros(r.CreatedAt),
		UpdatedAt:      fromMicros(r.UpdatedAt),
	}
}

const intentColumns = `project_id, environment, idempotency_key, operation, fingerprint, user_id, state, object_id, created_at, updated_at`

// BeginIntent records in as pending, before the Stripe call it describes.
// When an intent with the same project, environment and idempotency key
// exists, nothing is written and the stored intent is returned with false;
// otherwise the new one with true. It returns EINVALID without a key or an
// operation, and EUNAVAILABLE when the database cannot record it (then the
// Stripe call must not be made).
func (db *DB) BeginIntent(ctx context.Context, in billing.Intent) (billing.Intent, bool, error) {
	if in.IdempotencyKey == "" || in.Operation == "" {
		return billing.Intent{}, false, billing.Errorf(billing.EINVALID, "An intent needs an idempotency key and an operation.")
	}
	now := db.nowMicros()
	// One statement in the common case (a new key): the insert is atomic,
	// and only a key seen before needs the read.
	res := db.write.WithContext(ctx).Exec(`INSERT INTO create_intents (`+intentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?)
		ON CONFLICT (idempotency_key, project_id, environment) DO NOTHING`,
		in.ProjectID, string(in.Environment), in.IdempotencyKey, in.Operation, in.Fingerprint, in.UserID,
		billing.IntentPending, now, now)
	if res.Error != nil {
		return billing.Intent{}, false, translate(res.Error, "Intent")
	}
	if res.RowsAffected == 1 {
		in.State, in.ObjectID = billing.IntentPending, ""
		in.CreatedAt, in.UpdatedAt = fromMicros(now), fromMicros(now)
		return in, true, nil
	}
	var row intentRow
	err := scanOne(db.write.WithContext(ctx).Raw(`SELECT `+intentColumns+` FROM create_intents
		WHERE idempotency_key = ? AND project_id = ? AND environment = ?`,
		in.IdempotencyKey, in.ProjectID, string(in.Environment)), &row, "Intent")
	if err != nil {
		return billing.Intent{}, false, err
	}
	return row.intent(), false, nil
}

// CompleteIntent marks an intent completed with the id of the Stripe object
// its call created and, in the same transaction, records that object:
// record is a billing.Customer (written to the mirror as UpsertCustomer
// would), a billing.CheckoutSession or billing.PaymentIntent (written as
// CreateCheckoutSession or CreatePaymentIntent would), or nil for none. It
// returns ENOTFOUND for an unknown intent and EINVALID for a record of
// another type.
func (db *DB) CompleteIntent(ctx context.Context, projectID string, env billing.Environment, key, objectID string, record any) error {
	var write func(tx *gorm.DB) error
	switch r := record.(type) {
	case nil:
	case billing.Customer:
		if err := validScope(r.ProjectID, r.Environment); err != nil || r.ID == "" {
			return billing.Errorf(billing.EINVALID, "A customer record needs a project, an environment and an ID.")
		}
		_, err := db.Apply(ctx, Write{ProjectID: r.ProjectID, Environment: r.Environment, Origin: FromService,
			Change: billing.MirrorChange{Customers: []billing.Customer{r}},
			InTx:   func(tx *Tx, _ []billing.ObjectChange) error { return tx.CompleteIntent(key, objectID) }})
		return err
	case billing.CheckoutSession:
		write = func(tx *gorm.DB) error { return db.createCheckoutSession(tx, r) }
	case billing.PaymentIntent:
		write = func(tx *gorm.DB) error { return db.createPaymentIntent(tx, r) }
	default:
		return billing.Errorf(billing.EINVALID, "A create's record cannot be a %T.", record)
	}
	return db.transact(ctx, func(tx *gorm.DB) error {
		if write != nil {
			if err := write(tx); err != nil {
				return err
			}
		}
		return db.completeIntent(tx, projectID, env, key, objectID)
	})
}

// CompleteIntent marks the intent of the write's project and environment
// with key completed with the id of the object its Stripe call created, in
// the write's transaction: the object and the completion commit together.
// It returns ENOTFOUND for an unknown intent.
func (t *Tx) CompleteIntent(key, objectID string) error {
	return t.db.completeIntent(t.tx, t.ProjectID, t.Environment, key, objectID)
}

func (db *DB) completeIntent(tx *gorm.DB, projectID string, env billing.Environment, key, objectID string) error {
	res := tx.Exec(`UPDATE create_intents SET state = ?, object_id = ?, updated_at = ?
		WHERE idempotency_key = ? AND project_id = ? AND environment = ?`,
		billing.IntentCompleted, objectID, db.nowMicros(), key, projectID, string(env))
	if res.Error != nil {
		return translate(res.Error, "Intent")
	} else if res.RowsAffected == 0 {
		return notFound("Intent")
	}
	return nil
}

// AbandonIntent deletes a pending intent whose Stripe call certainly created
// nothing (Stripe refused the request), so that the key may be used again.
// A completed intent is kept.
func (db *DB) AbandonIntent(ctx context.Context, projectID string, env billing.Environment, key string) error {
	err := db.write.WithContext(ctx).Exec(`DELETE FROM create_intents
		WHERE idempotency_key = ? AND project_id = ? AND environment = ? AND state = ?`,
		key, projectID, string(env), billing.IntentPending).Error
	return translate(err, "Intent")
}

// FindIntent returns an intent by its key, or ENOTFOUND.
func (db *DB) FindIntent(ctx context.Context, projectID string, env billing.Environment, key string) (*billing.Intent, error) {
	var row intentRow
	err := scanOne(db.reader(ctx).Raw(`SELECT `+intentColumns+` FROM create_intents
		WHERE idempotency_key = ? AND project_id = ? AND environment = ?`, key, projectID, string(env)), &row, "Intent")
	if err != nil {
		return nil, err
	}
	in := row.intent()
	return &in, nil
}
