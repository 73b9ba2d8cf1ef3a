package server

import (
	"context"
	"strings"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/setuppage"
)

// GetStripeSetup returns what is configured for the environment, masked.
func (s *Server) GetStripeSetup(ctx context.Context, req gen.GetStripeSetupRequestObject) (gen.GetStripeSetupResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	st, err := s.store.FindStripeSettings(ctx, p.ID, env)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return gen.GetStripeSetup200JSONResponse(s.stripeSetup(ctx, p.ID, env, nil)), nil
	} else if err != nil {
		return nil, err
	}
	return gen.GetStripeSetup200JSONResponse(s.stripeSetup(ctx, p.ID, env, st)), nil
}

// PutStripeSetup stores the environment's Stripe keys after checking that
// each key belongs to that environment.
func (s *Server) PutStripeSetup(ctx context.Context, req gen.PutStripeSetupRequestObject) (gen.PutStripeSetupResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	b := req.Body
	st := billing.StripeSettings{
		ProjectID:      p.ID,
		Environment:    env,
		SecretKey:      strings.TrimSpace(b.SecretKey),
		PublishableKey: strings.TrimSpace(b.PublishableKey),
	}
	if b.WebhookSecret != nil {
		st.WebhookSecret = strings.TrimSpace(*b.WebhookSecret)
	}
	st.RefetchObjects = deref(b.RefetchObjects)
	if err := s.saveStripeSettings(ctx, st); err != nil {
		return nil, err
	}
	saved, err := s.store.FindStripeSettings(ctx, p.ID, env)
	if err != nil {
		return nil, err
	}
	return gen.PutStripeSetup200JSONResponse(s.stripeSetup(ctx, p.ID, env, saved)), nil
}

// saveStripeSettings validates and stores one environment's Stripe keys.
func (s *Server) saveStripeSettings(ctx context.Context, st billing.StripeSettings) error {
	if err := validateStripeKeys(st); err != nil {
		return err
	}
	if err := s.store.PutStripeSettings(ctx, st); err != nil {
		return err
	}
	s.changed(ctx, stripeKeyOf(st.ProjectID, st.Environment))
	return nil
}

// validateStripeKeys applies the prefix rules: test keys only in test, live
// keys only in live.
func validateStripeKeys(st billing.StripeSettings) error {
	env := string(st.Environment)
	other := "live"
	if st.Environment == billing.EnvLive {
		other = "test"
	}
	if !strings.HasPrefix(st.SecretKey, "sk_"+env+"_") && !strings.HasPrefix(st.SecretKey, "rk_"+env+"_") {
		if strings.HasPrefix(st.SecretKey, "sk_"+other+"_") || strings.HasPrefix(st.SecretKey, "rk_"+other+"_") {
			return billing.FieldErrorf("secret_key", "secret_key: a %s key cannot be stored for the %s environment", other, env)
		}
		return billing.FieldErrorf("secret_key", "secret_key: must start with sk_%s_ or rk_%s_", env, env)
	}
	if !strings.HasPrefix(st.PublishableKey, "pk_"+env+"_") {
		if strings.HasPrefix(st.PublishableKey, "pk_"+other+"_") {
			return billing.FieldErrorf("publishable_key", "publishable_key: a %s key cannot be stored for the %s environment", other, env)
		}
		return billing.FieldErrorf("publishable_key", "publishable_key: must start with pk_%s_", env)
	}
	if st.WebhookSecret != "" && !strings.HasPrefix(st.WebhookSecret, "whsec_") {
		return billing.FieldErrorf("webhook_secret", "webhook_secret: must start with whsec_")
	}
	return nil
}

func (s *Server) stripeSetup(ctx context.Context, projectID string, env billing.Environment, st *billing.StripeSettings) gen.StripeSetup {
	out := gen.StripeSetup{
		Environment: gen.Environment(env),
		WebhookUrl:  "/v1/stripe/webhook/" + projectID + "?environment=" + string(env),
	}
	if st == nil {
		return out
	}
	out.Configured = true
	out.RefetchObjects = ptr(st.RefetchObjects)
	out.SecretKey = ptr(secret.Mask(st.SecretKey))
	out.PublishableKey = ptr(st.PublishableKey)
	if st.WebhookSecret != "" {
		out.WebhookSecret = ptr(secret.Mask(st.WebhookSecret))
	}
	if !st.UpdatedAt.IsZero() {
		out.UpdatedAt = ptr(st.UpdatedAt.UTC())
	}
	if evs, _, err := s.store.ListWebhookEvents(ctx, projectID, env, 1, ""); err == nil && len(evs) == 1 {
		out.LastEventAt = ptr(evs[0].ReceivedAt.UTC())
	}
	return out
}

// GetAuthSetup returns the buyer-token settings, the secret masked.
func (s *Server) GetAuthSetup(ctx context.Context, _ gen.GetAuthSetupRequestObject) (gen.GetAuthSetupResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.store.FindAuthSettings(ctx, p.ID)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return gen.GetAuthSetup200JSONResponse{Configured: false}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.GetAuthSetup200JSONResponse(authSetup(a)), nil
}

// PutAuthSetup stores how buyer tokens are verified: a JWKS URL or an HS256
// secret, exactly one.
func (s *Server) PutAuthSetup(ctx context.Context, req gen.PutAuthSetupRequestObject) (gen.PutAuthSetupResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	a := billing.AuthSettings{
		ProjectID:   p.ID,
		JWKSURL:     strings.TrimSpace(deref(b.JwksUrl)),
		HS256Secret: deref(b.Hs256Secret),
		Issuer:      strings.TrimSpace(deref(b.Issuer)),
		Audience:    strings.TrimSpace(deref(b.Audience)),
	}
	if err := s.saveAuthSettings(ctx, a); err != nil {
		return nil, err
	}
	saved, err := s.store.FindAuthSettings(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return gen.PutAuthSetup200JSONResponse(authSetup(saved)), nil
}

// saveAuthSettings validates and stores the buyer-token settings.
func (s *Server) saveAuthSettings(ctx context.Context, a billing.AuthSettings) error {
	switch {
	case a.JWKSURL == "" && a.HS256Secret == "":
		return billing.FieldErrorf("jwks_url", "jwks_url or hs256_secret: one of them is required")
	case a.JWKSURL != "" && a.HS256Secret != "":
		return billing.FieldErrorf("hs256_secret", "jwks_url and hs256_secret: give only one of them")
	case a.HS256Secret != "" && len(a.HS256Secret) < 32:
		return billing.FieldErrorf("hs256_secret", "hs256_secret: must be at least 32 characters")
	}
	if a.JWKSURL != "" {
		if err := s.urls.CheckURL(ctx, a.JWKSURL); err != nil {
			return billing.FieldErrorf("jwks_url", "jwks_url: %s", err.Error())
		}
	}
	if err := s.store.PutAuthSettings(ctx, a); err != nil {
		return err
	}
	s.changed(ctx, authKeyOf(a.ProjectID))
	return nil
}

func authSetup(a *billing.AuthSettings) gen.AuthSetup {
	out := gen.AuthSetup{Configured: true}
	if a.JWKSURL != "" {
		out.Method = ptr(gen.Jwks)
		out.JwksUrl = ptr(a.JWKSURL)
	} else {
		out.Method = ptr(gen.Hs256)
		out.Hs256Secret = ptr(secret.Mask(a.HS256Secret))
	}
	if a.Issuer != "" {
		out.Issuer = ptr(a.Issuer)
	}
	if a.Audience != "" {
		out.Audience = ptr(a.Audience)
	}
	if !a.UpdatedAt.IsZero() {
		out.UpdatedAt = ptr(a.UpdatedAt.UTC())
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// setupService is what the setup page (package setuppage) uses of the
// server: the same validation, storage and cache invalidation as the API.
type setupService struct{ s *Server }

var _ setuppage.Service = setupService{}

// SignIn implements setuppage.Service: a failed sign-in counts against the
// address like any failed authentication.
func (ss setupService) SignIn(ctx context.Context, addr string, c setuppage.Credentials) (*billing.Project, error) {
	s := ss.s
	client := func() string { return addr }
	if err := s.failures.check(client); err != nil {
		return nil, err
	}
	p, err := s.authenticate(ctx, c.APIKey, c.SecretKey, c.TenantID, c.ProjectID)
	if err != nil {
		return nil, s.failed(client, err)
	}
	return p, nil
}

// FindProject implements setuppage.Service.
func (ss setupService) FindProject(ctx context.Context, id string) (*billing.Project, error) {
	return ss.s.store.FindProjectByID(ctx, id)
}

// StripeSetup implements setuppage.Service.
func (ss setupService) StripeSetup(ctx context.Context, projectID string, env billing.Environment) (gen.StripeSetup, error) {
	st, err := ss.s.store.FindStripeSettings(ctx, projectID, env)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		st = nil
	} else if err != nil {
		return gen.StripeSetup{}, err
	}
	return ss.s.stripeSetup(ctx, projectID, env, st), nil
}

// AuthSetup implements setuppage.Service.
func (ss setupService) AuthSetup(ctx context.Context, projectID string) (gen.AuthSetup, error) {
	a, err := ss.s.store.FindAuthSettings(ctx, projectID)
	if billing.ErrorCode(err) == billing.ENOTFOUND {
		return gen.AuthSetup{Configured: false}, nil
	} else if err != nil {
		return gen.AuthSetup{}, err
	}
	return authSetup(a), nil
}

// SaveStripeSettings implements setuppage.Service.
func (ss setupService) SaveStripeSettings(ctx context.Context, st billing.StripeSettings) error {
	return ss.s.saveStripeSettings(billing.WithActor(ctx, "setup-page:"+st.ProjectID), st)
}

// SaveAuthSettings implements setuppage.Service.
func (ss setupService) SaveAuthSettings(ctx context.Context, a billing.AuthSettings) error {
	return ss.s.saveAuthSettings(billing.WithActor(ctx, "setup-page:"+a.ProjectID), a)
}
