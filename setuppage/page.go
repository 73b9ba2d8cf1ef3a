// Package setuppage serves /setup: a person signs in with a project's four
// credentials and manages its Stripe keys and buyer-token settings in a
// browser. It knows no storage and no HTTP API: it talks to the billing
// service through Service and keeps sign-ins through Sessions, shared by
// every instance, so that signing out ends a session everywhere. No secret
// is ever written into the page, a URL or browser storage.
package setuppage

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
)

//go:embed setup.html
var pageHTML string

// Credentials are the four values a person signs in with.
type Credentials struct {
	APIKey, SecretKey, TenantID, ProjectID string
}

// Service is what the page needs of the billing service. Errors are
// *billing.Error values; EINVALID ones name the field at fault in Param and
// are shown beside it.
type Service interface {
	// SignIn returns the project the credentials name, for a person at
	// the client address addr. It returns EUNAUTHORIZED when they are not
	// valid and ERATELIMITED when addr failed too often.
	SignIn(ctx context.Context, addr string, c Credentials) (*billing.Project, error)
	// FindProject returns a project by id, or ENOTFOUND.
	FindProject(ctx context.Context, id string) (*billing.Project, error)
	// StripeSetup returns what is configured for one environment, masked.
	StripeSetup(ctx context.Context, projectID string, env billing.Environment) (gen.StripeSetup, error)
	// AuthSetup returns the buyer-token settings, the secret masked.
	AuthSetup(ctx context.Context, projectID string) (gen.AuthSetup, error)
	// SaveStripeSettings validates and stores one environment's keys.
	SaveStripeSettings(ctx context.Context, st billing.StripeSettings) error
	// SaveAuthSettings validates and stores the buyer-token settings.
	SaveAuthSettings(ctx context.Context, a billing.AuthSettings) error
}

// Sessions keeps the signed-in sessions where every instance sees them.
// Sessions are found by the SHA-256 of their token, never the token itself.
type Sessions interface {
	// CreateSetupSession stores a new session.
	CreateSetupSession(ctx context.Context, s billing.SetupSession) error
	// FindSetupSession returns a session that has not expired, or
	// ENOTFOUND.
	FindSetupSession(ctx context.Context, tokenHash []byte) (*billing.SetupSession, error)
	// DeleteSetupSession ends a session; an unknown one is not an error.
	DeleteSetupSession(ctx context.Context, tokenHash []byte) error
}

// Config configures the page.
type Config struct {
	Service  Service
	Sessions Sessions
	// Key (at least 32 bytes) derives the sign-in form and the sessions'
	// form tokens.
	Key []byte
	// Now is the clock (default time.Now).
	Now func() time.Time
}

const (
	sessionCookie   = "billing_setup"
	loginCSRFCookie = "billing_setup_csrf"
	sessionTTL      = 8 * time.Hour
	maxFormValue    = 2048
)

type page struct {
	svc      Service
	sessions Sessions
	key      []byte
	now      func() time.Time
	tmpl     *template.Template
}

// Register adds the /setup routes to e.
func Register(e *echo.Echo, cfg Config) error {
	if len(cfg.Key) < 32 {
		return errors.New("setuppage: Key must be at least 32 bytes")
	}
	if cfg.Service == nil || cfg.Sessions == nil {
		return errors.New("setuppage: Service and Sessions are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tmpl, err := template.New("setup").Parse(pageHTML)
	if err != nil {
		return err
	}
	pg := &page{svc: cfg.Service, sessions: cfg.Sessions, key: cfg.Key, now: cfg.Now, tmpl: tmpl}
	g := e.Group("/setup", headers)
	g.GET("", pg.show)
	g.POST("/login", pg.login, sameOrigin)
	g.POST("/logout", pg.logout, sameOrigin)
	g.POST("/stripe", pg.saveStripe, sameOrigin)
	g.POST("/auth", pg.saveAuth, sameOrigin)
	return nil
}

func headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// sameOrigin refuses form posts from other sites: the Origin (or, without
// it, the Referer) must be this host.
func sameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		src := c.Request().Header.Get("Origin")
		if src == "" || src == "null" {
			src = c.Request().Header.Get("Referer")
		}
		u, err := url.Parse(src)
		if src == "" || err != nil || u.Host != c.Request().Host {
			return billing.Errorf(billing.EFORBIDDEN, "Cross-site form posts are refused.")
		}
		return next(c)
	}
}

// view is what the template shows.
type view struct {
	Project          *billing.Project
	CSRF             string
	Error, Notice    string
	Envs             []envView
	Auth             gen.AuthSetup
	AuthMethod       string
	AuthJWKS         string
	AuthSecret       string
	AuthIssuer       string
	AuthAudience     string
	AuthForm         billing.AuthSettings
	AuthErrorField   string
	AuthErrorMessage string
}

type envView struct {
	Env             billing.Environment
	Setup           gen.StripeSetup
	SecretKey       string
	PublishableKey  string
	WebhookSecret   string
	WebhookURL      string
	LastEvent       string
	FormPublishable string
	ErrorField      string
	ErrorMessage    string
}

func (pg *page) show(c echo.Context) error {
	p, token := pg.session(c)
	if p == nil {
		return pg.renderLogin(c, http.StatusOK, "")
	}
	v := pg.dashboard(c, p, token)
	switch c.QueryParam("saved") {
	case "test", "live":
		v.Notice = "Stripe " + c.QueryParam("saved") + " keys saved."
	case "auth":
		v.Notice = "Buyer-token settings saved."
	}
	return pg.render(c, http.StatusOK, v)
}

func (pg *page) renderLogin(c echo.Context, status int, msg string) error {
	token := randomToken()
	pg.setCookie(c, loginCSRFCookie, token, int(time.Hour.Seconds()))
	return pg.render(c, status, &view{CSRF: token, Error: msg})
}

func (pg *page) login(c echo.Context) error {
	ck, err := c.Cookie(loginCSRFCookie)
	if err != nil || !equal(ck.Value, c.FormValue("csrf")) {
		return pg.renderLogin(c, http.StatusForbidden, "Your sign-in form expired; please try again.")
	}
	creds := Credentials{
		APIKey: strings.TrimSpace(c.FormValue("api_key")), SecretKey: strings.TrimSpace(c.FormValue("secret_key")),
		TenantID: strings.TrimSpace(c.FormValue("tenant_id")), ProjectID: strings.TrimSpace(c.FormValue("project_id")),
	}
	p, err := pg.svc.SignIn(c.Request().Context(), c.RealIP(), creds)
	switch billing.ErrorCode(err) {
	case "":
	case billing.EUNAUTHORIZED:
		return pg.renderLogin(c, http.StatusUnauthorized, "Those credentials are not valid.")
	case billing.ERATELIMITED:
		c.Response().Header().Set("Retry-After", "60")
		return pg.renderLogin(c, http.StatusTooManyRequests, billing.ErrorMessage(err))
	default:
		return err
	}
	token := randomToken()
	err = pg.sessions.CreateSetupSession(c.Request().Context(), billing.SetupSession{
		TokenHash: hashToken(token), ProjectID: p.ID, Fingerprint: Fingerprint(p),
		ExpiresAt: pg.now().Add(sessionTTL),
	})
	if err != nil {
		return err
	}
	pg.setCookie(c, sessionCookie, token, int(sessionTTL.Seconds()))
	pg.setCookie(c, loginCSRFCookie, "", -1)
	return c.Redirect(http.StatusSeeOther, "/setup")
}

func (pg *page) logout(c echo.Context) error {
	if _, token := pg.session(c); token != "" && equal(pg.csrf(token), c.FormValue("csrf")) {
		if err := pg.sessions.DeleteSetupSession(c.Request().Context(), hashToken(token)); err != nil {
			return err
		}
		pg.setCookie(c, sessionCookie, "", -1)
	}
	return c.Redirect(http.StatusSeeOther, "/setup")
}

func (pg *page) saveStripe(c echo.Context) error {
	p, token, err := pg.authorized(c)
	if err != nil {
		return err
	}
	env := billing.Environment(c.FormValue("environment"))
	if !env.Valid() {
		return billing.FieldErrorf("environment", "environment: must be test or live")
	}
	st := billing.StripeSettings{
		ProjectID:      p.ID,
		Environment:    env,
		SecretKey:      strings.TrimSpace(c.FormValue("secret_key")),
		PublishableKey: strings.TrimSpace(c.FormValue("publishable_key")),
		WebhookSecret:  strings.TrimSpace(c.FormValue("webhook_secret")),
	}
	err = formLimits(map[string]string{"secret_key": st.SecretKey, "publishable_key": st.PublishableKey, "webhook_secret": st.WebhookSecret})
	if err == nil {
		err = pg.svc.SaveStripeSettings(c.Request().Context(), st)
	}
	if err != nil {
		var be *billing.Error
		if !errors.As(err, &be) || be.Code != billing.EINVALID {
			return err
		}
		v := pg.dashboard(c, p, token)
		for i := range v.Envs {
			if v.Envs[i].Env == env {
				v.Envs[i].ErrorField, v.Envs[i].ErrorMessage = be.Param, be.Message
				v.Envs[i].FormPublishable = st.PublishableKey
			}
		}
		v.Error = "The " + string(env) + " keys were not saved: " + be.Message
		return pg.render(c, http.StatusBadRequest, v)
	}
	return c.Redirect(http.StatusSeeOther, "/setup?saved="+string(env))
}

func (pg *page) saveAuth(c echo.Context) error {
	p, token, err := pg.authorized(c)
	if err != nil {
		return err
	}
	a := billing.AuthSettings{
		ProjectID:   p.ID,
		JWKSURL:     strings.TrimSpace(c.FormValue("jwks_url")),
		HS256Secret: c.FormValue("hs256_secret"),
		Issuer:      strings.TrimSpace(c.FormValue("issuer")),
		Audience:    strings.TrimSpace(c.FormValue("audience")),
	}
	err = formLimits(map[string]string{"jwks_url": a.JWKSURL, "hs256_secret": a.HS256Secret, "issuer": a.Issuer, "audience": a.Audience})
	if err == nil {
		err = pg.svc.SaveAuthSettings(c.Request().Context(), a)
	}
	if err != nil {
		var be *billing.Error
		if !errors.As(err, &be) || be.Code != billing.EINVALID {
			return err
		}
		v := pg.dashboard(c, p, token)
		a.HS256Secret = ""
		v.AuthForm, v.AuthErrorField, v.AuthErrorMessage = a, be.Param, be.Message
		v.Error = "The buyer-token settings were not saved: " + be.Message
		return pg.render(c, http.StatusBadRequest, v)
	}
	return c.Redirect(http.StatusSeeOther, "/setup?saved=auth")
}

// formLimits keeps form values within the API's bounds: at most
// maxFormValue bytes of UTF-8 without NUL bytes.
func formLimits(fields map[string]string) error {
	for name, v := range fields {
		if len(v) > maxFormValue {
			return billing.FieldErrorf(name, "%s: is too long", name)
		}
		if !utf8Clean(v) {
			return billing.FieldErrorf(name, "%s: must be valid UTF-8 without NUL bytes", name)
		}
	}
	return nil
}

// authorized returns the signed-in project of a form post whose CSRF token
// matches its session.
func (pg *page) authorized(c echo.Context) (*billing.Project, string, error) {
	p, token := pg.session(c)
	if p == nil {
		return nil, "", billing.Errorf(billing.EUNAUTHORIZED, "Sign in again.")
	}
	if !equal(pg.csrf(token), c.FormValue("csrf")) {
		return nil, "", billing.Errorf(billing.EFORBIDDEN, "The form's security token is not valid; reload the page.")
	}
	return p, token, nil
}

func (pg *page) dashboard(c echo.Context, p *billing.Project, token string) *view {
	ctx := c.Request().Context()
	v := &view{Project: p, CSRF: pg.csrf(token)}
	base := requestOrigin(c.Request())
	for _, env := range []billing.Environment{billing.EnvTest, billing.EnvLive} {
		su, err := pg.svc.StripeSetup(ctx, p.ID, env)
		if err != nil {
			su = gen.StripeSetup{Environment: gen.Environment(env)}
		}
		ev := envView{Env: env, Setup: su, WebhookURL: base + su.WebhookUrl,
			SecretKey: deref(su.SecretKey), PublishableKey: deref(su.PublishableKey), WebhookSecret: deref(su.WebhookSecret)}
		if strings.HasPrefix(su.WebhookUrl, "http://") || strings.HasPrefix(su.WebhookUrl, "https://") {
			ev.WebhookURL = su.WebhookUrl
		}
		if su.LastEventAt != nil {
			ev.LastEvent = su.LastEventAt.Format(time.RFC3339)
		}
		v.Envs = append(v.Envs, ev)
	}
	if a, err := pg.svc.AuthSetup(ctx, p.ID); err == nil && a.Configured {
		v.Auth = a
		v.AuthMethod = string(deref(a.Method))
		v.AuthJWKS, v.AuthSecret = deref(a.JwksUrl), deref(a.Hs256Secret)
		v.AuthIssuer, v.AuthAudience = deref(a.Issuer), deref(a.Audience)
		v.AuthForm = billing.AuthSettings{JWKSURL: v.AuthJWKS, Issuer: v.AuthIssuer, Audience: v.AuthAudience}
	}
	return v
}

func (pg *page) render(c echo.Context, status int, v *view) error {
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(status)
	return pg.tmpl.Execute(c.Response(), v)
}

// session returns the signed-in project and the session's token, or nil
// and "". A session whose project's secret was rotated since sign-in has
// ended.
func (pg *page) session(c echo.Context) (*billing.Project, string) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, ""
	}
	ctx := c.Request().Context()
	s, err := pg.sessions.FindSetupSession(ctx, hashToken(ck.Value))
	if err != nil || pg.now().After(s.ExpiresAt) {
		return nil, ""
	}
	p, err := pg.svc.FindProject(ctx, s.ProjectID)
	if err != nil || !equal(Fingerprint(p), s.Fingerprint) {
		return nil, ""
	}
	return p, ck.Value
}

// csrf is the form token bound to one session.
func (pg *page) csrf(token string) string { return pg.mac("csrf|" + token) }

func (pg *page) mac(msg string) string {
	m := hmac.New(sha256.New, pg.key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (pg *page) setCookie(c echo.Context, name, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name: name, Value: value, Path: "/setup", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isHTTPS(c.Request()),
	})
}

// Fingerprint identifies the project's current secret without revealing
// its hash: a session records it, and a rotated secret ends the session.
func Fingerprint(p *billing.Project) string {
	sum := sha256.Sum256(append([]byte("setup|"), p.SecretHash...))
	return hex.EncodeToString(sum[:8])
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte("setup-session|" + token))
	return sum[:]
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// requestOrigin is the scheme and host the browser used.
func requestOrigin(r *http.Request) string {
	if isHTTPS(r) {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func utf8Clean(s string) bool {
	return strings.IndexByte(s, 0) < 0 && strings.ToValidUTF8(s, "\uFFFD") == s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
