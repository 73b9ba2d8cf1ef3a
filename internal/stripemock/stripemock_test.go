package stripemock

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	t.Parallel()
	base := Start(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("got %q, want a loopback URL", base)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/v1/customers/cus_123", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+TestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got status %d, want 200", resp.StatusCode)
	}
}

func TestBuildInto(t *testing.T) {
	if testing.Short() {
		t.Skip("builds stripe-mock")
	}
	t.Parallel()
	dir := t.TempDir()
	bin, err := buildInto(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bin != filepath.Join(dir, "stripe-mock") {
		t.Errorf("got %q", bin)
	}
	if out, err := exec.Command(bin, "-version").CombinedOutput(); err != nil {
		t.Errorf("%s -version: %v %s", bin, err, out)
	}
	// A second call finds the built binary.
	if again, err := buildInto(dir); err != nil || again != bin {
		t.Errorf("got %q, %v; want %q", again, err, bin)
	}
}
