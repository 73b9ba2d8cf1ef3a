package server_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for the test. Without Chromium the test
// is skipped, except in CI, where .ci/run installs it and it must run.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("BILLING_TEST_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is not installed (apt-get install chromium)")
		}
		t.Skip("Chromium is not installed (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// The first run starts the browser; its context must not time out.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return tctx
}

func TestSetupPageInBrowser(t *testing.T) {
	ctx := browser(t)
	e := newTestEnv(t, storeFor(t), withSessionKey)
	p := e.newProject(t, "")
	liveKey := "sk_live_" + randHex(12)
	testKey := "sk_test_" + randHex(12)
	webhookKey := "whsec_" + randHex(12)
	e.secret(liveKey)
	e.secret(testKey)
	e.secret(webhookKey)

	steps := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("browser: %v", err)
		}
	}
	read := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		return v
	}
	steps(
		chromedp.Navigate(e.URL+"/setup"),
		chromedp.WaitVisible("#login"),
		chromedp.SendKeys("#tenant_id", p.TenantID),
		chromedp.SendKeys("#project_id", p.ProjectID),
		chromedp.SendKeys("#api_key", p.APIKey),
		chromedp.SendKeys("#secret_key", p.SecretKey),
		chromedp.Click("#sign-in"),
		chromedp.WaitVisible("#stripe-test"),
		chromedp.SendKeys("#test-secret_key", testKey),
		chromedp.SetValue("#test-publishable_key", "pk_test_"+randHex(8)),
		chromedp.SendKeys("#test-webhook_secret", webhookKey),
		chromedp.Click("#save-test"),
		chromedp.WaitVisible("#notice"),
	)
	masked := read(chromedp.Text("#stripe-test .masked-secret"))
	steps(
		chromedp.SendKeys("#test-secret_key", liveKey),
		chromedp.SetValue("#test-publishable_key", "pk_test_"+randHex(8)),
		chromedp.Click("#save-test"),
		chromedp.WaitVisible("#stripe-test .field-error"),
	)
	fieldError := read(chromedp.Text("#stripe-test .field-error"))
	html := read(chromedp.OuterHTML("html"))
	storage := read(chromedp.Evaluate[string](`JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + location.href`))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shotPath := filepath.Join(t.TempDir(), "setup.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shotPath)

	if want := "****" + testKey[len(testKey)-4:]; masked != want {
		t.Errorf("got masked key %q, want %q", masked, want)
	}
	if !strings.Contains(fieldError, "live key cannot be stored for the test environment") {
		t.Errorf("got field error %q, want the live-key-in-test message", fieldError)
	}
	for _, s := range []string{p.SecretKey, testKey, liveKey, webhookKey, p.HS256} {
		if strings.Contains(html, s) || strings.Contains(storage, s) {
			t.Errorf("a secret (…%s) is in the page, the URL or browser storage", s[len(s)-4:])
		}
	}
	got, err := e.DB.FindStripeSettings(context.Background(), p.ProjectID, "test")
	if err != nil || got.SecretKey != testKey {
		t.Errorf("stored test key: got %v, want the key saved through the page", err)
	}
}

func TestSetupPageRefusesForgedPosts(t *testing.T) {
	e := newTestEnv(t, storeFor(t), withSessionKey)
	p := e.newProject(t, "")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"tenant_id": {p.TenantID}, "project_id": {p.ProjectID}, "api_key": {p.APIKey}, "secret_key": {p.SecretKey}, "csrf": {"x"}}
	post := func(path, origin string, form url.Values, cookies ...*http.Cookie) *http.Response {
		req, _ := http.NewRequest("POST", e.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("/setup/login", "https://evil.example", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login: got %d, want 403", resp.StatusCode)
	}
	if resp := post("/setup/login", e.URL, form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's token: got %d, want 403", resp.StatusCode)
	}
	// A real sign-in, then a settings post without the session's token.
	csrf := e.signInToken(t, client)
	if !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Fatalf("got login cookie %+v, want HttpOnly SameSite=Strict", csrf)
	}
	form.Set("csrf", csrf.Value)
	resp := post("/setup/login", e.URL, form, csrf)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: got %d, want 303", resp.StatusCode)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "billing_setup" {
			session = c
		}
	}
	if session == nil || strings.Contains(session.Value, p.SecretKey) {
		t.Fatalf("got session cookie %+v", session)
	}
	keys := url.Values{"environment": {"test"}, "secret_key": {"sk_test_" + randHex(8)}, "publishable_key": {"pk_test_" + randHex(8)}}
	if resp := post("/setup/stripe", e.URL, keys, session); resp.StatusCode != http.StatusForbidden {
		t.Errorf("post without the session's token: got %d, want 403", resp.StatusCode)
	}
	keys.Set("csrf", "forged")
	if resp := post("/setup/stripe", e.URL, keys, session); resp.StatusCode != http.StatusForbidden {
		t.Errorf("post with a forged token: got %d, want 403", resp.StatusCode)
	}
	got, _ := e.DB.FindStripeSettings(context.Background(), p.ProjectID, "test")
	if got.SecretKey != p.StripeKey {
		t.Error("a forged post changed the keys")
	}
}

func withSessionKey(c *serverConfig) { c.SessionKey = []byte(strings.Repeat("k", 32)) }
