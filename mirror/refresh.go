package mirror

import (
	"context"
	"slices"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
)

// Refs names objects to read from Stripe.
type Refs struct {
	Subscriptions []string
	Customers     []string
	Products      []string
}

// Empty reports whether r names nothing.
func (r Refs) Empty() bool {
	return len(r.Subscriptions) == 0 && len(r.Customers) == 0 && len(r.Products) == 0
}

// readOptions say how fetch treats what it reads.
type readOptions struct {
	// withCustomers also reads the customer of a subscription when the
	// mirror does not know the customer's email, so that the subscription
	// is found by email at once.
	withCustomers bool
	// owner is the buyer a subscription without one (no metadata.user_id)
	// is given to.
	owner string
}

// fetch reads the objects refs names from Stripe: the one place where the
// mirror reads objects to write them. An object Stripe does not have (or
// does not show with this key) is skipped; any other failure stops the
// reads and is returned with what was read before it.
func (m *Mirror) fetch(ctx context.Context, st Stripe, sc scope, refs Refs, opts readOptions) (billing.MirrorChange, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ReadTimeout)
	defer cancel()
	var change billing.MirrorChange
	// read calls get for each id, adding what Stripe gives; an object it
	// does not have (or does not show with this key) is skipped.
	read := func(kind string, ids []string, get func(id string) error) error {
		for _, id := range ids {
			err := get(id)
			switch billing.ErrorCode(err) {
			case "":
			case billing.ENOTFOUND, billing.EINVALID, billing.EFORBIDDEN:
				m.logger.WarnContext(ctx, "Stripe object not read", "project_id", sc.projectID, "object", id, "kind", kind, "error", err.Error())
			default:
				return err
			}
		}
		return nil
	}
	getCustomer := func(id string) error {
		c, err := st.GetCustomer(ctx, id)
		if err == nil {
			change.Customers = append(change.Customers, *c)
		}
		return err
	}
	err := read("product", refs.Products, func(id string) error {
		p, err := st.GetProduct(ctx, id)
		if err == nil {
			change.Products = append(change.Products, *p)
		}
		return err
	})
	if err == nil {
		err = read("customer", refs.Customers, getCustomer)
	}
	if err == nil {
		err = read("subscription", refs.Subscriptions, func(id string) error {
			s, err := st.GetSubscription(ctx, id)
			if err != nil {
				return err
			}
			if s.UserID == "" {
				s.UserID = opts.owner
			}
			change.Subscriptions = append(change.Subscriptions, *s)
			if !opts.withCustomers || s.Email != "" || s.CustomerID == "" ||
				slices.ContainsFunc(change.Customers, func(c billing.Customer) bool { return c.ID == s.CustomerID }) {
				return nil
			}
			if c, err := m.store.FindCustomer(ctx, sc.projectID, sc.env, s.CustomerID); err == nil && c.Email != "" {
				return nil
			}
			return read("customer", []string{s.CustomerID}, getCustomer)
		})
	}
	return change, err
}

// Refresh reads the objects refs names from the project's Stripe account and
// writes what Stripe says now (store.FromStripe: a read wins over state as
// old as it, never over newer state). A subscription whose customer's email
// the mirror lacks brings its customer along. Objects Stripe does not have
// are skipped; what was read is written even when a later read fails, whose
// error is returned.
func (m *Mirror) Refresh(ctx context.Context, projectID string, env billing.Environment, refs Refs) error {
	return m.refresh(ctx, projectID, env, refs, readOptions{withCustomers: true})
}

func (m *Mirror) refresh(ctx context.Context, projectID string, env billing.Environment, refs Refs, opts readOptions) error {
	if refs.Empty() {
		return nil
	}
	acct, err := m.accounts.Account(ctx, projectID, env)
	if err != nil {
		return err
	}
	sc := scope{projectID, env}
	change, readErr := m.fetch(ctx, acct.Stripe, sc, refs, opts)
	if !change.Empty() {
		if _, err := m.write(ctx, store.Write{ProjectID: projectID, Environment: env, Origin: store.FromStripe, Change: change}); err != nil {
			return err
		}
	}
	return readErr
}

// RefreshCheckoutSession reads a checkout session the service created (rec,
// as stored) from Stripe and records it: Stripe's fields over the stored
// ones, which are kept where Stripe's are empty. Once the session is
// complete with a subscription, that subscription is read too (with its
// customer when the mirror lacks the customer's email), owned by the
// session's buyer when it names none, so that a success page finds it before
// any webhook arrives; that read failing is logged, since the webhooks bring
// the same state later. It returns the session as recorded; Stripe's failure
// to give the session is returned as is.
func (m *Mirror) RefreshCheckoutSession(ctx context.Context, rec *billing.CheckoutSession) (*billing.CheckoutSession, error) {
	acct, err := m.accounts.Account(ctx, rec.ProjectID, rec.Environment)
	if err != nil {
		return nil, err
	}
	cs, err := acct.Stripe.GetCheckoutSession(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	upd := mergeSession(rec, cs)
	change := billing.MirrorChange{CheckoutSession: &upd}
	if upd.CustomerID != "" {
		// What the session says of its customer fills gaps only.
		change.Customers = []billing.Customer{{ID: upd.CustomerID, Email: upd.CustomerEmail, UserID: upd.UserID, EventAt: upd.EventAt}}
	}
	if _, err := m.write(ctx, store.Write{ProjectID: rec.ProjectID, Environment: rec.Environment, Origin: store.FromStripe, Change: change}); err != nil {
		return nil, err
	}
	if upd.Status == "complete" && upd.SubscriptionID != "" {
		err := m.refresh(ctx, rec.ProjectID, rec.Environment, Refs{Subscriptions: []string{upd.SubscriptionID}},
			readOptions{withCustomers: true, owner: upd.UserID})
		if err != nil {
			m.logger.WarnContext(ctx, "subscription of a completed checkout not read", "project_id", rec.ProjectID,
				"subscription", upd.SubscriptionID, "error", err.Error())
		}
	}
	return &upd, nil
}

// mergeSession takes Stripe's current fields (cs) over the record's, keeping
// the record's where Stripe's are empty.
func mergeSession(rec, cs *billing.CheckoutSession) billing.CheckoutSession {
	out := *rec
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&out.Status, cs.Status)
	set(&out.PaymentStatus, cs.PaymentStatus)
	set(&out.CustomerID, cs.CustomerID)
	set(&out.CustomerEmail, cs.CustomerEmail)
	set(&out.SubscriptionID, cs.SubscriptionID)
	set(&out.PaymentIntentID, cs.PaymentIntentID)
	set(&out.Currency, cs.Currency)
	if cs.AmountTotal != 0 {
		out.AmountTotal = cs.AmountTotal
	}
	out.URL = cs.URL
	out.EventAt = cs.EventAt
	return out
}

// SaveCustomer records a customer as the service just created or updated
// it through Stripe's API: it replaces what the mirror holds (a UserID set
// earlier is kept when c has none), and its EventAt, Stripe's time of the
// answer, never moves the stored one back. A change of email is visible to
// access answers at once. Each of also runs in the write's transaction, such
// as the completion of the create intent that made the customer.
func (m *Mirror) SaveCustomer(ctx context.Context, c billing.Customer, also ...func(*store.Tx) error) error {
	if c.ID == "" {
		return billing.FieldErrorf("id", "A customer needs an ID.")
	}
	w := store.Write{ProjectID: c.ProjectID, Environment: c.Environment, Origin: store.FromService,
		Change: billing.MirrorChange{Customers: []billing.Customer{c}}}
	if len(also) > 0 {
		w.InTx = func(tx *store.Tx, _ []billing.ObjectChange) error {
			for _, fn := range also {
				if err := fn(tx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	_, err := m.write(ctx, w)
	return err
}

// DeleteCustomer records that a customer was deleted through Stripe's API
// at Stripe's time at (zero when Stripe had deleted it already).
func (m *Mirror) DeleteCustomer(ctx context.Context, projectID string, env billing.Environment, id string, at time.Time) error {
	return m.SaveCustomer(ctx, billing.Customer{ID: id, ProjectID: projectID, Environment: env, Deleted: true, EventAt: at})
}
