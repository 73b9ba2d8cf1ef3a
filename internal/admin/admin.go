// Package admin holds the operator's operations on tenants and projects,
// shared by the admin API and the command line.
package admin

import (
	"context"
	"strings"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
)

// Store is the storage the admin operations need. Lookups that find nothing
// return ENOTFOUND.
type Store interface {
	CreateTenant(ctx context.Context, t *billing.Tenant) error
	CreateProject(ctx context.Context, p *billing.Project) error
	FindProjectByID(ctx context.Context, id string) (*billing.Project, error)
	UpdateProjectSecret(ctx context.Context, projectID string, hash []byte) error
}

// Credentials are a project's ids and keys; SecretKey is shown once.
type Credentials struct {
	TenantID  string `json:"tenant_id"`
	ProjectID string `json:"project_id"`
	APIKey    string `json:"api_key"`
	SecretKey string `json:"secret_key"`
}

// Service performs the admin operations.
type Service struct {
	Store Store
}

// CreateTenant creates a tenant. An empty name is EINVALID.
func (s *Service) CreateTenant(ctx context.Context, name string) (*billing.Tenant, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, billing.FieldErrorf("name", "name: must not be empty")
	}
	id, err := secret.NewID("ten_")
	if err != nil {
		return nil, err
	}
	t := &billing.Tenant{ID: id, Name: name}
	if err := s.Store.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// CreateProject creates a project of the tenant with new credentials.
// An unknown tenant is ENOTFOUND.
func (s *Service) CreateProject(ctx context.Context, tenantID, name string) (*Credentials, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, billing.FieldErrorf("name", "name: must not be empty")
	}
	id, err := secret.NewID("prj_")
	if err != nil {
		return nil, err
	}
	apiKey, err := secret.NewAPIKey()
	if err != nil {
		return nil, err
	}
	sk, err := secret.NewSecretKey()
	if err != nil {
		return nil, err
	}
	p := &billing.Project{ID: id, TenantID: tenantID, Name: name, APIKey: apiKey, SecretHash: secret.HashSecret(sk)}
	if err := s.Store.CreateProject(ctx, p); err != nil {
		return nil, err
	}
	return &Credentials{TenantID: tenantID, ProjectID: id, APIKey: apiKey, SecretKey: sk}, nil
}

// RotateSecret gives the project a new secret key; the old one stops
// working. An unknown project is ENOTFOUND.
func (s *Service) RotateSecret(ctx context.Context, projectID string) (*Credentials, error) {
	p, err := s.Store.FindProjectByID(ctx, projectID)
	if err != nil {
		return nil, err
	}
	sk, err := secret.NewSecretKey()
	if err != nil {
		return nil, err
	}
	if err := s.Store.UpdateProjectSecret(ctx, p.ID, secret.HashSecret(sk)); err != nil {
		return nil, err
	}
	return &Credentials{TenantID: p.TenantID, ProjectID: p.ID, APIKey: p.APIKey, SecretKey: sk}, nil
}
