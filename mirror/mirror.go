// Package mirror owns the service's mirror of each project's Stripe objects:
// every change to it and the reads that access answers are made of. It
// knows no HTTP; the webhook receiver, checkout status, customer writes,
// the admin and CLI sync and background jobs all call it.
//
// Writes: Ingest (a webhook delivery: verify, dedupe, read what the event
// only names, apply, settle ties), Refresh (objects re-read from Stripe),
// RefreshCheckoutSession, SaveCustomer and DeleteCustomer (the service's own
// changes made through Stripe's API) and Resync (a whole account). Every
// write goes through one path (Mirror.write) that
//
//   - applies the change in one database transaction (store.Apply), which
//     reports the objects actually created, changed or deleted, and runs
//     Config.InTx inside that transaction, so that rows derived from the
//     change (outgoing events) commit or roll back with it;
//   - once committed, publishes bus.MirrorKey of the project's environment
//     on Config.Bus, locally at once and through Redis to other instances,
//     so that no cache can miss a change made through this service; every
//     cache also expires (Config.AnswerTTL), so a lost message costs at
//     most that long;
//   - reads from Stripe, once, a product that a written subscription names
//     and the mirror has not seen, so that plan names are never empty.
//
// Objects read from Stripe are stamped with Stripe's own time (see
// stripeadapter), never the local clock, and written under store.FromStripe.
//
// Reads: CurrentSubscription answers "which subscription grants this
// customer access" from memory (per-customer answers, then an index of the
// whole project's environment built after a burst of misses), re-reading
// from Stripe a subscription still active an hour after its period ended.
//
// Adding a kind of mirrored object (payments, entitlements):
//
//   - a slice in billing.MirrorChange and a billing.ObjectKind;
//   - in store: its table (a migration, with the last_change and
//     previous_status columns every mirror table has), a mirrorTable
//     (statusTable for objects with a status), an upsert whose content
//     assignments say what counts as a change (updatedIf, deletableChange
//     for the usual rules), and a loop in applyChange, in the fixed order;
//     Apply then reports its changes to InTx and to the caller;
//   - its mapping from events in stripeadapter.ParseEvent (and the event
//     types in stripeadapter.EventTypes), a Get method on Stripe if it is
//     ever re-read, and, when it can be listed, a step of Resync with a
//     count in billing.SyncCounts;
//   - reads that answer from memory keep their cache in this package (or
//     anywhere else) and drop it on bus.MirrorKey, like the answers cache
//     here (see New); its expiry must not exceed Config.AnswerTTL.
//
// Writing rows in a change's transaction (an outbox): a TxHook in
// Config.InTx receives the store.Tx and the billing.ObjectChange list (kind,
// id, created/updated/deleted, status before and after, customer); it reads
// the objects as the transaction sees them (store.Tx.FindSubscription,
// FindCustomer) and writes through methods added to store.Tx next to their
// table. Tx.Event is the webhook event when the change came from one.
package mirror

import (
	"context"
	"log/slog"
	"slices"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/cache"
	"github.com/stackfordevs/billing/store"
)

// Store is the storage the mirror writes and reads. Lookups that find
// nothing return ENOTFOUND. *store.DB implements it.
type Store interface {
	Apply(ctx context.Context, w store.Write) (store.Applied, error)
	FindWebhookEvent(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.WebhookEvent, error)
	FindCustomer(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Customer, error)
	FindProduct(ctx context.Context, projectID string, env billing.Environment, id string) (*billing.Product, error)
	FindActiveSubscription(ctx context.Context, projectID string, env billing.Environment, who billing.Who) (*billing.Subscription, error)
	ActiveSubscriptionIndex(ctx context.Context, projectID string, env billing.Environment) (map[billing.Who]*billing.Subscription, error)
}

// Stripe is what the mirror reads from one project's Stripe account in one
// environment. Every object it returns carries ProjectID, Environment and
// an EventAt that is Stripe's time. Failures are *billing.Error values
// (ENOTFOUND for an unknown object). *stripeadapter.Client implements it.
type Stripe interface {
	GetSubscription(ctx context.Context, id string) (*billing.Subscription, error)
	GetCustomer(ctx context.Context, id string) (*billing.Customer, error)
	GetProduct(ctx context.Context, id string) (*billing.Product, error)
	GetCheckoutSession(ctx context.Context, id string) (*billing.CheckoutSession, error)
	ListProducts(ctx context.Context, fn func(billing.Product) error) error
	ListPrices(ctx context.Context, fn func(billing.Price) error) error
	ListCustomers(ctx context.Context, fn func(billing.Customer) error) error
	ListSubscriptions(ctx context.Context, fn func(billing.Subscription) error) error
}

// Account is one project's Stripe account in one environment.
type Account struct {
	// Settings hold the webhook signing secret and the options.
	Settings *billing.StripeSettings
	Stripe   Stripe
}

// Accounts finds a project's Stripe account. An environment without Stripe
// keys is EFORBIDDEN.
type Accounts interface {
	Account(ctx context.Context, projectID string, env billing.Environment) (Account, error)
}

// AccountsFunc adapts a function to Accounts.
type AccountsFunc func(ctx context.Context, projectID string, env billing.Environment) (Account, error)

// Account implements Accounts.
func (f AccountsFunc) Account(ctx context.Context, projectID string, env billing.Environment) (Account, error) {
	return f(ctx, projectID, env)
}

// TxHook runs inside the transaction of every write that changed at least
// one object, with those changes (see store.Write.InTx). The outgoing
// events that announce a change are written here, through methods of
// store.Tx, so that there is no change without its event and no event
// without its change. Its error rolls the write back: the write fails (a
// webhook event is then answered 503 and delivered again).
type TxHook func(tx *store.Tx, changes []billing.ObjectChange) error

// Config holds the mirror's dependencies and settings. Zero durations take
// their defaults.
type Config struct {
	Store    Store
	Accounts Accounts
	// Bus carries the keys of changes; nil means a bus of this instance
	// alone. Share one bus between everything of an instance that caches.
	Bus    *bus.Bus
	Logger *slog.Logger
	Now    func() time.Time
	// AnswerTTL bounds how old a cached access answer (or index) may be on
	// any instance, whether or not it hears of changes (default 30s).
	AnswerTTL time.Duration
	// StaleAfter is how long after its current period ended an active or
	// trialing subscription without a renewal is re-read from Stripe
	// before access is granted on it again (default 1h).
	StaleAfter time.Duration
	// RecheckEvery is how often at most one subscription is re-read for
	// that reason (default 5m).
	RecheckEvery time.Duration
	// QuickReadTimeout bounds the Stripe reads made on the way to an
	// answer rather than for durability (default 2s): that re-read, made on
	// the request's path (when it fails, the answer is the stored one), and
	// the product read that names a plan.
	QuickReadTimeout time.Duration
	// ReadTimeout bounds the Stripe reads of a webhook delivery or a
	// refresh (default 10s), well within Stripe's delivery timeout.
	ReadTimeout time.Duration
	// WebhookTolerance is the largest accepted age of a Stripe signature
	// (default 5m).
	WebhookTolerance time.Duration
	// Observe, when set, is told of every webhook delivery by event type
	// ("" when unknown) and outcome: received, applied, ignored, failed,
	// duplicate, rejected.
	Observe func(eventType, outcome string)
	// InTx run, in order, inside the transaction of every write that
	// changed something.
	InTx []TxHook
}

// Mirror is the service's mirror of its projects' Stripe objects. It is safe
// for concurrent use.
type Mirror struct {
	store    Store
	accounts Accounts
	bus      *bus.Bus
	logger   *slog.Logger
	now      func() time.Time
	cfg      Config

	answers *answers
	// rechecks holds the subscriptions re-read lately for an ended period.
	rechecks *cache.TTL[objectKey, struct{}]
	// products holds the products known to be mirrored (true) or read
	// from Stripe in vain lately (false).
	products *cache.TTL[objectKey, bool]
}

// objectKey names one object of a project's environment.
type objectKey struct {
	scope
	id string
}

// scope is a project's environment.
type scope struct {
	projectID string
	env       billing.Environment
}

// Bounds of the mirror's memos.
const (
	maxRechecks = 100_000
	maxProducts = 100_000
	// productMemo is how long a product known to be mirrored is not looked
	// up again, and one that Stripe did not give is not asked for again.
	productMemo = 10 * time.Minute
)

// New returns a mirror; Store and Accounts are required.
func New(cfg Config) *Mirror {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Bus == nil {
		cfg.Bus = bus.New(nil)
	}
	setDefault(&cfg.AnswerTTL, 30*time.Second)
	setDefault(&cfg.StaleAfter, time.Hour)
	setDefault(&cfg.RecheckEvery, 5*time.Minute)
	setDefault(&cfg.QuickReadTimeout, 2*time.Second)
	setDefault(&cfg.ReadTimeout, 10*time.Second)
	setDefault(&cfg.WebhookTolerance, 5*time.Minute)
	m := &Mirror{
		store:    cfg.Store,
		accounts: cfg.Accounts,
		bus:      cfg.Bus,
		logger:   cfg.Logger,
		now:      cfg.Now,
		cfg:      cfg,
		answers:  newAnswers(cfg.AnswerTTL, cfg.Now),
		rechecks: cache.New[objectKey, struct{}](cfg.RecheckEvery, maxRechecks, cfg.Now),
		products: cache.New[objectKey, bool](productMemo, maxProducts, cfg.Now),
	}
	m.bus.Subscribe(func(k bus.Key) {
		if k.Kind == bus.Mirror {
			m.answers.invalidate(scope{k.ProjectID, k.Environment})
		}
	})
	return m
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// write is the one path of every change to the mirror: it applies w in one
// transaction, with w's own InTx and then the configured InTx hooks, and once committed announces the change
// on the bus and reads the products of written subscriptions that the
// mirror has not seen.
func (m *Mirror) write(ctx context.Context, w store.Write) (store.Applied, error) {
	if own := w.InTx; len(m.cfg.InTx) > 0 {
		w.InTx = func(tx *store.Tx, changes []billing.ObjectChange) error {
			if own != nil {
				if err := own(tx, changes); err != nil {
					return err
				}
			}
			return m.inTx(tx, changes)
		}
	}
	res, err := m.store.Apply(ctx, w)
	if err != nil || len(res.Changes) == 0 {
		return res, err
	}
	m.bus.Publish(context.WithoutCancel(ctx), bus.MirrorKey(w.ProjectID, w.Environment))
	m.nameProducts(ctx, w, res.Changes)
	return res, nil
}

func (m *Mirror) inTx(tx *store.Tx, changes []billing.ObjectChange) error {
	if len(changes) == 0 {
		return nil
	}
	for _, hook := range m.cfg.InTx {
		if err := hook(tx, changes); err != nil {
			return err
		}
	}
	return nil
}

// nameProducts reads from Stripe the products of the written subscriptions
// that the mirror has not seen, so that their plans have names without
// product events or a sync. Each product is looked up in the store at most
// once per productMemo, and read from Stripe once (a failure is logged, and
// tried again after productMemo).
func (m *Mirror) nameProducts(ctx context.Context, w store.Write, changes []billing.ObjectChange) {
	changed := make(map[string]bool, len(changes))
	for _, ch := range changes {
		if ch.Kind == billing.KindSubscription {
			changed[ch.ID] = true
		}
	}
	var missing []string
	for _, s := range w.Change.Subscriptions {
		if !changed[s.ID] {
			continue
		}
		for _, id := range productIDs(s) {
			k := objectKey{scope{w.ProjectID, w.Environment}, id}
			if _, known := m.products.Get(k); known || slices.Contains(missing, id) {
				continue
			}
			if _, err := m.store.FindProduct(ctx, w.ProjectID, w.Environment, id); err == nil {
				m.products.Put(k, true)
				continue
			} else if billing.ErrorCode(err) != billing.ENOTFOUND {
				m.logger.WarnContext(ctx, "product lookup failed", "project_id", w.ProjectID, "product", id, "error", err.Error())
				continue
			}
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.QuickReadTimeout)
	defer cancel()
	err := m.Refresh(ctx, w.ProjectID, w.Environment, Refs{Products: missing})
	for _, id := range missing {
		k := objectKey{scope{w.ProjectID, w.Environment}, id}
		m.products.Put(k, err == nil)
	}
}

// productIDs returns the products of a subscription: its plan's, then its
// items'.
func productIDs(s billing.Subscription) []string {
	var ids []string
	if s.ProductID != "" {
		ids = append(ids, s.ProductID)
	}
	for _, it := range s.Items {
		if it.ProductID != "" && !slices.Contains(ids, it.ProductID) {
			ids = append(ids, it.ProductID)
		}
	}
	return ids
}
