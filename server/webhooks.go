package server

import (
	"context"
	"errors"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter"
)

// stripeReadTimeout bounds the Stripe reads a webhook delivery makes, so
// that the answer comes well within Stripe's delivery timeout.
const stripeReadTimeout = 10 * time.Second

// ReceiveStripeWebhook verifies, stores and applies one Stripe event. It
// answers 2xx only once the event is durable; a duplicate is a 200 no-op.
//
// A signature that does not verify is a 400; an unknown project, or an
// environment without a signing secret, a 404. An event whose object cannot
// be read is stored as failed and acknowledged, since Stripe's retries would
// not change it. When the database or Stripe fails, the event is not stored
// and the answer is a 503, so that Stripe delivers it again.
func (s *Server) ReceiveStripeWebhook(ctx context.Context, req gen.ReceiveStripeWebhookRequestObject) (gen.ReceiveStripeWebhookResponseObject, error) {
	env := envOf(req.Params.Environment)
	p, err := s.findProject(ctx, req.ProjectId)
	if err != nil {
		return nil, s.transient(ctx, notFound(err, "projectId", "No such project: "+req.ProjectId+"."))
	}
	st, err := s.stripeSettings(ctx, p.ID, env)
	if err != nil && billing.ErrorCode(err) != billing.EFORBIDDEN {
		return nil, s.transient(ctx, err)
	}
	if st == nil || st.WebhookSecret == "" {
		return nil, notFound(nil, "environment", "No webhook signing secret is configured for "+string(env)+".")
	}
	raw := rawBodyFromContext(ctx)
	if err := stripeadapter.VerifyWebhook(raw, deref(req.Params.StripeSignature), st.WebhookSecret, s.tolerance); err != nil {
		s.countEvent("", "rejected")
		return nil, err
	}
	parsed, err := stripeadapter.ParseEvent(raw, p.ID, env)
	ev, change := parsed.Event, parsed.Change
	ev.ReceivedAt = s.now()
	s.countEvent(ev.Type, "received")
	switch {
	case errors.Is(err, stripeadapter.ErrUnprocessable):
		ev.Status, ev.Error = billing.EventFailed, err.Error()
		change = billing.MirrorChange{}
		s.logger.WarnContext(ctx, "webhook event could not be applied",
			"project_id", p.ID, "event_id", ev.ID, "type", ev.Type, "error", err.Error())
	case err != nil:
		return nil, err
	default:
		if len(parsed.RefreshSubscriptions) > 0 {
			// A duplicate needs no Stripe read, and must be a 200 even
			// while Stripe is unreachable.
			if _, err := s.store.FindWebhookEvent(ctx, p.ID, env, ev.ID); err == nil {
				s.countEvent(ev.Type, "duplicate")
				return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Duplicate: ptr(true)}, nil
			} else if billing.ErrorCode(err) != billing.ENOTFOUND {
				return nil, s.notStored(ctx, p.ID, ev.ID, err)
			}
			subs, err := s.readSubscriptions(ctx, p.ID, env, st, parsed.RefreshSubscriptions)
			if err != nil {
				s.logger.WarnContext(ctx, "webhook event not stored: subscription read failed",
					"project_id", p.ID, "event_id", ev.ID, "error", err.Error())
				return nil, billing.Errorf(billing.EUNAVAILABLE, "Stripe could not be reached; Stripe will retry the event.")
			}
			change.Subscriptions = append(change.Subscriptions, subs...)
		}
		ev.Status = billing.EventApplied
		if change.Empty() {
			ev.Status = billing.EventIgnored
		}
	}
	res, err := s.store.ApplyEvent(ctx, ev, change)
	if err != nil {
		return nil, s.notStored(ctx, p.ID, ev.ID, err)
	}
	if res.Duplicate {
		s.countEvent(ev.Type, "duplicate")
		return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Duplicate: ptr(true)}, nil
	}
	if reread := s.toReread(st, change, res.Ties); len(reread) > 0 {
		s.resolveTies(ctx, p.ID, env, st, change, reread)
	}
	s.changed(ctx, mirrorKey(p.ID, env))
	s.countEvent(ev.Type, ev.Status)
	return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Status: ptr(gen.WebhookAckStatus(ev.Status))}, nil
}

// countEvent counts a webhook event by type and outcome (received,
// applied, ignored, failed, duplicate, rejected).
func (s *Server) countEvent(typ, outcome string) {
	if s.metrics == nil {
		return
	}
	if typ == "" {
		typ = "unknown"
	}
	s.metrics.WebhookEvents.WithLabelValues(typ, outcome).Inc()
}

// readSubscriptions reads from Stripe the subscriptions an event names
// without carrying them. One that Stripe does not have (or does not show
// with this key) is skipped; any other failure is returned, and the event
// should be retried.
func (s *Server) readSubscriptions(ctx context.Context, projectID string, env billing.Environment, st *billing.StripeSettings, ids []string) ([]billing.Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, stripeReadTimeout)
	defer cancel()
	client := s.stripe.Client(projectID, env, st.SecretKey)
	var out []billing.Subscription
	for _, id := range ids {
		sub, err := client.GetSubscription(ctx, id)
		switch billing.ErrorCode(err) {
		case "":
			sub.ProjectID, sub.Environment = projectID, env
			out = append(out, *sub)
		case billing.ENOTFOUND, billing.EINVALID, billing.EFORBIDDEN:
			s.logger.WarnContext(ctx, "subscription refresh skipped", "project_id", projectID, "subscription", id, "error", err.Error())
		default:
			return nil, err
		}
	}
	return out, nil
}

// notStored logs why an event could not be stored and returns the 503 that
// makes Stripe deliver it again.
func (s *Server) notStored(ctx context.Context, projectID, eventID string, err error) error {
	s.logger.ErrorContext(ctx, "webhook event not stored", "project_id", projectID, "event_id", eventID, "error", err.Error())
	return billing.Errorf(billing.EUNAVAILABLE, "The event could not be stored; Stripe will retry.")
}

// transient turns an internal error (the database failing) into the 503
// that makes Stripe deliver the event again; the service's own errors pass.
func (s *Server) transient(ctx context.Context, err error) error {
	if billing.ErrorCode(err) != billing.EINTERNAL {
		return err
	}
	s.logger.ErrorContext(ctx, "webhook event not received", "error", err.Error())
	return billing.Errorf(billing.EUNAVAILABLE, "The event could not be received; Stripe will retry.")
}

// toReread returns the ids of the objects to re-read from Stripe after an
// event is stored: the same-second ties, or, when the project asks for it,
// every subscription and customer the event wrote.
func (s *Server) toReread(st *billing.StripeSettings, change billing.MirrorChange, ties []string) []string {
	if !st.RefetchObjects {
		return ties
	}
	ids := make([]string, 0, len(change.Subscriptions)+len(change.Customers))
	for _, sub := range change.Subscriptions {
		ids = append(ids, sub.ID)
	}
	for _, c := range change.Customers {
		ids = append(ids, c.ID)
	}
	return ids
}

// resolveTies re-reads from Stripe the objects whose stored state is exactly
// as recent as the event's (same second): the read is the truth and wins.
func (s *Server) resolveTies(ctx context.Context, projectID string, env billing.Environment, st *billing.StripeSettings, change billing.MirrorChange, ties []string) {
	ctx, cancel := context.WithTimeout(ctx, stripeReadTimeout)
	defer cancel()
	client := s.stripe.Client(projectID, env, st.SecretKey)
	tied := make(map[string]bool, len(ties))
	for _, id := range ties {
		tied[id] = true
	}
	var fresh billing.MirrorChange
	for _, sub := range change.Subscriptions {
		if !tied[sub.ID] {
			continue
		}
		got, err := client.GetSubscription(ctx, sub.ID)
		if err != nil {
			s.logger.WarnContext(ctx, "tie re-read failed", "project_id", projectID, "object", sub.ID, "error", err.Error())
			continue
		}
		got.ProjectID, got.Environment = projectID, env
		fresh.Subscriptions = append(fresh.Subscriptions, *got)
	}
	for _, c := range change.Customers {
		if !tied[c.ID] {
			continue
		}
		got, err := client.GetCustomer(ctx, c.ID)
		if err != nil {
			s.logger.WarnContext(ctx, "tie re-read failed", "project_id", projectID, "object", c.ID, "error", err.Error())
			continue
		}
		got.ProjectID, got.Environment, got.EventAt = projectID, env, s.now()
		fresh.Customers = append(fresh.Customers, *got)
	}
	if fresh.Empty() {
		return
	}
	if err := s.store.UpsertFromStripe(ctx, projectID, env, fresh); err != nil {
		s.logger.WarnContext(ctx, "tie re-read not stored", "project_id", projectID, "error", err.Error())
	}
}

// ListWebhookEvents lists the project's received events, newest first.
func (s *Server) ListWebhookEvents(ctx context.Context, req gen.ListWebhookEventsRequestObject) (gen.ListWebhookEventsResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	limit := 10
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	evs, more, err := s.store.ListWebhookEvents(ctx, p.ID, envOf(req.Params.Environment), limit, deref(req.Params.StartingAfter))
	if err != nil {
		return nil, err
	}
	out := gen.ListWebhookEvents200JSONResponse{Object: gen.WebhookEventListObjectList, HasMore: more, Data: make([]gen.WebhookEvent, 0, len(evs))}
	for _, ev := range evs {
		out.Data = append(out.Data, gen.WebhookEvent{
			Id:         ev.ID,
			Type:       ev.Type,
			ApiVersion: optional(ev.APIVersion),
			Status:     gen.WebhookEventStatus(ev.Status),
			Error:      optional(ev.Error),
			Created:    ev.Created.UTC(),
			ReceivedAt: ev.ReceivedAt.UTC(),
		})
	}
	return out, nil
}
