package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/present"
)

// GetCustomerSubscription answers from the mirror (see
// mirror.CurrentSubscription): from memory when it can, never older than the
// answer cache's expiry, and changed at once by any change made through the
// service.
func (s *Server) GetCustomerSubscription(ctx context.Context, req gen.GetCustomerSubscriptionRequestObject) (gen.GetCustomerSubscriptionResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	// Like every billing endpoint, an environment without Stripe keys is a
	// 403; the settings are cached, so this costs no query.
	if _, err := s.stripeSettings(ctx, p.ID, env); err != nil {
		return nil, err
	}
	email := billing.NormalizeEmail(string(req.Params.CustomerEmail))
	if email == "" {
		return nil, billing.FieldErrorf("customerEmail", "customerEmail: is required")
	}
	sub, err := s.mirror.CurrentSubscription(ctx, p.ID, env, billing.Who{Email: email})
	if err != nil {
		return nil, err
	}
	return gen.GetCustomerSubscription200JSONResponse{Subscription: present.Subscription(p.TenantID, sub)}, nil
}
