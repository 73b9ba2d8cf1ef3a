package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processAdminToken is the admin token of every process a test starts.
const processAdminToken = "process-test-admin-token-0123456789"

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

// serveProcess is one `billing serve` process started by a test.
type serveProcess struct {
	cmd    *exec.Cmd
	URL    string
	done   chan struct{} // closed when the process has exited
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (p *serveProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startServe runs `billing serve` on a free loopback port with vars (and no
// other BILLING_ variable from the test's environment) and waits until it
// says where it listens. Its admin token is processAdminToken.
func startServe(t testing.TB, vars map[string]string) *serveProcess {
	t.Helper()
	cmd := exec.Command(billingBinary(t), "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BILLING_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "BILLING_ADDR=127.0.0.1:0", "BILLING_ADMIN_TOKEN="+processAdminToken)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.Write(sc.Bytes())
			p.stderr.WriteByte('\n')
			p.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				select {
				case addr <- l.Addr:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.done:
		t.Fatalf("billing serve exited before listening:\n%s", p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("billing serve did not listen within a minute:\n%s", p.logs())
	}
	return p
}

// stop ends the process with SIGTERM, as an orchestrator would, and waits
// for a clean exit.
func (p *serveProcess) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("billing serve did not stop on SIGTERM:\n%s", p.logs())
	}
	if !p.cmd.ProcessState.Success() {
		t.Errorf("billing serve exited with %v:\n%s", p.cmd.ProcessState, p.logs())
	}
}

var processClient = &http.Client{Timeout: 20 * time.Second}

// do makes one JSON request and returns the response with its body read.
func (p *serveProcess) do(method, path string, h http.Header, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, p.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header = h.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := processClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// send makes one request and returns its status and body.
func (p *serveProcess) send(method, path string, h http.Header, body []byte) (int, []byte, error) {
	resp, b, err := p.do(method, path, h, body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// mustSend makes a request that must answer want, and decodes the answer
// into out.
func (p *serveProcess) mustSend(t testing.TB, method, path string, h http.Header, body string, want int, out any) {
	t.Helper()
	status, b, err := p.send(method, path, h, []byte(body))
	if err != nil || status != want {
		t.Fatalf("%s %s: got %d %s %v, want %d", method, path, status, b, err, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
}

type callResult struct {
	status int
	header http.Header
	body   string
}

// call makes a request that must get an answer.
func (p *serveProcess) call(t testing.TB, method, path string, h http.Header, body string) callResult {
	t.Helper()
	resp, b, err := p.do(method, path, h, []byte(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
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
func (p *serveProcess) project(t testing.TB) projectCreds {
	t.Helper()
	admin := http.Header{"Authorization": {"Bearer " + processAdminToken}}
	var tenant struct{ ID string }
	p.mustSend(t, "POST", "/v1/admin/tenants", admin, `{"name":"Acme"}`, http.StatusCreated, &tenant)
	var c projectCreds
	p.mustSend(t, "POST", "/v1/admin/tenants/"+tenant.ID+"/projects", admin, `{"name":"App"}`, http.StatusCreated, &c)
	return c
}

// putStripeKeys stores test keys with the webhook secret processWebhookSecret.
func (p *serveProcess) putStripeKeys(t testing.TB, c projectCreds, secretKey string) {
	t.Helper()
	p.mustSend(t, "PUT", "/v1/setup/stripe?environment=test", c.headers(),
		`{"secret_key":"`+secretKey+`","publishable_key":"pk_test_123456789","webhook_secret":"`+processWebhookSecret+`"}`,
		http.StatusOK, nil)
}

const processWebhookSecret = "whsec_processtest0123"
