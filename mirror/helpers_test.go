package mirror_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/bus"
	"github.com/stackfordevs/billing/internal/testclock"
	"github.com/stackfordevs/billing/mirror"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/store/storetest"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// fakeStripe is an in-memory Stripe account of one project's environment.
// It stamps what it returns with its own clock, as Stripe does with its
// Date header, and records every call.
type fakeStripe struct {
	mu            sync.Mutex
	now           func() time.Time
	subscriptions map[string]billing.Subscription
	customers     map[string]billing.Customer
	products      map[string]billing.Product
	prices        map[string]billing.Price
	sessions      map[string]billing.CheckoutSession
	calls         []string
	// err, when set, fails every call; failListAfter fails the
	// subscription list after that many subscriptions.
	err           error
	failListAfter int
}

var errStripe = billing.Errorf(billing.ESTRIPE, "Stripe failed.")

func newFakeStripe() *fakeStripe {
	return &fakeStripe{now: time.Now, subscriptions: map[string]billing.Subscription{}, customers: map[string]billing.Customer{},
		products: map[string]billing.Product{}, prices: map[string]billing.Price{}, sessions: map[string]billing.CheckoutSession{}}
}

// called records a call and returns the failure to answer with.
func (f *fakeStripe) called(call string) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.now().Truncate(time.Second), f.err
}

// count returns how many calls started with prefix.
func (f *fakeStripe) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeStripe) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func get[T any](f *fakeStripe, objects map[string]T, kind, id string, stamp func(*T, time.Time)) (*T, error) {
	at, err := f.called("get " + kind + " " + id)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	v, ok := objects[id]
	f.mu.Unlock()
	if !ok {
		return nil, billing.Errorf(billing.ENOTFOUND, "No such %s: %s", kind, id)
	}
	stamp(&v, at)
	return &v, nil
}

func (f *fakeStripe) GetSubscription(ctx context.Context, id string) (*billing.Subscription, error) {
	return get(f, f.subscriptions, "subscription", id, func(s *billing.Subscription, at time.Time) { s.EventAt = at })
}

func (f *fakeStripe) GetCustomer(ctx context.Context, id string) (*billing.Customer, error) {
	return get(f, f.customers, "customer", id, func(c *billing.Customer, at time.Time) { c.EventAt = at })
}

func (f *fakeStripe) GetProduct(ctx context.Context, id string) (*billing.Product, error) {
	return get(f, f.products, "product", id, func(p *billing.Product, at time.Time) { p.EventAt = at })
}

func (f *fakeStripe) GetCheckoutSession(ctx context.Context, id string) (*billing.CheckoutSession, error) {
	return get(f, f.sessions, "checkout_session", id, func(s *billing.CheckoutSession, at time.Time) { s.EventAt = at })
}

// list calls fn with every object of a kind, by id.
func list[T any](f *fakeStripe, objects map[string]T, kind string, failAfter int, stamp func(*T, time.Time), fn func(T) error) error {
	at, err := f.called("list " + kind)
	if err != nil {
		return err
	}
	f.mu.Lock()
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range objects {
			if !yield(id) {
				return
			}
		}
	})
	all := make([]T, len(ids))
	for i, id := range ids {
		all[i] = objects[id]
	}
	f.mu.Unlock()
	for i, v := range all {
		if failAfter > 0 && i == failAfter {
			return errStripe
		}
		stamp(&v, at)
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStripe) ListProducts(ctx context.Context, fn func(billing.Product) error) error {
	return list(f, f.products, "products", 0, func(p *billing.Product, at time.Time) { p.EventAt = at }, fn)
}

func (f *fakeStripe) ListPrices(ctx context.Context, fn func(billing.Price) error) error {
	return list(f, f.prices, "prices", 0, func(p *billing.Price, at time.Time) { p.EventAt = at }, fn)
}

func (f *fakeStripe) ListCustomers(ctx context.Context, fn func(billing.Customer) error) error {
	return list(f, f.customers, "customers", 0, func(c *billing.Customer, at time.Time) { c.EventAt = at }, fn)
}

func (f *fakeStripe) ListSubscriptions(ctx context.Context, fn func(billing.Subscription) error) error {
	return list(f, f.subscriptions, "subscriptions", f.failListAfter, func(s *billing.Subscription, at time.Time) { s.EventAt = at }, fn)
}

// harness is a mirror over a real store, with one project whose Stripe
// account is a fakeStripe.
type harness struct {
	db     *store.DB
	m      *mirror.Mirror
	stripe *fakeStripe
	p      *billing.Project
	secret string
	clock  *testclock.Clock
	bus    *bus.Bus
	keys   *keyRecorder
}

// keyRecorder keeps the keys published on a bus.
type keyRecorder struct {
	mu   sync.Mutex
	keys []bus.Key
}

func (r *keyRecorder) add(k bus.Key) {
	r.mu.Lock()
	r.keys = append(r.keys, k)
	r.mu.Unlock()
}

// take returns the keys recorded since the last take.
func (r *keyRecorder) take() []bus.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.keys
	r.keys = nil
	return out
}

const webhookSecret = "whsec_mirrortest"

// newHarness returns a mirror (an instance) on db with a new project; opts
// change its configuration.
func newHarness(t testing.TB, db *store.DB, opts ...func(*mirror.Config)) *harness {
	t.Helper()
	h := &harness{db: db, stripe: newFakeStripe(), p: storetest.MustCreateProject(t, db), secret: webhookSecret,
		clock: testclock.New(time.Now()), bus: bus.New(nil), keys: &keyRecorder{}}
	h.bus.Subscribe(h.keys.add)
	return h.instance(t, opts...)
}

// instance returns another instance of the mirror of h's project on the
// same database, without a bus between them (no Redis).
func (h *harness) instance(t testing.TB, opts ...func(*mirror.Config)) *harness {
	t.Helper()
	out := *h
	if h.m != nil {
		out.bus, out.keys = bus.New(nil), &keyRecorder{}
		out.bus.Subscribe(out.keys.add)
	}
	cfg := mirror.Config{
		Store: h.db,
		Accounts: mirror.AccountsFunc(func(ctx context.Context, projectID string, env billing.Environment) (mirror.Account, error) {
			if projectID != h.p.ID || env != billing.EnvTest {
				return mirror.Account{}, billing.Errorf(billing.EFORBIDDEN, "Stripe is not configured for %s.", env)
			}
			return mirror.Account{Settings: &billing.StripeSettings{ProjectID: projectID, Environment: env, WebhookSecret: h.secret},
				Stripe: h.stripe}, nil
		}),
		Bus: out.bus,
		Now: h.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	out.m = mirror.New(cfg)
	return &out
}

// deliver signs payload and ingests it.
func (h *harness) deliver(t testing.TB, payload []byte) (mirror.Receipt, error) {
	t.Helper()
	body, sig := stripetest.SignedPayload(t, payload, h.secret, time.Time{})
	return h.m.Ingest(context.Background(), mirror.Delivery{ProjectID: h.p.ID, Environment: billing.EnvTest, Payload: body, Signature: sig})
}

// mustDeliver ingests payload and checks the receipt's status.
func (h *harness) mustDeliver(t testing.TB, payload []byte, status string) {
	t.Helper()
	r, err := h.deliver(t, payload)
	if err != nil || r.Status != status {
		t.Fatalf("deliver: got %+v, %v; want %s", r, err, status)
	}
}

// current answers the current subscription of a customer, by email.
func (h *harness) current(t testing.TB, email string) *billing.Subscription {
	t.Helper()
	s, err := h.m.CurrentSubscription(context.Background(), h.p.ID, billing.EnvTest, billing.Who{Email: email})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// customerEvent is a customer.created event.
func customerEvent(t testing.TB, id, email string, created time.Time) []byte {
	return stripetest.Event(t, "customer.created", map[string]any{"id": "evt_" + id + fmt.Sprint(created.UnixNano()),
		"created": created.Unix(), "data.object.id": id, "data.object.email": email, "data.object.metadata": map[string]any{}})
}
