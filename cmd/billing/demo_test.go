package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/stripemock"
)

// childEnv is the test's environment without BILLING_ variables, plus vars.
func childEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BILLING_") {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}

// runIn runs the binary in dir and returns its stdout; stderr goes to the
// failure message.
func runIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(billingBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("billing %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

func TestDemo(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	// The demo finds stripe-mock where the tests build it, as `make demo`
	// does in a checkout.
	if _, err := stripemock.Binary(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(billingBinary(t), "demo")
	cmd.Dir = dir
	cmd.Env = childEnv("BILLING_ADDR=127.0.0.1:0")
	var errOut syncBuffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	block := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "# Swagger UI") {
				block <- b.String()
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	var printed string
	select {
	case printed = <-block:
	case err := <-exited:
		t.Fatalf("billing demo exited (%v) before printing its lines:\n%s", err, errOut.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("billing demo printed no lines within 2 minutes:\n%s", errOut.String())
	}

	// What the demo printed runs as it is.
	sh := exec.Command("bash", "-e", "-o", "pipefail")
	sh.Dir = dir
	sh.Stdin = strings.NewReader(printed)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the printed lines failed: %v\n%s\n--- lines:\n%s", err, out, printed)
	}
	for _, want := range []string{`"object":"checkout.session"`, `"received":true,"status":"applied"`, `"status":"active"`, `"email":"customer@example.com"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("got output without %s:\n%s\n--- lines:\n%s", want, out, printed)
		}
	}
	if strings.Contains(string(out), `"error"`) {
		t.Errorf("got an error answer:\n%s", out)
	}

	project := regexp.MustCompile(`prj_[a-z0-9]+`).FindString(printed)
	customer := regexp.MustCompile(`cus_[A-Za-z0-9]+`).FindString(printed)
	url := regexp.MustCompile(`(?m)^B=(\S+)$`).FindStringSubmatch(printed)[1]
	tok := runIn(t, dir, "token", "--project", project, "--sub", "user_9", "--email", "nine@example.com", "--ttl", "5m")
	if parts := strings.Split(strings.TrimSpace(tok), "."); len(parts) != 3 {
		t.Errorf("token: got %q, want a JWT", tok)
	}
	ack := runIn(t, dir, "webhook", "send", "--project", project, "--url", url, "--customer", customer, "--status", "canceled",
		"--type", "customer.subscription.deleted")
	if strings.TrimSpace(ack) != `{"received":true,"status":"applied"}` {
		t.Errorf("webhook send: got %q", ack)
	}

	// SIGTERM stops the service and stripe-mock with it.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("billing demo exited with %v:\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("billing demo did not stop on SIGTERM")
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".billing", "demo-event.json")); err != nil || !bytes.Contains(b, []byte(customer)) {
		t.Errorf("got %s, %v; want the signed event kept in .billing/", b, err)
	}
}

// quickstartBlock returns the first sh block under README.md's Quickstart
// heading.
func quickstartBlock(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Quickstart")
	if !ok {
		t.Fatal("README.md has no Quickstart section")
	}
	_, rest, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("README.md's Quickstart has no sh block")
	}
	block, _, _ := strings.Cut(rest, "```")
	return block
}

// TestQuickstart runs README.md's quickstart as it is written, on
// localhost:8080 after `make demo`, in a network namespace of its own so that
// port 8080 is free and nothing else on the machine is touched.
func TestQuickstart(t *testing.T) {
	for _, tool := range []string{"unshare", "ip", "bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("needs %s (.ci/run installs it)", tool)
			}
			t.Skipf("needs %s", tool)
		}
	}
	if err := exec.Command("unshare", "--net", "true").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot make a network namespace: %v", err)
		}
		t.Skipf("cannot make a network namespace (needs root): %v", err)
	}
	if _, err := stripemock.Binary(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(billingBinary(t), filepath.Join(dir, "bin", "billing")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "quickstart.sh"), []byte(quickstartBlock(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	// `make demo` is bin/billing demo after a build.
	driver := `set -eu
ip link set lo up
bin/billing demo >demo.out 2>demo.err &
demo=$!
trap 'kill $demo; wait $demo' EXIT
for _ in $(seq 600); do
  if grep -q '^# Swagger UI' demo.out; then break; fi
  if ! kill -0 $demo 2>/dev/null; then cat demo.err; exit 1; fi
  sleep 0.2
done
bash -e -o pipefail quickstart.sh
`
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "bash", "-c", driver)
	cmd.Dir = dir
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	demoErr, _ := os.ReadFile(filepath.Join(dir, "demo.err"))
	if err != nil {
		t.Fatalf("the quickstart failed: %v\n%s\n--- demo's stderr:\n%s", err, out, demoErr)
	}
	if !strings.Contains(string(out), `"status":"active"`) || strings.Contains(string(out), `"error"`) {
		t.Errorf("got output without the active subscription, or with an error:\n%s\n--- demo's stderr:\n%s", out, demoErr)
	}
}

// syncBuffer is a buffer safe for a process's output copier and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
