package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stackfordevs/billing/gen"
)

func TestStripeSetup(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		p := e.newProject(t, "")
		live := gen.EnvironmentLive
		test := gen.EnvironmentTest

		t.Run("TestKeysMasked", func(t *testing.T) {
			resp, err := e.API.GetStripeSetupWithResponse(ctx, &gen.GetStripeSetupParams{Environment: &test}, p.creds)
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("got %v %s", err, body(resp))
			}
			s := resp.JSON200
			if !s.Configured || deref(s.SecretKey) != "****"+p.StripeKey[len(p.StripeKey)-4:] {
				t.Errorf("got secret %q, want masked to the last four", deref(s.SecretKey))
			}
			if deref(s.WebhookSecret) != "****"+p.WebhookKey[len(p.WebhookKey)-4:] {
				t.Errorf("got webhook secret %q, want masked", deref(s.WebhookSecret))
			}
			if deref(s.PublishableKey) != p.PublishableKey {
				t.Errorf("got publishable %q, want %q", deref(s.PublishableKey), p.PublishableKey)
			}
			if !strings.Contains(s.WebhookUrl, "/v1/stripe/webhook/"+p.ProjectID) {
				t.Errorf("got webhook url %q", s.WebhookUrl)
			}
			if strings.Contains(string(resp.Body), p.StripeKey) || strings.Contains(string(resp.Body), p.WebhookKey) {
				t.Error("a secret is in the response")
			}
		})
		t.Run("LiveNotConfigured", func(t *testing.T) {
			resp, _ := e.API.GetStripeSetupWithResponse(ctx, &gen.GetStripeSetupParams{Environment: &live}, p.creds)
			if resp.JSON200 == nil || resp.JSON200.Configured {
				t.Errorf("got %s, want configured false", body(resp))
			}
		})
		t.Run("LiveKeys", func(t *testing.T) {
			sk := "rk_live_" + randHex(10)
			e.secret(sk)
			resp, _ := e.API.PutStripeSetupWithResponse(ctx, &gen.PutStripeSetupParams{Environment: &live},
				gen.StripeSetupRequest{SecretKey: sk, PublishableKey: "pk_live_" + randHex(8)}, p.creds)
			if resp.JSON200 == nil || !resp.JSON200.Configured || deref(resp.JSON200.SecretKey) != "****"+sk[len(sk)-4:] {
				t.Fatalf("got %s", body(resp))
			}
			if resp.JSON200.WebhookSecret != nil {
				t.Errorf("got webhook secret %q, want none", *resp.JSON200.WebhookSecret)
			}
			got, _ := e.API.GetStripeSetupWithResponse(ctx, &gen.GetStripeSetupParams{Environment: &test}, p.creds)
			if deref(got.JSON200.SecretKey) != "****"+p.StripeKey[len(p.StripeKey)-4:] {
				t.Errorf("test keys changed by a live put: %s", body(got))
			}
		})
		bad := []struct {
			name, env, body, param string
		}{
			{"LiveKeyInTest", "test", `{"secret_key":"sk_live_abcdefgh","publishable_key":"pk_test_abcdefgh"}`, "secret_key"},
			{"TestKeyInLive", "live", `{"secret_key":"sk_test_abcdefgh","publishable_key":"pk_live_abcdefgh"}`, "secret_key"},
			{"LivePublishableInTest", "test", `{"secret_key":"sk_test_abcdefgh","publishable_key":"pk_live_abcdefgh"}`, "publishable_key"},
			{"NotAKey", "test", `{"secret_key":"hello-world-key","publishable_key":"pk_test_abcdefgh"}`, "secret_key"},
			{"BadWebhookSecret", "test", `{"secret_key":"sk_test_abcdefgh","publishable_key":"pk_test_abcdefgh","webhook_secret":"nope"}`, "webhook_secret"},
			{"MissingPublishable", "test", `{"secret_key":"sk_test_abcdefgh"}`, "publishable_key"},
			{"WrongType", "test", `{"secret_key":12345678,"publishable_key":"pk_test_abcdefgh"}`, "secret_key"},
			{"UnknownEnvironment", "prod", `{"secret_key":"sk_test_abcdefgh","publishable_key":"pk_test_abcdefgh"}`, "environment"},
		}
		for _, c := range bad {
			t.Run("Err"+c.name, func(t *testing.T) {
				resp, b := e.do(t, "PUT", "/v1/setup/stripe?environment="+c.env, p.headers(), strings.NewReader(c.body))
				wantError(t, resp, b, http.StatusBadRequest, c.param)
				got, _ := e.API.GetStripeSetupWithResponse(ctx, &gen.GetStripeSetupParams{Environment: &test}, p.creds)
				if deref(got.JSON200.SecretKey) != "****"+p.StripeKey[len(p.StripeKey)-4:] {
					t.Errorf("a rejected put changed the stored keys: %s", body(got))
				}
			})
		}
	})
}

func TestAuthSetup(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		p := e.newProject(t, "")
		t.Run("HS256Masked", func(t *testing.T) {
			resp, _ := e.API.GetAuthSetupWithResponse(ctx, p.creds)
			a := resp.JSON200
			if a == nil || !a.Configured || deref(a.Method) != gen.Hs256 || deref(a.Hs256Secret) != "****"+p.HS256[len(p.HS256)-4:] {
				t.Errorf("got %s", body(resp))
			}
		})
		t.Run("JWKS", func(t *testing.T) {
			url := "https://auth.example.com/.well-known/jwks.json"
			resp, _ := e.API.PutAuthSetupWithResponse(ctx, gen.AuthSetupRequest{JwksUrl: &url, Issuer: ptr("https://auth.example.com/"), Audience: ptr("billing")}, p.creds)
			a := resp.JSON200
			if a == nil || deref(a.Method) != gen.Jwks || deref(a.JwksUrl) != url || deref(a.Issuer) != "https://auth.example.com/" || deref(a.Audience) != "billing" || a.Hs256Secret != nil {
				t.Errorf("got %s", body(resp))
			}
		})
		for name, c := range map[string]struct{ body, param string }{
			"Neither":      {`{"issuer":"x"}`, "jwks_url"},
			"Both":         {`{"jwks_url":"https://a.example.com/jwks","hs256_secret":"` + strings.Repeat("s", 32) + `"}`, "hs256_secret"},
			"ShortSecret":  {`{"hs256_secret":"short"}`, "hs256_secret"},
			"NotAURL":      {`{"jwks_url":"not a url"}`, "jwks_url"},
			"WrongTypeIss": {`{"hs256_secret":"` + strings.Repeat("s", 32) + `","issuer":5}`, "issuer"},
		} {
			t.Run("Err"+name, func(t *testing.T) {
				resp, b := e.do(t, "PUT", "/v1/setup/auth", p.headers(), strings.NewReader(c.body))
				wantError(t, resp, b, http.StatusBadRequest, c.param)
			})
		}
	})
}

func ptr[T any](v T) *T { return &v }
