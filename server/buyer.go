package server

import (
	"context"
	"errors"
	"strings"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/stripeadapter"
)

// buyer verifies the buyer token of a request with the project's settings.
// No settings is EFORBIDDEN; a missing or invalid token is EUNAUTHORIZED.
func (s *Server) buyer(ctx context.Context, p *billing.Project) (buyertoken.Claims, error) {
	a, err := s.authSettings(ctx, p.ID)
	if err != nil {
		return buyertoken.Claims{}, err
	}
	h, _ := ctx.Value(authorizationKey).(string)
	h = strings.TrimSpace(h)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return buyertoken.Claims{}, billing.Errorf(billing.EUNAUTHORIZED,
			"A buyer token is required: send Authorization: Bearer <JWT>.")
	}
	return s.verifier.Verify(ctx, *a, strings.TrimSpace(token))
}

func (s *Server) authSettings(ctx context.Context, projectID string) (*billing.AuthSettings, error) {
	if a, ok := s.authCfg.get(projectID); ok {
		return a, nil
	}
	a, err := s.store.FindAuthSettings(ctx, projectID)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return nil, billing.Errorf(billing.EFORBIDDEN,
			"Buyer token verification is not configured for this project; configure it with PUT /v1/setup/auth.")
	} else if err != nil {
		return nil, err
	}
	s.authCfg.put(projectID, a)
	return a, nil
}

// ownsCustomer reports whether a customer belongs to the buyer: created
// through the buyer's checkout, tagged with the buyer's user id, or sharing
// the buyer's email, when the token does not say that email is unverified.
func ownsCustomer(c *billing.Customer, b buyertoken.Claims) bool {
	if b.Subject != "" && (c.UserID == b.Subject || c.Metadata["user_id"] == b.Subject) {
		return true
	}
	return b.EmailOwned() && c.Email != "" && billing.NormalizeEmail(c.Email) == billing.NormalizeEmail(b.Email)
}

// buyerCustomer returns a customer of the project that belongs to the
// buyer; any other is ENOTFOUND, never another buyer's data.
func (s *Server) buyerCustomer(ctx context.Context, p *billing.Project, env billing.Environment, id string, b buyertoken.Claims) (*billing.Customer, error) {
	c, err := s.store.FindCustomer(ctx, p.ID, env, id)
	if err != nil {
		return nil, notFound(err, "customer", "No such customer: "+id+".")
	}
	if !ownsCustomer(c, b) {
		return nil, notFound(nil, "customer", "No such customer: "+id+".")
	}
	return c, nil
}

// notFound turns a not-found (or a nil err, meaning "not yours") into the
// caller-facing 404 naming the parameter; other errors pass through.
func notFound(err error, param, msg string) error {
	if err != nil && billing.ErrorCode(err) != billing.ENOTFOUND {
		return err
	}
	return &billing.Error{Code: billing.ENOTFOUND, Param: param, Message: msg}
}

// createError turns Stripe's "not found" answer to a create into a 400
// keeping Stripe's message, param and code: what is missing is an object the
// request named (a price, a customer), which is bad input, as Stripe itself
// answers it.
func createError(err error) error {
	var be *billing.Error
	if errors.As(err, &be) && be.Code == billing.ENOTFOUND {
		out := *be
		out.Code = billing.EINVALID
		return &out
	}
	return err
}

// buyerCall is what every buyer endpoint works with: the project, the
// environment, the verified buyer and the environment's Stripe client.
type buyerCall struct {
	project  *billing.Project
	env      billing.Environment
	claims   buyertoken.Claims
	client   *stripeadapter.Client
	settings *billing.StripeSettings
}

// startBuyerCall authenticates the buyer (401/403), loads the environment's
// Stripe client (403 when not configured) and, when the request names a
// customer, checks that it belongs to this project and buyer (404).
func (s *Server) startBuyerCall(ctx context.Context, env *gen.Environment, customer *string) (*buyerCall, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	bc := &buyerCall{project: p, env: envOf(env)}
	if bc.claims, err = s.buyer(ctx, p); err != nil {
		return nil, err
	}
	if bc.client, bc.settings, err = s.stripeClient(ctx, p, bc.env); err != nil {
		return nil, err
	}
	if customer != nil {
		if _, err := s.buyerCustomer(ctx, p, bc.env, *customer, bc.claims); err != nil {
			return nil, err
		}
	}
	return bc, nil
}
