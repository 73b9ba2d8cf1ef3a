package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stackfordevs/billing/gen"
)

func TestAdmin(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		t.Run("CreateTenantAndProject", func(t *testing.T) {
			tenant := e.newTenant(t)
			resp, err := e.API.AdminCreateProjectWithResponse(ctx, tenant, gen.NameRequest{Name: "My App"}, admin)
			if err != nil || resp.JSON201 == nil {
				t.Fatalf("got %v %s, want 201", err, body(resp))
			}
			c := resp.JSON201
			if c.TenantId != tenant || !strings.HasPrefix(c.ProjectId, "prj_") || !strings.HasPrefix(c.ApiKey, "pk_") || len(c.SecretKey) < 43 {
				t.Errorf("got credentials %+v", c)
			}
			e.secret(c.SecretKey)
		})
		t.Run("ErrUnknownTenant", func(t *testing.T) {
			resp, _ := e.API.AdminCreateProjectWithResponse(ctx, "ten_missing", gen.NameRequest{Name: "x"}, admin)
			if resp.StatusCode() != http.StatusNotFound {
				t.Errorf("got %s, want 404", body(resp))
			}
		})
		t.Run("ErrEmptyName", func(t *testing.T) {
			resp, _ := e.API.AdminCreateTenantWithResponse(ctx, gen.NameRequest{Name: ""}, admin)
			if resp.StatusCode() != http.StatusBadRequest || resp.JSON400.Error.Param == nil || *resp.JSON400.Error.Param != "name" {
				t.Errorf("got %s, want 400 naming name", body(resp))
			}
			resp, _ = e.API.AdminCreateTenantWithResponse(ctx, gen.NameRequest{Name: "   "}, admin)
			if resp.StatusCode() != http.StatusBadRequest {
				t.Errorf("blank name: got %s, want 400", body(resp))
			}
		})
		t.Run("ErrAdminToken", func(t *testing.T) {
			for name, h := range map[string]string{"missing": "", "wrong": "Bearer nope", "basic": "Basic " + adminToken} {
				resp, _ := e.do(t, "POST", "/v1/admin/tenants", http.Header{"Authorization": {h}}, strings.NewReader(`{"name":"x"}`))
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s token: got %d, want 401", name, resp.StatusCode)
				}
			}
		})
		t.Run("RotateSecret", func(t *testing.T) {
			p := e.newProject(t, "")
			resp, err := e.API.AdminRotateProjectSecretWithResponse(ctx, p.ProjectID, admin)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("rotate: %v %s", err, body(resp))
			}
			old := p.SecretKey
			p.SecretKey = resp.JSON200.SecretKey
			e.secret(p.SecretKey)
			if p.SecretKey == old {
				t.Fatal("rotation returned the same secret")
			}
			got, _ := e.API.GetAuthSetupWithResponse(ctx, p.creds)
			if got.StatusCode() != http.StatusOK {
				t.Errorf("new secret: got %s, want 200", body(got))
			}
			p.SecretKey = old
			got, _ = e.API.GetAuthSetupWithResponse(ctx, p.creds)
			if got.StatusCode() != http.StatusUnauthorized {
				t.Errorf("old secret: got %s, want 401", body(got))
			}
		})
		t.Run("ErrRotateUnknownProject", func(t *testing.T) {
			resp, _ := e.API.AdminRotateProjectSecretWithResponse(ctx, "prj_missing", admin)
			if resp.StatusCode() != http.StatusNotFound {
				t.Errorf("got %s, want 404", body(resp))
			}
		})
	})
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		resp, _ := e.do(t, "POST", "/v1/admin/tenants", http.Header{"Authorization": {"Bearer "}}, strings.NewReader(`{"name":"x"}`))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("got %d, want 403", resp.StatusCode)
		}
	}, func(c *serverConfig) { c.AdminToken = "" })
}

func TestProjectCredentials(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		p := e.newProject(t, "")
		other := e.newProject(t, "")
		ok, _ := e.do(t, "GET", "/v1/setup/auth", p.headers(), nil)
		if ok.StatusCode != http.StatusOK {
			t.Fatalf("valid credentials: got %d, want 200", ok.StatusCode)
		}
		// One message for missing credentials and one for credentials
		// that are not valid; neither says which header was wrong.
		missing := map[string]bool{"NoAPIKey": true, "NoSecret": true, "NoTenant": true, "NoProject": true}
		msgs := map[bool]string{}
		cases := map[string]http.Header{
			"NoAPIKey":         p.headers("x-api-key", ""),
			"NoSecret":         p.headers("x-secret-key", ""),
			"NoTenant":         p.headers("x-tenant-id", ""),
			"NoProject":        p.headers("x-project-id", ""),
			"WrongSecret":      p.headers("x-secret-key", p.SecretKey+"x"),
			"OtherSecret":      p.headers("x-secret-key", other.SecretKey),
			"OtherTenant":      p.headers("x-tenant-id", other.TenantID),
			"OtherProject":     p.headers("x-project-id", other.ProjectID),
			"UnknownAPIKey":    p.headers("x-api-key", "pk_unknown"),
			"OtherProjectsKey": p.headers("x-api-key", other.APIKey),
		}
		for name, h := range cases {
			t.Run(name, func(t *testing.T) {
				resp, b := e.do(t, "GET", "/v1/setup/auth", h, nil)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("got %d, want 401", resp.StatusCode)
				}
				msg := errorMessage(t, b)
				kind := missing[name]
				if msgs[kind] == "" {
					msgs[kind] = msg
				} else if msg != msgs[kind] {
					t.Errorf("got message %q, want the same message for every failure of its kind (%q)", msg, msgs[kind])
				}
			})
		}
	})
}
