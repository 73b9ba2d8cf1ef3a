// Package stripemock starts stripe-mock, Stripe's API emulator, for tests.
//
// stripe-mock is pinned in go.mod through tools.go. The binary is taken from
// $GOBIN or $GOPATH/bin when installed there, and otherwise built once into
// the user cache directory.
package stripemock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB the helpers use; tests pass their *testing.T.
// The package does not import testing, so that the billing binary (its demo
// and test-event commands) can use it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// TestKey is a secret key stripe-mock accepts. stripe-mock accepts any key
// that starts with sk_test_.
const TestKey = "sk_test_stripemock"

const (
	modulePath   = "github.com/stripe/stripe-mock"
	startTimeout = 10 * time.Second
	startTries   = 3
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Start runs a stripe-mock on a free loopback port and returns its base URL,
// such as http://127.0.0.1:41234. The process is stopped when the test ends.
// Start fails the test when stripe-mock cannot be found, built or started.
func Start(tb TB) string {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatalf("stripemock: %v", err)
	}
	var lastErr error
	for range startTries {
		url, stop, err := start(bin)
		if err == nil {
			tb.Cleanup(stop)
			return url
		}
		lastErr = err
	}
	tb.Fatalf("stripemock: stripe-mock did not start after %d tries: %v", startTries, lastErr)
	return ""
}

// start runs one stripe-mock and waits until it answers.
func start(bin string) (url string, stop func(), err error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	// stripe-mock also opens an HTTPS listener, on port 12112 unless told
	// otherwise; a system-chosen port keeps parallel instances apart.
	cmd := exec.Command(bin, "-http-addr", addr, "-https-addr", "127.0.0.1:0")
	cmd.Stdout = nil // stripe-mock logs every request; discard them.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("run %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}

	url = "http://" + addr
	if err := waitReady(url, done); err != nil {
		stop()
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w (stderr: %s)", err, msg)
		}
		return "", nil, err
	}
	return url, stop, nil
}

// waitReady polls url until stripe-mock answers, the process exits, or
// startTimeout passes.
func waitReady(url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url+"/v1/customers", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+TestKey)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("stripe-mock exited before it answered")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stripe-mock did not answer at %s within %v", url, startTimeout)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// binary returns the path of a stripe-mock executable, building it once per
// process when it is not installed.
func binary() (string, error) {
	binOnce.Do(func() {
		binPath, binErr = findOrBuild()
	})
	return binPath, binErr
}

func findOrBuild() (string, error) {
	if p := installed(); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate the user cache directory: %w", err)
	}
	return buildInto(filepath.Join(cache, "billing-test"))
}

// buildInto builds stripe-mock into dir, unless it is there already, and
// returns its path.
func buildInto(dir string) (string, error) {
	target := filepath.Join(dir, "stripe-mock")
	if isExecutable(target) {
		return target, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	// Build into a unique name and rename it into place, so that test
	// binaries of other packages building at the same time never see a
	// half-written file.
	tmp, err := os.CreateTemp(dir, "stripe-mock-*.tmp")
	if err != nil {
		return "", err
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpName)

	cmd := exec.Command("go", "build", "-o", tmpName, modulePath)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", modulePath, err, out)
	}
	if err := os.Rename(tmpName, target); err != nil {
		return "", err
	}
	return target, nil
}

// installed returns stripe-mock from $GOBIN or $GOPATH/bin, or "".
func installed() string {
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, p := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "stripe-mock"); isExecutable(p) {
			return p
		}
	}
	return ""
}

// ModuleRoot returns the directory of the go.mod that governs the working
// directory, the one that pins stripe-mock.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module; cannot build stripe-mock")
	}
	return filepath.Dir(gomod), nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
