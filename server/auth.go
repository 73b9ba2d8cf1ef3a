package server

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/routes"
	"github.com/stackfordevs/billing/internal/secret"
)

// The answers to credential failures. They say whether credentials were
// missing or not valid, never which of them was wrong.
var (
	errMissingCredentials = billing.Errorf(billing.EUNAUTHORIZED,
		"Project credentials are missing: send x-api-key, x-secret-key, x-tenant-id and x-project-id.")
	errBadCredentials = billing.Errorf(billing.EUNAUTHORIZED, "Project credentials are not valid.")
	errMissingAdmin   = billing.Errorf(billing.EUNAUTHORIZED, "The admin token is missing: send Authorization: Bearer <BILLING_ADMIN_TOKEN>.")
	errBadAdmin       = billing.Errorf(billing.EUNAUTHORIZED, "The admin token is not valid.")
)

// maxCredentialLength bounds each credential header; longer values are not
// valid without a lookup.
const maxCredentialLength = 128

// authMiddleware checks the credentials the matched operation declares in
// openapi.yaml (its `security`), and puts the project, or the admin actor,
// in the request context. A client address that failed too often is
// refused with a 429 before its credentials are looked at.
func (s *Server) authMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, ok := s.routes.Lookup(c.Request().Method, c.Path())
		if !ok || r.Credentials == routes.None {
			return next(c)
		}
		addr := c.RealIP
		if err := s.failures.check(addr); err != nil {
			return err
		}
		req := c.Request()
		h := req.Header
		switch r.Credentials {
		case routes.Admin:
			if err := s.checkAdmin(h.Get(echo.HeaderAuthorization)); err != nil {
				return s.failed(addr, err)
			}
			c.SetRequest(req.WithContext(billing.WithActor(req.Context(), "admin")))
		case routes.Project:
			p, err := s.authenticate(req.Context(),
				h.Get("x-api-key"), h.Get("x-secret-key"), h.Get("x-tenant-id"), h.Get("x-project-id"))
			if err != nil {
				return s.failed(addr, err)
			}
			ctx := context.WithValue(req.Context(), projectKey, p)
			ctx = context.WithValue(ctx, authorizationKey, h.Get(echo.HeaderAuthorization))
			c.SetRequest(req.WithContext(billing.WithActor(ctx, "project:"+p.ID)))
		}
		return next(c)
	}
}

// failed counts an authentication failure of the client address and
// returns err; other errors (the database failing) are returned as they
// are.
func (s *Server) failed(addr func() string, err error) error {
	if billing.ErrorCode(err) == billing.EUNAUTHORIZED {
		s.failures.fail(addr())
	}
	return err
}

func (s *Server) checkAdmin(header string) error {
	if s.adminToken == "" {
		return billing.Errorf(billing.EFORBIDDEN, "The admin API is disabled: set BILLING_ADMIN_TOKEN to enable it.")
	}
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || token == "" {
		return errMissingAdmin
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.adminToken)) != 1 {
		return errBadAdmin
	}
	return nil
}

// authenticate returns the project the four credentials name. The project is
// cached by API key for a short while, and so is an API key that names no
// project; the secret is checked against its hash in constant time on every
// call.
func (s *Server) authenticate(ctx context.Context, apiKey, secretKey, tenantID, projectID string) (*billing.Project, error) {
	if apiKey == "" || secretKey == "" || tenantID == "" || projectID == "" {
		return nil, errMissingCredentials
	}
	if !credential(apiKey) || !credential(secretKey) || !credential(tenantID) || !credential(projectID) {
		return nil, errBadCredentials
	}
	p, ok := s.projects.get(apiKey)
	if !ok {
		if _, unknown := s.unknownKeys.get(apiKey); unknown {
			return nil, errBadCredentials
		}
		found, err := s.store.FindProjectByAPIKey(ctx, apiKey)
		if billing.ErrorCode(err) == billing.ENOTFOUND {
			s.unknownKeys.put(apiKey, struct{}{})
			return nil, errBadCredentials
		} else if err != nil {
			return nil, err
		}
		p = found
		s.projects.put(apiKey, p)
	}
	match := secret.SecretMatches(p.SecretHash, secretKey)
	match = subtle.ConstantTimeCompare([]byte(p.TenantID), []byte(tenantID)) == 1 && match
	match = subtle.ConstantTimeCompare([]byte(p.ID), []byte(projectID)) == 1 && match
	if !match {
		return nil, errBadCredentials
	}
	return p, nil
}

// credential reports whether v can be a credential: printable ASCII of a
// bounded length. Anything else is not valid without a database lookup.
func credential(v string) bool {
	if len(v) > maxCredentialLength {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
