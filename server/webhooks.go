package server

import (
	"context"
	"errors"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/stripeadapter"
)

// ReceiveStripeWebhook verifies, stores and applies one Stripe event. It
// answers 2xx only once the event is durable; a duplicate is a 200 no-op.
func (s *Server) ReceiveStripeWebhook(ctx context.Context, req gen.ReceiveStripeWebhookRequestObject) (gen.ReceiveStripeWebhookResponseObject, error) {
	env := envOf(req.Params.Environment)
	p, err := s.findProject(ctx, req.ProjectId)
	if err != nil {
		return nil, notFound(err, "projectId", "No such project: "+req.ProjectId+".")
	}
	st, err := s.stripeSettings(ctx, p.ID, env)
	if err != nil && billing.ErrorCode(err) != billing.EFORBIDDEN {
		return nil, err
	}
	if st == nil || st.WebhookSecret == "" {
		return nil, notFound(nil, "environment", "No webhook signing secret is configured for "+string(env)+".")
	}
	raw := rawBodyFromContext(ctx)
	if err := stripeadapter.VerifyWebhook(raw, deref(req.Params.StripeSignature), st.WebhookSecret, s.tolerance); err != nil {
		return nil, err
	}
	parsed, err := stripeadapter.ParseEvent(raw, p.ID, env)
	ev, change := parsed.Event, parsed.Change
	ev.ReceivedAt = s.now()
	switch {
	case errors.Is(err, stripeadapter.ErrUnprocessable):
		ev.Status, ev.Error = billing.EventFailed, err.Error()
		change = billing.MirrorChange{}
		s.logger.WarnContext(ctx, "webhook event could not be applied",
			"project_id", p.ID, "event_id", ev.ID, "type", ev.Type, "error", err.Error())
	case err != nil:
		return nil, err
	default:
		client := s.stripe.Client(p.ID, env, st.SecretKey)
		for _, id := range parsed.RefreshSubscriptions {
			sub, err := client.GetSubscription(ctx, id)
			if err != nil {
				s.logger.WarnContext(ctx, "subscription refresh failed", "project_id", p.ID, "subscription", id, "error", err.Error())
				continue
			}
			sub.ProjectID, sub.Environment = p.ID, env
			change.Subscriptions = append(change.Subscriptions, *sub)
		}
		ev.Status = billing.EventApplied
		if change.Empty() {
			ev.Status = billing.EventIgnored
		}
	}
	res, err := s.store.ApplyEvent(ctx, ev, change)
	if err != nil {
		s.logger.ErrorContext(ctx, "webhook event not stored", "project_id", p.ID, "event_id", ev.ID, "error", err.Error())
		return nil, billing.Errorf(billing.EUNAVAILABLE, "The event could not be stored; Stripe will retry.")
	}
	if res.Duplicate {
		return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Duplicate: ptr(true)}, nil
	}
	if len(res.Ties) > 0 {
		s.resolveTies(ctx, p.ID, env, st, change, res.Ties)
	}
	s.subs.invalidate(envKey{p.ID, env})
	return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Status: ptr(gen.WebhookAckStatus(ev.Status))}, nil
}

// resolveTies re-reads from Stripe the objects whose stored state is exactly
// as recent as the event's (same second): the read is the truth and wins.
func (s *Server) resolveTies(ctx context.Context, projectID string, env billing.Environment, st *billing.StripeSettings, change billing.MirrorChange, ties []string) {
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
