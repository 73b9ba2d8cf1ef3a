package server

import (
	"context"
	"strings"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/intents"
)

// CreateCheckoutSession creates a Stripe Checkout Session for the buyer and
// records it as the project's and the buyer's.
func (s *Server) CreateCheckoutSession(ctx context.Context, req gen.CreateCheckoutSessionRequestObject) (gen.CreateCheckoutSessionResponseObject, error) {
	b := req.Body
	if err := checkCheckoutRequest(b); err != nil {
		return nil, err
	}
	bc, err := s.startBuyerCall(ctx, req.Params.Environment, b.Customer)
	if err != nil {
		return nil, err
	}
	p, env, claims, client := bc.project, bc.env, bc.claims, bc.client
	md := taggedMetadata(p, b.Metadata)
	md["user_id"] = claims.Subject
	params := billing.CheckoutSessionParams{
		Mode:                string(b.Mode),
		SuccessURL:          b.SuccessUrl,
		CancelURL:           deref(b.CancelUrl),
		Customer:            deref(b.Customer),
		Currency:            strings.ToLower(deref(b.Currency)),
		AllowPromotionCodes: b.AllowPromotionCodes,
		TrialPeriodDays:     b.TrialPeriodDays,
		ClientReferenceID:   claims.Subject,
		Metadata:            md,
	}
	if b.CustomerEmail != nil {
		params.CustomerEmail = string(*b.CustomerEmail)
	}
	if b.LineItems != nil {
		for _, li := range *b.LineItems {
			params.LineItems = append(params.LineItems, billing.LineItem{Price: li.Price, Quantity: li.Quantity})
		}
	}
	if params.Mode == "subscription" {
		params.SubscriptionMetadata = md
	}
	var rec billing.CheckoutSession
	out, err := s.intents.Do(ctx, intents.Request{
		ProjectID: p.ID, Environment: env, Operation: intents.CheckoutSessionCreate, UserID: claims.Subject,
		IdempotencyKey: deref(req.Params.IdempotencyKey), Params: params,
	}, func(ctx context.Context, key string) (string, any, error) {
		cs, err := client.CreateCheckoutSession(ctx, params, key)
		if err != nil {
			return "", nil, createError(err)
		}
		rec = s.sessionRecord(cs, p, env, claims.Subject, params)
		return cs.ID, rec, nil
	})
	if err != nil {
		return nil, err
	}
	if out.Replayed {
		found, err := s.store.FindCheckoutSession(ctx, p.ID, env, out.ObjectID)
		if err != nil {
			return nil, err
		}
		rec = *found
	}
	return gen.CreateCheckoutSession200JSONResponse(checkoutJSON(&rec)), nil
}

// sessionRecord is the record of a session Stripe created for the buyer:
// Stripe's answer, with what was sent where Stripe left a field empty.
func (s *Server) sessionRecord(cs *billing.CheckoutSession, p *billing.Project, env billing.Environment, userID string, params billing.CheckoutSessionParams) billing.CheckoutSession {
	rec := *cs
	rec.ProjectID, rec.Environment, rec.UserID = p.ID, env, userID
	if rec.Mode == "" {
		rec.Mode = params.Mode
	}
	if rec.CustomerID == "" {
		rec.CustomerID = params.Customer
	}
	if rec.CustomerEmail == "" {
		rec.CustomerEmail = params.CustomerEmail
	}
	if rec.Created.IsZero() {
		rec.Created = s.now()
	}
	return rec
}

// checkCheckoutRequest applies the rules the schema cannot express.
func checkCheckoutRequest(b *gen.CreateCheckoutSessionRequest) error {
	mode := string(b.Mode)
	if mode != "setup" && (b.LineItems == nil || len(*b.LineItems) == 0) {
		return billing.FieldErrorf("line_items", "line_items: required in %s mode", mode)
	}
	if mode == "setup" && b.LineItems != nil && len(*b.LineItems) > 0 {
		return billing.FieldErrorf("line_items", "line_items: not allowed in setup mode")
	}
	if mode == "setup" && b.Currency == nil {
		return billing.FieldErrorf("currency", "currency: required in setup mode")
	}
	if b.TrialPeriodDays != nil && mode != "subscription" {
		return billing.FieldErrorf("trial_period_days", "trial_period_days: only allowed in subscription mode")
	}
	if b.Customer != nil && b.CustomerEmail != nil {
		return billing.FieldErrorf("customer_email", "customer_email: give either customer or customer_email, not both")
	}
	return checkMetadata(b.Metadata)
}

// GetCheckoutSession returns the status of a session of this project and
// buyer, fresh from Stripe, recorded through the mirror. A completed
// subscription session also refreshes the subscription in the mirror, so a
// success page sees it before the webhook arrives.
func (s *Server) GetCheckoutSession(ctx context.Context, req gen.GetCheckoutSessionRequestObject) (gen.GetCheckoutSessionResponseObject, error) {
	bc, err := s.startBuyerCall(ctx, req.Params.Environment, nil)
	if err != nil {
		return nil, err
	}
	rec, err := s.store.FindCheckoutSession(ctx, bc.project.ID, bc.env, req.Id)
	if err != nil {
		return nil, notFound(err, "id", "No such checkout session: "+req.Id+".")
	}
	if rec.UserID != bc.claims.Subject {
		return nil, notFound(nil, "id", "No such checkout session: "+req.Id+".")
	}
	upd, err := s.mirror.RefreshCheckoutSession(ctx, rec)
	if err != nil {
		return nil, err
	}
	return gen.GetCheckoutSession200JSONResponse(checkoutJSON(upd)), nil
}

func checkoutJSON(cs *billing.CheckoutSession) gen.CheckoutSession {
	out := gen.CheckoutSession{
		Id:            cs.ID,
		Object:        gen.CheckoutSessionObjectCheckoutSession,
		Mode:          gen.CheckoutSessionMode(cs.Mode),
		Status:        optional(cs.Status),
		PaymentStatus: optional(cs.PaymentStatus),
		Customer:      optional(cs.CustomerID),
		CustomerEmail: optional(cs.CustomerEmail),
		Subscription:  optional(cs.SubscriptionID),
		PaymentIntent: optional(cs.PaymentIntentID),
		Currency:      optional(cs.Currency),
		Url:           optional(cs.URL),
	}
	if cs.AmountTotal != 0 {
		out.AmountTotal = ptr(cs.AmountTotal)
	}
	return out
}

// CreatePaymentIntent creates a PaymentIntent with automatic payment methods
// and returns its client secret with the project's publishable key.
func (s *Server) CreatePaymentIntent(ctx context.Context, req gen.CreatePaymentIntentRequestObject) (gen.CreatePaymentIntentResponseObject, error) {
	b := req.Body
	if err := checkMetadata(b.Metadata); err != nil {
		return nil, err
	}
	bc, err := s.startBuyerCall(ctx, req.Params.Environment, b.Customer)
	if err != nil {
		return nil, err
	}
	p, env, claims, client, st := bc.project, bc.env, bc.claims, bc.client, bc.settings
	md := taggedMetadata(p, b.Metadata)
	md["user_id"] = claims.Subject
	params := billing.PaymentIntentParams{
		Amount:      b.Amount,
		Currency:    strings.ToLower(b.Currency),
		Description: deref(b.Description),
		Customer:    deref(b.Customer),
		Metadata:    md,
	}
	if b.ReceiptEmail != nil {
		params.ReceiptEmail = string(*b.ReceiptEmail)
	}
	var pi *billing.PaymentIntent
	out, err := s.intents.Do(ctx, intents.Request{
		ProjectID: p.ID, Environment: env, Operation: intents.PaymentIntentCreate, UserID: claims.Subject,
		IdempotencyKey: deref(req.Params.IdempotencyKey), Params: params,
	}, func(ctx context.Context, key string) (string, any, error) {
		var err error
		if pi, err = client.CreatePaymentIntent(ctx, params, key); err != nil {
			return "", nil, createError(err)
		}
		return pi.ID, billing.PaymentIntent{
			ID: pi.ID, ProjectID: p.ID, Environment: env, UserID: claims.Subject,
			CustomerID: params.Customer, Amount: params.Amount, Currency: params.Currency,
			Description: params.Description, ReceiptEmail: params.ReceiptEmail, Status: pi.Status,
			CreatedAt: s.now(),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	if out.Replayed {
		// The client secret is never stored: read it from Stripe.
		if pi, err = client.GetPaymentIntent(ctx, out.ObjectID); err != nil {
			return nil, err
		}
	}
	return gen.CreatePaymentIntent200JSONResponse{
		ClientSecret:    pi.ClientSecret,
		PaymentIntentId: pi.ID,
		Status:          pi.Status,
		PublishableKey:  st.PublishableKey,
		Amount:          ptr(params.Amount),
		Currency:        ptr(params.Currency),
	}, nil
}

// CreatePortalSession opens Stripe's customer portal for a customer of this
// project that belongs to the buyer.
func (s *Server) CreatePortalSession(ctx context.Context, req gen.CreatePortalSessionRequestObject) (gen.CreatePortalSessionResponseObject, error) {
	bc, err := s.startBuyerCall(ctx, req.Params.Environment, &req.Body.Customer)
	if err != nil {
		return nil, err
	}
	b := req.Body
	var url string
	out, err := s.intents.Do(ctx, intents.Request{
		ProjectID: bc.project.ID, Environment: bc.env, Operation: intents.PortalSessionCreate, UserID: bc.claims.Subject,
		IdempotencyKey: deref(req.Params.IdempotencyKey), Params: b,
	}, func(ctx context.Context, key string) (string, any, error) {
		// A portal session's URL opens the customer's portal: it is not
		// recorded, and the intent completes without an object id.
		var err error
		url, err = bc.client.CreatePortalSession(ctx, b.Customer, b.ReturnUrl, key)
		return "", nil, err
	})
	if err != nil {
		return nil, err
	}
	if out.Replayed {
		// A portal session cannot be read back; asking again with the same
		// key gets Stripe's same answer while Stripe keeps it, and a
		// fresh short-lived session after that.
		if url, err = bc.client.CreatePortalSession(ctx, b.Customer, b.ReturnUrl, out.Key); err != nil {
			return nil, err
		}
	}
	return gen.CreatePortalSession200JSONResponse{Url: url}, nil
}
