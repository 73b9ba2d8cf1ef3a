package server

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/admin"
)

// AdminCreateTenant creates a tenant.
func (s *Server) AdminCreateTenant(ctx context.Context, req gen.AdminCreateTenantRequestObject) (gen.AdminCreateTenantResponseObject, error) {
	t, err := s.admin.CreateTenant(ctx, req.Body.Name)
	if err != nil {
		return nil, err
	}
	return gen.AdminCreateTenant201JSONResponse{Id: t.ID, Name: t.Name}, nil
}

// AdminCreateProject creates a project and returns its credentials once.
func (s *Server) AdminCreateProject(ctx context.Context, req gen.AdminCreateProjectRequestObject) (gen.AdminCreateProjectResponseObject, error) {
	c, err := s.admin.CreateProject(ctx, req.TenantId, req.Body.Name)
	if err != nil {
		return nil, err
	}
	return gen.AdminCreateProject201JSONResponse(credentials(c)), nil
}

// AdminRotateProjectSecret issues a new secret key; the old one stops
// working on this instance at once and on others within the cache TTL.
func (s *Server) AdminRotateProjectSecret(ctx context.Context, req gen.AdminRotateProjectSecretRequestObject) (gen.AdminRotateProjectSecretResponseObject, error) {
	c, err := s.admin.RotateSecret(ctx, req.ProjectId)
	if err != nil {
		return nil, err
	}
	s.changed(ctx, projectKeyOf(&billing.Project{ID: c.ProjectID, APIKey: c.APIKey}))
	return gen.AdminRotateProjectSecret200JSONResponse(credentials(c)), nil
}

func credentials(c *admin.Credentials) gen.ProjectCredentials {
	return gen.ProjectCredentials{TenantId: c.TenantID, ProjectId: c.ProjectID, ApiKey: c.APIKey, SecretKey: c.SecretKey}
}
