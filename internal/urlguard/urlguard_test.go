package urlguard_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stackfordevs/billing/internal/urlguard"
)

func TestBlocked(t *testing.T) {
	for _, c := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true},
		{"10.0.0.1", true}, {"172.16.5.4", true}, {"192.168.1.1", true}, {"fd00:ec2::254", true},
		{"169.254.169.254", true}, {"fe80::1", true}, {"100.100.100.200", true}, {"0.0.0.0", true}, {"::", true},
		{"224.0.0.1", true}, {"255.255.255.255", true}, {"::ffff:127.0.0.1", true}, {"::ffff:169.254.169.254", true},
		{"64:ff9b::a9fe:a9fe", true}, {"2002:7f00:1::", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700:4700::1111", false}, {"::ffff:8.8.8.8", false},
		{"2002:0808:0808::", false},
	} {
		if got := urlguard.Blocked(netip.MustParseAddr(c.addr)); got != c.blocked {
			t.Errorf("Blocked(%s): got %v, want %v", c.addr, got, c.blocked)
		}
	}
}

func TestCheckURL(t *testing.T) {
	g := &urlguard.Guard{}
	ctx := context.Background()
	for _, raw := range []string{
		"http://127.0.0.1:5432/", "http://localhost/jwks", "https://LOCALHOST./x", "http://[::1]/", "http://169.254.169.254/latest/meta-data",
		"http://10.1.2.3/jwks", "http://metadata.google.internal/computeMetadata/v1/", "https://user:pw@auth.example.com/jwks",
		"ftp://auth.example.com/jwks", "/relative/jwks", "http://0x7f000001/",
	} {
		if err := g.CheckURL(ctx, raw); err == nil {
			t.Errorf("CheckURL(%q): got nil, want an error", raw)
		}
	}
	for _, raw := range []string{"https://auth.example.com/.well-known/jwks.json", "https://8.8.8.8/jwks"} {
		if err := g.CheckURL(ctx, raw); err != nil {
			t.Errorf("CheckURL(%q): got %v, want nil", raw, err)
		}
	}
	if err := (&urlguard.Guard{AllowPrivate: true}).CheckURL(ctx, "http://127.0.0.1:8080/jwks"); err != nil {
		t.Errorf("with private addresses allowed: got %v, want nil", err)
	}
}

// TestClientChecksEveryConnection checks that the guarded client refuses a
// loopback server, and a redirect from an allowed server to a refused one.
func TestClientChecksEveryConnection(t *testing.T) {
	refused := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret")
	}))
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	refused.Listener = l
	refused.Start()
	defer refused.Close()
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, refused.URL+"/private", http.StatusFound)
	}))
	defer allowed.Close()

	t.Run("ErrDirect", func(t *testing.T) {
		_, err := (&urlguard.Guard{}).Client(time.Second).Get(allowed.URL)
		if !errors.Is(err, urlguard.ErrBlocked) {
			t.Errorf("got %v, want ErrBlocked", err)
		}
	})
	t.Run("ErrRedirect", func(t *testing.T) {
		g := urlguard.WithBlocked(&urlguard.Guard{}, func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.2") })
		_, err := g.Client(time.Second).Get(allowed.URL)
		if !errors.Is(err, urlguard.ErrBlocked) {
			t.Errorf("got %v, want ErrBlocked for the redirect target", err)
		}
	})
	t.Run("OKAllowPrivate", func(t *testing.T) {
		resp, err := (&urlguard.Guard{AllowPrivate: true}).Client(time.Second).Get(allowed.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "secret" {
			t.Errorf("got %q", b)
		}
	})
}
