package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/mirror"
)

// ReceiveStripeWebhook verifies, stores and applies one Stripe event through
// the mirror (see mirror.Ingest). It answers 2xx only once the event is
// durable; a duplicate is a 200 no-op.
//
// A signature that does not verify is a 400; an unknown project, or an
// environment without a signing secret, a 404. An event whose object cannot
// be read is stored as failed and acknowledged, since Stripe's retries would
// not change it. When the database or Stripe fails, the event is not stored
// and the answer is a 503, so that Stripe delivers it again.
func (s *Server) ReceiveStripeWebhook(ctx context.Context, req gen.ReceiveStripeWebhookRequestObject) (gen.ReceiveStripeWebhookResponseObject, error) {
	p, err := s.findProject(ctx, req.ProjectId)
	if err != nil {
		return nil, s.transient(ctx, notFound(err, "projectId", "No such project: "+req.ProjectId+"."))
	}
	rcpt, err := s.mirror.Ingest(ctx, mirror.Delivery{ProjectID: p.ID, Environment: envOf(req.Params.Environment),
		Payload: rawBodyFromContext(ctx), Signature: deref(req.Params.StripeSignature)})
	if err != nil {
		return nil, err
	}
	if rcpt.Duplicate {
		return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Duplicate: ptr(true)}, nil
	}
	return gen.ReceiveStripeWebhook200JSONResponse{Received: true, Status: ptr(gen.WebhookAckStatus(rcpt.Status))}, nil
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

// transient turns an internal error (the database failing) into the 503
// that makes Stripe deliver the event again; the service's own errors pass.
func (s *Server) transient(ctx context.Context, err error) error {
	if billing.ErrorCode(err) != billing.EINTERNAL {
		return err
	}
	s.logger.ErrorContext(ctx, "webhook event not received", "error", err.Error())
	return billing.Errorf(billing.EUNAVAILABLE, "The event could not be received; Stripe will retry.")
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
