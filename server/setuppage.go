package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

//go:embed web/setup.html
var webFS embed.FS

const (
	sessionCookie   = "billing_setup"
	loginCSRFCookie = "billing_setup_csrf"
	sessionTTL      = 8 * time.Hour
)

// setupPage serves /setup: a person signs in with the project's four
// credentials and manages its Stripe keys and buyer-token settings. The
// session is a signed cookie (no server state, so any instance serves it);
// no secret is ever written into the page, a URL or browser storage.
type setupPage struct {
	s    *Server
	key  []byte
	tmpl *template.Template
}

type setupSession struct {
	ProjectID   string `json:"p"`
	APIKey      string `json:"k"`
	Fingerprint string `json:"f"` // of the secret hash: a rotated secret ends the session
	Expires     int64  `json:"e"`
}

func (s *Server) setupRoutes(e *echo.Echo, key []byte) error {
	if len(key) < 32 {
		return errors.New("server: SessionKey must be at least 32 bytes")
	}
	tmpl, err := template.ParseFS(webFS, "web/setup.html")
	if err != nil {
		return err
	}
	pg := &setupPage{s: s, key: key, tmpl: tmpl}
	g := e.Group("/setup", pg.headers)
	g.GET("", pg.show)
	g.POST("/login", pg.login, pg.sameOrigin)
	g.POST("/logout", pg.logout, pg.sameOrigin)
	g.POST("/stripe", pg.saveStripe, pg.sameOrigin)
	g.POST("/auth", pg.saveAuth, pg.sameOrigin)
	return nil
}

func (pg *setupPage) headers(next echo.HandlerFunc) echo.HandlerFunc {
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
func (pg *setupPage) sameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
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

func (pg *setupPage) show(c echo.Context) error {
	p, sess := pg.session(c)
	if p == nil {
		return pg.renderLogin(c, http.StatusOK, "")
	}
	v := pg.dashboard(c, p, sess)
	switch c.QueryParam("saved") {
	case "test", "live":
		v.Notice = "Stripe " + c.QueryParam("saved") + " keys saved."
	case "auth":
		v.Notice = "Buyer-token settings saved."
	}
	return pg.render(c, http.StatusOK, v)
}

func (pg *setupPage) renderLogin(c echo.Context, status int, msg string) error {
	token := randomToken()
	pg.setCookie(c, loginCSRFCookie, token, int(time.Hour.Seconds()))
	return pg.render(c, status, &view{CSRF: token, Error: msg})
}

func (pg *setupPage) login(c echo.Context) error {
	ck, err := c.Cookie(loginCSRFCookie)
	if err != nil || !equal(ck.Value, c.FormValue("csrf")) {
		return pg.renderLogin(c, http.StatusForbidden, "Your sign-in form expired; please try again.")
	}
	p, err := pg.s.authenticate(c.Request().Context(),
		strings.TrimSpace(c.FormValue("api_key")), strings.TrimSpace(c.FormValue("secret_key")),
		strings.TrimSpace(c.FormValue("tenant_id")), strings.TrimSpace(c.FormValue("project_id")))
	if err != nil {
		if billing.ErrorCode(err) != billing.EUNAUTHORIZED {
			return err
		}
		return pg.renderLogin(c, http.StatusUnauthorized, "Those credentials are not valid.")
	}
	sess := setupSession{ProjectID: p.ID, APIKey: p.APIKey, Fingerprint: fingerprint(p), Expires: pg.s.now().Add(sessionTTL).Unix()}
	pg.setCookie(c, sessionCookie, pg.sign(sess), int(sessionTTL.Seconds()))
	pg.setCookie(c, loginCSRFCookie, "", -1)
	return c.Redirect(http.StatusSeeOther, "/setup")
}

func (pg *setupPage) logout(c echo.Context) error {
	if _, sess := pg.session(c); sess != "" && equal(pg.csrf(sess), c.FormValue("csrf")) {
		pg.setCookie(c, sessionCookie, "", -1)
	}
	return c.Redirect(http.StatusSeeOther, "/setup")
}

func (pg *setupPage) saveStripe(c echo.Context) error {
	p, sess, err := pg.authorized(c)
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
		err = pg.s.saveStripeSettings(actorContext(c, p), st)
	}
	if err != nil {
		var be *billing.Error
		if !errors.As(err, &be) || be.Code != billing.EINVALID {
			return err
		}
		v := pg.dashboard(c, p, sess)
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

func (pg *setupPage) saveAuth(c echo.Context) error {
	p, sess, err := pg.authorized(c)
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
		err = pg.s.saveAuthSettings(actorContext(c, p), a)
	}
	if err != nil {
		var be *billing.Error
		if !errors.As(err, &be) || be.Code != billing.EINVALID {
			return err
		}
		v := pg.dashboard(c, p, sess)
		a.HS256Secret = ""
		v.AuthForm, v.AuthErrorField, v.AuthErrorMessage = a, be.Param, be.Message
		v.Error = "The buyer-token settings were not saved: " + be.Message
		return pg.render(c, http.StatusBadRequest, v)
	}
	return c.Redirect(http.StatusSeeOther, "/setup?saved=auth")
}

// formLimits keeps form values within the API's bounds.
func formLimits(fields map[string]string) error {
	for name, v := range fields {
		if len(v) > 2048 {
			return billing.FieldErrorf(name, "%s: is too long", name)
		}
	}
	return nil
}

func actorContext(c echo.Context, p *billing.Project) context.Context {
	ctx := context.WithValue(c.Request().Context(), projectKey, p)
	return billing.WithActor(ctx, "setup-page:"+p.ID)
}

// authorized returns the signed-in project of a form post whose CSRF token
// matches its session.
func (pg *setupPage) authorized(c echo.Context) (*billing.Project, string, error) {
	p, sess := pg.session(c)
	if p == nil {
		return nil, "", billing.Errorf(billing.EUNAUTHORIZED, "Sign in again.")
	}
	if !equal(pg.csrf(sess), c.FormValue("csrf")) {
		return nil, "", billing.Errorf(billing.EFORBIDDEN, "The form's security token is not valid; reload the page.")
	}
	return p, sess, nil
}

func (pg *setupPage) dashboard(c echo.Context, p *billing.Project, sess string) *view {
	ctx := c.Request().Context()
	v := &view{Project: p, CSRF: pg.csrf(sess)}
	base := requestOrigin(c.Request())
	for _, env := range []billing.Environment{billing.EnvTest, billing.EnvLive} {
		st, err := pg.s.store.FindStripeSettings(ctx, p.ID, env)
		if err != nil {
			st = nil
		}
		su := pg.s.stripeSetup(ctx, p.ID, env, st)
		ev := envView{Env: env, Setup: su, WebhookURL: base + su.WebhookUrl,
			SecretKey: deref(su.SecretKey), PublishableKey: deref(su.PublishableKey), WebhookSecret: deref(su.WebhookSecret)}
		if su.LastEventAt != nil {
			ev.LastEvent = su.LastEventAt.Format(time.RFC3339)
		}
		v.Envs = append(v.Envs, ev)
	}
	if a, err := pg.s.store.FindAuthSettings(ctx, p.ID); err == nil {
		v.Auth = authSetup(a)
		v.AuthMethod = string(deref(v.Auth.Method))
		v.AuthJWKS, v.AuthSecret = deref(v.Auth.JwksUrl), deref(v.Auth.Hs256Secret)
		v.AuthIssuer, v.AuthAudience = deref(v.Auth.Issuer), deref(v.Auth.Audience)
		v.AuthForm = billing.AuthSettings{JWKSURL: a.JWKSURL, Issuer: a.Issuer, Audience: a.Audience}
	}
	return v
}

func (pg *setupPage) render(c echo.Context, status int, v *view) error {
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(status)
	return pg.tmpl.Execute(c.Response(), v)
}

// session returns the signed-in project and the raw session value, or nil.
func (pg *setupPage) session(c echo.Context) (*billing.Project, string) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil {
		return nil, ""
	}
	payload, sig, ok := strings.Cut(ck.Value, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(pg.mac("session|"+payload))) {
		return nil, ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	var sess setupSession
	if err != nil || json.Unmarshal(raw, &sess) != nil || pg.s.now().Unix() > sess.Expires {
		return nil, ""
	}
	p, err := pg.s.store.FindProjectByAPIKey(c.Request().Context(), sess.APIKey)
	if err != nil || p.ID != sess.ProjectID || !equal(fingerprint(p), sess.Fingerprint) {
		return nil, ""
	}
	return p, ck.Value
}

func (pg *setupPage) sign(s setupSession) string {
	b, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + pg.mac("session|"+payload)
}

// csrf is the form token bound to one session.
func (pg *setupPage) csrf(session string) string { return pg.mac("csrf|" + session) }

func (pg *setupPage) mac(msg string) string {
	m := hmac.New(sha256.New, pg.key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (pg *setupPage) setCookie(c echo.Context, name, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name: name, Value: value, Path: "/setup", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isHTTPS(c.Request()),
	})
}

func fingerprint(p *billing.Project) string {
	sum := sha256.Sum256(append([]byte("setup|"), p.SecretHash...))
	return hex.EncodeToString(sum[:8])
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomToken() string {
	b := make([]byte, 24)
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
