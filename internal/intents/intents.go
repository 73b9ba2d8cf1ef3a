// Package intents makes every create the service sends to Stripe safe
// against faults: the create is recorded as an intent, with the idempotency
// key its Stripe call carries, before the call, and completed once the
// created object is recorded locally. So:
//
//   - when the database cannot record the intent, Stripe is not called;
//   - the created object is recorded in the same transaction as the
//     intent's completion;
//   - when the database fails after Stripe created the object, the intent
//     stays pending, and a retry with the same Idempotency-Key calls Stripe
//     again with the same key, which answers with the same object rather
//     than creating a second one, and the object is recorded then;
//   - once completed, a retry with the same key does not call Stripe's
//     create at all: the caller answers from the recorded object;
//   - the same key with another request (other parameters, another buyer,
//     another operation) is refused.
//
// Without a caller's key, a random one is recorded and used.
package intents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	billing "github.com/stackfordevs/billing"
)

// Store records intents. *store.DB implements it.
type Store interface {
	// BeginIntent records in as pending unless an intent with its key
	// exists; it returns the stored intent and whether it is new.
	// EUNAVAILABLE means nothing was recorded.
	BeginIntent(ctx context.Context, in billing.Intent) (billing.Intent, bool, error)
	// CompleteIntent marks the intent completed with the Stripe object id
	// and writes record, the local record of the object (the store says
	// which types it knows; nil for none), in the same transaction.
	CompleteIntent(ctx context.Context, projectID string, env billing.Environment, key, objectID string, record any) error
	// AbandonIntent deletes a pending intent whose call created nothing.
	AbandonIntent(ctx context.Context, projectID string, env billing.Environment, key string) error
}

// Operations recorded by the service's creates.
const (
	CustomerCreate        = "customer.create"
	CheckoutSessionCreate = "checkout.session.create"
	PaymentIntentCreate   = "payment_intent.create"
	PortalSessionCreate   = "billing_portal.session.create"
)

// Request is one create.
type Request struct {
	ProjectID   string
	Environment billing.Environment
	// Operation names what is created, such as CustomerCreate.
	Operation string
	// UserID is the buyer the object is created for, if any.
	UserID string
	// IdempotencyKey is the caller's Idempotency-Key; when empty a random
	// one is made.
	IdempotencyKey string
	// Params is what the Stripe call sends (the domain params struct). Its
	// JSON, with the operation and the buyer, is the intent's fingerprint.
	Params any
}

// Outcome is what Do did.
type Outcome struct {
	// Key is the idempotency key the Stripe call carried (or carried
	// before, when Replayed).
	Key string
	// ObjectID is the Stripe id of the created object.
	ObjectID string
	// Replayed says an earlier request with the same key completed the
	// create: Stripe was not called, and the caller answers from the
	// object ObjectID names.
	Replayed bool
}

// Recorder runs creates through the intent ledger.
type Recorder struct {
	Store  Store
	Logger *slog.Logger
}

// Do records the intent of req, then calls call with the idempotency key to
// make the Stripe call and return the created object's id and its local
// record, then completes the intent and writes the record in one
// transaction.
//
// It returns, without calling call: the store's error when the intent
// cannot be recorded (EUNAVAILABLE while the database is down); an
// EINVALID error naming Idempotency-Key when the key was used for another
// request; and Outcome.Replayed when the key's create is complete. When
// Stripe refuses the request (EINVALID, ENOTFOUND, EFORBIDDEN,
// ERATELIMITED), nothing was created: the intent is abandoned so that the
// key may be used again, and the error returned. Any other failure of call
// or of the completion leaves the intent pending for a retry with the same
// key.
func (r *Recorder) Do(ctx context.Context, req Request,
	call func(ctx context.Context, key string) (objectID string, record any, err error),
) (Outcome, error) {
	key := strings.TrimSpace(req.IdempotencyKey)
	if key == "" {
		key = NewKey()
	}
	fp, err := Fingerprint(req)
	if err != nil {
		return Outcome{}, err
	}
	in, created, err := r.Store.BeginIntent(ctx, billing.Intent{
		ProjectID: req.ProjectID, Environment: req.Environment, IdempotencyKey: key,
		Operation: req.Operation, Fingerprint: fp, UserID: req.UserID,
	})
	if err != nil {
		return Outcome{}, err
	}
	if !created {
		if in.Operation != req.Operation || in.Fingerprint != fp {
			return Outcome{}, billing.FieldErrorf("Idempotency-Key",
				"Idempotency-Key was already used for another request; use a new key for a new request.")
		}
		if in.State == billing.IntentCompleted {
			return Outcome{Key: key, ObjectID: in.ObjectID, Replayed: true}, nil
		}
	}
	id, record, err := call(ctx, key)
	if err != nil {
		if refused(err) {
			if aerr := r.Store.AbandonIntent(context.WithoutCancel(ctx), req.ProjectID, req.Environment, key); aerr != nil {
				r.logger().WarnContext(ctx, "create intent not abandoned", "project_id", req.ProjectID,
					"operation", req.Operation, "error", aerr.Error())
			}
		}
		return Outcome{}, err
	}
	if err := r.Store.CompleteIntent(ctx, req.ProjectID, req.Environment, key, id, record); err != nil {
		return Outcome{}, err
	}
	return Outcome{Key: key, ObjectID: id}, nil
}

func (r *Recorder) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// refused reports whether err is Stripe refusing a request, after which
// nothing exists in Stripe.
func refused(err error) bool {
	switch billing.ErrorCode(err) {
	case billing.EINVALID, billing.ENOTFOUND, billing.EFORBIDDEN, billing.ERATELIMITED:
		return true
	}
	return false
}

// Fingerprint returns the digest of a request that an idempotency key is
// bound to: its operation, buyer and parameters.
func Fingerprint(req Request) (string, error) {
	b, err := json.Marshal(struct {
		Operation string
		UserID    string
		Params    any
	}{req.Operation, req.UserID, req.Params})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// NewKey returns a random idempotency key.
func NewKey() string { return "billing-" + uuid.NewString() }
