package mirror

import (
	"context"
	"errors"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/store"
	"github.com/stackfordevs/billing/stripeadapter"
)

// Delivery is one webhook request as Stripe sent it to a project's
// environment.
type Delivery struct {
	ProjectID   string
	Environment billing.Environment
	Payload     []byte
	// Signature is the Stripe-Signature header.
	Signature string
}

// Receipt says what Ingest did with a delivery.
type Receipt struct {
	EventID string
	Type    string
	// Status is billing.EventApplied, EventIgnored or EventFailed.
	Status string
	// Duplicate is true when the event was received before; nothing was
	// written.
	Duplicate bool
}

// Ingest verifies, stores and applies one webhook delivery. The event is
// stored in the ledger and applied to the mirror in one transaction, so
// that it is durable once Ingest returns without error; a duplicate is a
// no-op. An event that only names a subscription (an invoice's, a completed
// checkout's) has it read from Stripe first. Objects an event could not
// order (same-second ties), or, with the project's refetch option, every
// subscription and customer it names, are then re-read from Stripe.
//
// Errors: ENOTFOUND naming "environment" when the environment has no
// signing secret; EINVALID naming "Stripe-Signature" for a signature that
// does not verify, or without a field for a payload that is not an event;
// EUNAVAILABLE when the database or Stripe fails, so that Stripe delivers the
// event again. An event whose object cannot be read, or holds a value the
// database refuses, is stored as failed (Receipt.Status) rather than
// refused, since Stripe's retries would not change it.
func (m *Mirror) Ingest(ctx context.Context, d Delivery) (Receipt, error) {
	acct, err := m.accounts.Account(ctx, d.ProjectID, d.Environment)
	switch code := billing.ErrorCode(err); {
	case code == billing.EFORBIDDEN || err == nil && acct.Settings.WebhookSecret == "":
		return Receipt{}, &billing.Error{Code: billing.ENOTFOUND, Param: "environment",
			Message: "No webhook signing secret is configured for " + string(d.Environment) + "."}
	case code == billing.EINTERNAL:
		m.logger.ErrorContext(ctx, "webhook event not received", "project_id", d.ProjectID, "error", err.Error())
		return Receipt{}, billing.Errorf(billing.EUNAVAILABLE, "The event could not be received; Stripe will retry.")
	case err != nil:
		return Receipt{}, err
	}
	if err := stripeadapter.VerifyWebhook(d.Payload, d.Signature, acct.Settings.WebhookSecret, m.cfg.WebhookTolerance); err != nil {
		m.observe("", "rejected")
		return Receipt{}, err
	}
	parsed, err := stripeadapter.ParseEvent(d.Payload, d.ProjectID, d.Environment)
	ev, change := parsed.Event, parsed.Change
	ev.ReceivedAt = m.now()
	m.observe(ev.Type, "received")
	rcpt := Receipt{EventID: ev.ID, Type: ev.Type}
	switch {
	case errors.Is(err, stripeadapter.ErrUnprocessable):
		ev.Status, ev.Error = billing.EventFailed, err.Error()
		change = billing.MirrorChange{}
		m.logger.WarnContext(ctx, "webhook event could not be applied",
			"project_id", d.ProjectID, "event_id", ev.ID, "type", ev.Type, "error", err.Error())
	case err != nil:
		return Receipt{}, err
	default:
		if len(parsed.RefreshSubscriptions) > 0 {
			// A duplicate needs no Stripe read, and must be a 200 even
			// while Stripe is unreachable.
			if _, err := m.store.FindWebhookEvent(ctx, d.ProjectID, d.Environment, ev.ID); err == nil {
				return m.duplicate(rcpt), nil
			} else if billing.ErrorCode(err) != billing.ENOTFOUND {
				return Receipt{}, m.notStored(ctx, d.ProjectID, ev.ID, err)
			}
			read, err := m.fetch(ctx, acct.Stripe, scope{d.ProjectID, d.Environment},
				Refs{Subscriptions: parsed.RefreshSubscriptions}, readOptions{})
			if err != nil {
				m.logger.WarnContext(ctx, "webhook event not stored: subscription read failed",
					"project_id", d.ProjectID, "event_id", ev.ID, "error", err.Error())
				return Receipt{}, billing.Errorf(billing.EUNAVAILABLE, "Stripe could not be reached; Stripe will retry the event.")
			}
			change.Subscriptions = append(change.Subscriptions, read.Subscriptions...)
		}
		ev.Status = billing.EventApplied
		if change.Empty() {
			ev.Status = billing.EventIgnored
		}
	}
	res, err := m.write(ctx, store.Write{ProjectID: d.ProjectID, Environment: d.Environment, Origin: store.FromEvent,
		Event: &ev, Change: change})
	if billing.ErrorCode(err) == billing.EINVALID && !change.Empty() {
		// The database refused a value of the event's objects: it would
		// refuse every retry, so the event is kept as failed, without its
		// change, for the operator to see.
		m.logger.WarnContext(ctx, "webhook event could not be applied: the database refused a value",
			"project_id", d.ProjectID, "event_id", ev.ID, "type", ev.Type)
		ev.Status, ev.Error = billing.EventFailed, "The database refused a value of the event's objects."
		res, err = m.write(ctx, store.Write{ProjectID: d.ProjectID, Environment: d.Environment, Origin: store.FromEvent,
			Event: &ev})
	}
	if billing.ErrorCode(err) == billing.EINVALID {
		// Not even the event itself could be stored: Stripe's retries
		// would be refused the same way, so it is acknowledged.
		m.logger.ErrorContext(ctx, "webhook event refused by the database and acknowledged",
			"project_id", d.ProjectID, "type", ev.Type)
		m.observe(ev.Type, billing.EventFailed)
		rcpt.Status = billing.EventFailed
		return rcpt, nil
	}
	if err != nil {
		return Receipt{}, m.notStored(ctx, d.ProjectID, ev.ID, err)
	}
	if res.Duplicate {
		return m.duplicate(rcpt), nil
	}
	if refs := reread(acct.Settings, change, res.Ties); !refs.Empty() {
		if err := m.refresh(ctx, d.ProjectID, d.Environment, refs, readOptions{}); err != nil {
			m.logger.WarnContext(ctx, "re-read after an event failed", "project_id", d.ProjectID, "event_id", ev.ID, "error", err.Error())
		}
	}
	m.observe(ev.Type, ev.Status)
	rcpt.Status = ev.Status
	return rcpt, nil
}

func (m *Mirror) duplicate(r Receipt) Receipt {
	m.observe(r.Type, "duplicate")
	r.Duplicate = true
	return r
}

func (m *Mirror) observe(typ, outcome string) {
	if m.cfg.Observe != nil {
		m.cfg.Observe(typ, outcome)
	}
}

// notStored logs why an event could not be stored and returns the 503 that
// makes Stripe deliver it again.
func (m *Mirror) notStored(ctx context.Context, projectID, eventID string, err error) error {
	m.logger.ErrorContext(ctx, "webhook event not stored", "project_id", projectID, "event_id", eventID, "error", err.Error())
	return billing.Errorf(billing.EUNAVAILABLE, "The event could not be stored; Stripe will retry.")
}

// reread returns the objects to re-read from Stripe after an event is
// stored: the same-second ties, or, when the project asks for it, every
// subscription and customer the event wrote.
func reread(st *billing.StripeSettings, change billing.MirrorChange, ties []string) Refs {
	tied := make(map[string]bool, len(ties))
	for _, id := range ties {
		tied[id] = true
	}
	var refs Refs
	for _, s := range change.Subscriptions {
		if st.RefetchObjects || tied[s.ID] {
			refs.Subscriptions = append(refs.Subscriptions, s.ID)
		}
	}
	for _, c := range change.Customers {
		if st.RefetchObjects || tied[c.ID] {
			refs.Customers = append(refs.Customers, c.ID)
		}
	}
	return refs
}
