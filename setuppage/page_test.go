package setuppage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/setuppage"
)

// fakeService knows one project and fails sign-in with a set error.
type fakeService struct {
	p       *billing.Project
	signErr error
}

func (f *fakeService) SignIn(_ context.Context, _ string, c setuppage.Credentials) (*billing.Project, error) {
	if f.signErr != nil {
		return nil, f.signErr
	}
	if c.APIKey != f.p.APIKey || c.SecretKey != "sk_right" {
		return nil, billing.Errorf(billing.EUNAUTHORIZED, "Project credentials are not valid.")
	}
	return f.p, nil
}

func (f *fakeService) FindProject(_ context.Context, id string) (*billing.Project, error) {
	if id != f.p.ID {
		return nil, billing.Errorf(billing.ENOTFOUND, "No such project: %s.", id)
	}
	return f.p, nil
}

func (f *fakeService) StripeSetup(_ context.Context, _ string, env billing.Environment) (gen.StripeSetup, error) {
	return gen.StripeSetup{Environment: gen.Environment(env), WebhookUrl: "https://billing.example.com/v1/stripe/webhook/prj_1?environment=" + string(env)}, nil
}

func (f *fakeService) AuthSetup(context.Context, string) (gen.AuthSetup, error) {
	return gen.AuthSetup{Configured: false}, nil
}

func (f *fakeService) SaveStripeSettings(context.Context, billing.StripeSettings) error { return nil }
func (f *fakeService) SaveAuthSettings(context.Context, billing.AuthSettings) error     { return nil }

// memSessions keeps sessions in memory.
type memSessions struct {
	mu sync.Mutex
	m  map[string]billing.SetupSession
}

func (s *memSessions) CreateSetupSession(_ context.Context, ss billing.SetupSession) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(ss.TokenHash)] = ss
	return nil
}

func (s *memSessions) FindSetupSession(_ context.Context, h []byte) (*billing.SetupSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[string(h)]
	if !ok {
		return nil, billing.Errorf(billing.ENOTFOUND, "No such setup session.")
	}
	return &ss, nil
}

func (s *memSessions) DeleteSetupSession(_ context.Context, h []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(h))
	return nil
}

func TestSignInAndOut(t *testing.T) {
	svc := &fakeService{p: &billing.Project{ID: "prj_1", APIKey: "pk_1", SecretHash: []byte("h")}}
	sessions := &memSessions{m: map[string]billing.SetupSession{}}
	e := echo.New()
	if err := setuppage.Register(e, setuppage.Config{Service: svc, Sessions: sessions, Key: []byte(strings.Repeat("k", 32))}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signIn := func(secret string) *http.Response {
		t.Helper()
		page, err := client.Get(srv.URL + "/setup")
		if err != nil {
			t.Fatal(err)
		}
		page.Body.Close()
		var csrf *http.Cookie
		for _, c := range page.Cookies() {
			if c.Name == "billing_setup_csrf" {
				csrf = c
			}
		}
		form := url.Values{"api_key": {"pk_1"}, "secret_key": {secret}, "tenant_id": {"ten_1"}, "project_id": {"prj_1"}, "csrf": {csrf.Value}}
		req, _ := http.NewRequest("POST", srv.URL+"/setup/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		req.AddCookie(csrf)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := signIn("sk_wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong secret: got %d, want 401", resp.StatusCode)
	}
	resp := signIn("sk_right")
	if resp.StatusCode != http.StatusSeeOther || len(sessions.m) != 1 {
		t.Fatalf("sign in: got %d and %d sessions, want 303 and 1", resp.StatusCode, len(sessions.m))
	}
	for _, ss := range sessions.m {
		for _, c := range resp.Cookies() {
			if c.Name == "billing_setup" && strings.Contains(string(ss.TokenHash), c.Value) {
				t.Error("the store holds the session token itself")
			}
		}
	}
	svc.signErr = billing.Errorf(billing.ERATELIMITED, "Too many failed authentication attempts from this address; try again in 60 seconds.")
	if resp := signIn("sk_right"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("throttled: got %d, want 429", resp.StatusCode)
	}
}
