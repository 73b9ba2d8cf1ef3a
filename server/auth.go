package server

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
)

// errBadCredentials is the one answer to any credential failure, so that it
// never tells which header was wrong.
var errBadCredentials = billing.Errorf(billing.EUNAUTHORIZED,
	"Invalid project credentials: send x-api-key, x-secret-key, x-tenant-id and x-project-id.")

// authClass says which credentials a route needs.
type authClass int

const (
	authNone authClass = iota
	authProject
	authAdmin
)

func classify(path string) authClass {
	switch {
	case strings.HasPrefix(path, "/v1/admin/"):
		return authAdmin
	case strings.HasPrefix(path, "/v1/stripe/webhook/"):
		return authNone
	case strings.HasPrefix(path, "/v1/"):
		return authProject
	}
	return authNone
}

// authMiddleware checks the project's four headers or the admin token,
// depending on the route, and puts the project in the request context.
func (s *Server) authMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch classify(c.Path()) {
		case authAdmin:
			if err := s.checkAdmin(c.Request().Header.Get(echo.HeaderAuthorization)); err != nil {
				return err
			}
			req := c.Request()
			c.SetRequest(req.WithContext(billing.WithActor(req.Context(), "admin")))
		case authProject:
			h := c.Request().Header
			p, err := s.authenticate(c.Request().Context(),
				h.Get("x-api-key"), h.Get("x-secret-key"), h.Get("x-tenant-id"), h.Get("x-project-id"))
			if err != nil {
				return err
			}
			req := c.Request()
			ctx := context.WithValue(req.Context(), projectKey, p)
			ctx = context.WithValue(ctx, authorizationKey, h.Get(echo.HeaderAuthorization))
			c.SetRequest(req.WithContext(billing.WithActor(ctx, "project:"+p.ID)))
		}
		return next(c)
	}
}

func (s *Server) checkAdmin(header string) error {
	if s.adminToken == "" {
		return billing.Errorf(billing.EFORBIDDEN, "The admin API is disabled: set BILLING_ADMIN_TOKEN to enable it.")
	}
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.adminToken)) != 1 {
		return billing.Errorf(billing.EUNAUTHORIZED, "Invalid admin token.")
	}
	return nil
}

// authenticate returns the project the four credentials name. The project is
// cached by API key for a short while; the secret is checked against its hash
// in constant time on every call.
func (s *Server) authenticate(ctx context.Context, apiKey, secretKey, tenantID, projectID string) (*billing.Project, error) {
	if apiKey == "" || secretKey == "" || tenantID == "" || projectID == "" || len(apiKey) > 128 {
		return nil, errBadCredentials
	}
	p, ok := s.projects.get(apiKey)
	if !ok {
		found, err := s.store.FindProjectByAPIKey(ctx, apiKey)
		if billing.ErrorCode(err) == billing.ENOTFOUND {
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
