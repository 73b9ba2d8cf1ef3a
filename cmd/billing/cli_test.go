package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// envFor returns a getenv over the given variables only.
func envFor(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func newMasterKey(t testing.TB) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestCLICreatesTenantAndProject(t *testing.T) {
	ctx := context.Background()
	vars := map[string]string{
		"BILLING_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "cli.db"),
		"BILLING_MASTER_KEY":   newMasterKey(t),
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"tenant", "create", "--name", "Acme", "--json"}, envFor(vars), &out, &errOut); err != nil {
		t.Fatalf("tenant create: %v\n%s", err, errOut.String())
	}
	var tenant map[string]string
	if err := json.Unmarshal(out.Bytes(), &tenant); err != nil || len(tenant) != 2 || tenant["name"] != "Acme" || !strings.HasPrefix(tenant["id"], "ten_") {
		t.Fatalf("got %q, want exactly {\"id\",\"name\"}", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"project", "create", "--tenant", tenant["id"], "--name", "App", "--json"}, envFor(vars), &out, &errOut); err != nil {
		t.Fatalf("project create: %v", err)
	}
	var creds map[string]string
	if err := json.Unmarshal(out.Bytes(), &creds); err != nil || len(creds) != 4 || creds["tenant_id"] != tenant["id"] ||
		!strings.HasPrefix(creds["project_id"], "prj_") || !strings.HasPrefix(creds["api_key"], "pk_") || len(creds["secret_key"]) < 43 {
		t.Fatalf("got %q, want exactly {tenant_id, project_id, api_key, secret_key}", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"project", "rotate-secret", "--project", creds["project_id"], "--json"}, envFor(vars), &out, &errOut); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	var rotated map[string]string
	if err := json.Unmarshal(out.Bytes(), &rotated); err != nil || rotated["secret_key"] == creds["secret_key"] || rotated["project_id"] != creds["project_id"] {
		t.Fatalf("got %q, want a new secret for the same project", out.String())
	}
	t.Run("ErrUnknownTenant", func(t *testing.T) {
		err := run(ctx, []string{"project", "create", "--tenant", "ten_missing", "--name", "x"}, envFor(vars), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not found") && !strings.Contains(strings.ToLower(err.Error()), "no such") {
			t.Errorf("got %v, want a not-found error", err)
		}
	})
	t.Run("ErrNoMasterKey", func(t *testing.T) {
		err := run(ctx, []string{"serve"}, envFor(map[string]string{"BILLING_DATABASE_URL": vars["BILLING_DATABASE_URL"]}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "BILLING_MASTER_KEY") {
			t.Errorf("got %v, want serve to refuse without a master key", err)
		}
	})
	t.Run("ErrUnknownCommand", func(t *testing.T) {
		if err := run(ctx, []string{"frobnicate"}, envFor(vars), io.Discard, io.Discard); err == nil {
			t.Error("got nil, want an error")
		}
	})
	t.Run("Migrate", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(ctx, []string{"migrate"}, envFor(vars), &out, io.Discard); err != nil || !strings.Contains(out.String(), "migrations applied") {
			t.Errorf("got %v %q", err, out.String())
		}
	})
}

func TestRotateMasterKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "rot.db")
	oldKey, newKey := newMasterKey(t), newMasterKey(t)
	// A server on the old key stores Stripe keys.
	srv := startBilling(t, map[string]string{"BILLING_DATABASE_URL": dbURL, "BILLING_MASTER_KEY": oldKey})
	creds := srv.project(t)
	srv.putStripeKeys(t, creds, "sk_test_rotation0123456789")
	srv.stop(t)

	vars := map[string]string{"BILLING_DATABASE_URL": dbURL, "BILLING_MASTER_KEY": newKey, "BILLING_MASTER_KEY_PREVIOUS": oldKey}
	var out bytes.Buffer
	if err := run(ctx, []string{"rotate-master-key"}, envFor(vars), &out, io.Discard); err != nil {
		t.Fatalf("rotate-master-key: %v", err)
	}
	if !strings.HasPrefix(out.String(), "1 secret") && !strings.HasPrefix(out.String(), "2 secret") && !strings.HasPrefix(out.String(), "3 secret") {
		t.Errorf("got %q, want a count of re-encrypted secrets", out.String())
	}
	// Only the new key is needed from now on.
	srv = startBilling(t, map[string]string{"BILLING_DATABASE_URL": dbURL, "BILLING_MASTER_KEY": newKey})
	resp := srv.call(t, "GET", "/v1/setup/stripe", creds.headers(), "")
	if resp.status != http.StatusOK || !strings.Contains(resp.body, `"secret_key":"****6789"`) {
		t.Errorf("after rotation: got %d %s", resp.status, resp.body)
	}
}

// billingProcess is `billing serve` running as a separate process.
type billingProcess struct {
	cmd    *exec.Cmd
	URL    string
	admin  string
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	billingBinOnce sync.Once
	billingBin     string
	billingBinErr  error
)

// billingBinary builds cmd/billing once per test run.
func billingBinary(t testing.TB) string {
	t.Helper()
	billingBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "billing-bin-")
		if err != nil {
			billingBinErr = err
			return
		}
		billingBin = filepath.Join(dir, "billing")
		out, err := exec.Command("go", "build", "-o", billingBin, ".").CombinedOutput()
		if err != nil {
			billingBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if billingBinErr != nil {
		t.Fatal(billingBinErr)
	}
	return billingBin
}

// startBilling runs `billing serve` on a free loopback port with vars, and
// waits for /readyz.
func startBilling(t testing.TB, vars map[string]string) *billingProcess {
	t.Helper()
	p := &billingProcess{admin: "admin-" + newMasterKey(t)[:16], stderr: &lockedBuffer{}}
	cmd := exec.Command(billingBinary(t), "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BILLING_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "BILLING_ADDR=127.0.0.1:0", "BILLING_ADMIN_TOKEN="+p.admin)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	t.Cleanup(func() { p.stop(t) })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
				addr <- l.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("billing serve did not start:\n%s", p.stderr.String())
	}
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(p.URL + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("billing serve is not ready:\n%s", p.stderr.String())
	return nil
}

// stop ends the process with SIGTERM, as an orchestrator would.
func (p *billingProcess) stop(t testing.TB) {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("billing serve exited with %v:\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("billing serve did not stop on SIGINT")
	}
}

type callResult struct {
	status int
	header http.Header
	body   string
}

func (p *billingProcess) call(t testing.TB, method, path string, h http.Header, body string) callResult {
	t.Helper()
	req, _ := http.NewRequest(method, p.URL+path, strings.NewReader(body))
	for k, vs := range h {
		req.Header[k] = vs
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return callResult{resp.StatusCode, resp.Header, string(b)}
}

type projectCreds struct {
	TenantID  string `json:"tenant_id"`
	ProjectID string `json:"project_id"`
	APIKey    string `json:"api_key"`
	SecretKey string `json:"secret_key"`
}

func (c projectCreds) headers() http.Header {
	return http.Header{"X-Api-Key": {c.APIKey}, "X-Secret-Key": {c.SecretKey}, "X-Tenant-Id": {c.TenantID}, "X-Project-Id": {c.ProjectID}}
}

// project creates a tenant and a project through the admin API.
func (p *billingProcess) project(t testing.TB) projectCreds {
	t.Helper()
	admin := http.Header{"Authorization": {"Bearer " + p.admin}}
	r := p.call(t, "POST", "/v1/admin/tenants", admin, `{"name":"Acme"}`)
	var tenant struct{ ID string }
	if r.status != 201 || json.Unmarshal([]byte(r.body), &tenant) != nil {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	r = p.call(t, "POST", "/v1/admin/tenants/"+tenant.ID+"/projects", admin, `{"name":"App"}`)
	var c projectCreds
	if r.status != 201 || json.Unmarshal([]byte(r.body), &c) != nil {
		t.Fatalf("create project: %d %s", r.status, r.body)
	}
	return c
}

func (p *billingProcess) putStripeKeys(t testing.TB, c projectCreds, secretKey string) {
	t.Helper()
	r := p.call(t, "PUT", "/v1/setup/stripe?environment=test", c.headers(),
		`{"secret_key":"`+secretKey+`","publishable_key":"pk_test_123456789","webhook_secret":"whsec_multiinstance0123"}`)
	if r.status != 200 {
		t.Fatalf("put stripe keys: %d %s", r.status, r.body)
	}
}
