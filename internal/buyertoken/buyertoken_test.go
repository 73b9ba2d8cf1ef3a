package buyertoken_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/buyertoken"
	"github.com/stackfordevs/billing/internal/buyertoken/buyertokentest"
	"github.com/stackfordevs/billing/internal/urlguard"
)

const hsSecret = "a-shared-secret-of-at-least-32-bytes!"

// now is the fixed time of the tests' clock.
var now = time.Unix(1_700_000_000, 0)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newVerifier returns a Verifier on the fixed clock, closed when the test ends.
func newVerifier(tb testing.TB, opts buyertoken.Options) *buyertoken.Verifier {
	tb.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return now }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.URLs == nil {
		// The test JWKS servers listen on loopback.
		opts.URLs = &urlguard.Guard{AllowPrivate: true}
	}
	v := buyertoken.NewVerifier(opts)
	tb.Cleanup(func() { _ = v.Close() })
	return v
}

// claims returns valid claims for the fixed clock, with overrides applied; an
// override of nil removes the claim.
func claims(overrides map[string]any) map[string]any {
	c := map[string]any{
		"sub":   "user_123",
		"email": "buyer@example.com",
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func assertCode(tb testing.TB, err error, code, msgContains string) {
	tb.Helper()
	if got := billing.ErrorCode(err); got != code {
		tb.Fatalf("got code %q (err %v), want %q", got, err, code)
	}
	if msg := billing.ErrorMessage(err); !strings.Contains(msg, msgContains) {
		tb.Fatalf("got message %q, want it to contain %q", msg, msgContains)
	}
}

func TestVerify_NotConfigured(t *testing.T) {
	v := newVerifier(t, buyertoken.Options{})
	tok := buyertokentest.SignHS256(t, hsSecret, claims(nil))
	_, err := v.Verify(context.Background(), billing.AuthSettings{Issuer: "https://idp.example"}, tok)
	assertCode(t, err, billing.EFORBIDDEN, "PUT /v1/setup/auth")
}

func TestVerify_HS256(t *testing.T) {
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{HS256Secret: hsSecret}
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		got, err := v.Verify(ctx, settings, buyertokentest.SignHS256(t, hsSecret, claims(nil)))
		if err != nil {
			t.Fatal(err)
		}
		want := buyertoken.Claims{Subject: "user_123", Email: "buyer@example.com"}
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})

	t.Run("OKWithoutEmail", func(t *testing.T) {
		got, err := v.Verify(ctx, settings, buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"email": nil})))
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != "user_123" || got.Email != "" {
			t.Fatalf("got %+v, want subject user_123 and no email", got)
		}
	})

	t.Run("ErrWithoutExp", func(t *testing.T) {
		_, err := v.Verify(ctx, settings, buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"exp": nil})))
		assertCode(t, err, billing.EUNAUTHORIZED, "no expiry")
	})

	t.Run("OKExpiredWithinLeeway", func(t *testing.T) {
		tok := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"exp": now.Add(-20 * time.Second).Unix()}))
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKNotBeforeWithinLeeway", func(t *testing.T) {
		tok := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"nbf": now.Add(20 * time.Second).Unix()}))
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		{"ErrMissing", "", "missing"},
		{"ErrMalformed", "not.a.jwt", "malformed"},
		{"ErrTwoSegments", "abc.def", "malformed"},
		{"ErrBadSecret", buyertokentest.SignHS256(t, "another-secret-of-at-least-32-bytes", claims(nil)), "signature is invalid"},
		{"ErrExpired", buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"exp": now.Add(-31 * time.Second).Unix()})), "expired"},
		{"ErrNotValidYet", buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), "not valid yet"},
		{"ErrNoSubject", buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"sub": nil})), "no subject"},
		{"ErrEmptySubject", buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"sub": ""})), "no subject"},
		{"ErrNone", signNone(t, claims(nil)), "algorithm is not accepted"},
		{"ErrHS512", signHS512(t, hsSecret, claims(nil)), "algorithm is not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, settings, tc.token)
			assertCode(t, err, billing.EUNAUTHORIZED, tc.want)
			if strings.Contains(billing.ErrorMessage(err), hsSecret) {
				t.Fatal("message contains the secret")
			}
		})
	}
}

func TestVerify_Leeway(t *testing.T) {
	expired := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"exp": now.Add(-5 * time.Second).Unix()}))
	settings := billing.AuthSettings{HS256Secret: hsSecret}

	t.Run("ErrNoLeeway", func(t *testing.T) {
		v := newVerifier(t, buyertoken.Options{Leeway: -1})
		_, err := v.Verify(context.Background(), settings, expired)
		assertCode(t, err, billing.EUNAUTHORIZED, "expired")
	})
	t.Run("OKCustomLeeway", func(t *testing.T) {
		v := newVerifier(t, buyertoken.Options{Leeway: 10 * time.Second})
		if _, err := v.Verify(context.Background(), settings, expired); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerify_IssuerAudience(t *testing.T) {
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{HS256Secret: hsSecret, Issuer: "https://idp.example", Audience: "billing"}
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		tok := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"iss": "https://idp.example", "aud": "billing"}))
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OKAudienceList", func(t *testing.T) {
		tok := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"iss": "https://idp.example", "aud": []string{"other", "billing"}}))
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OKNotConfigured", func(t *testing.T) {
		tok := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"iss": "https://anyone.example", "aud": "anything"}))
		if _, err := v.Verify(ctx, billing.AuthSettings{HS256Secret: hsSecret}, tok); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"ErrWrongIssuer", map[string]any{"iss": "https://evil.example", "aud": "billing"}, "issuer"},
		{"ErrMissingIssuer", map[string]any{"aud": "billing"}, "issuer is missing"},
		{"ErrWrongAudience", map[string]any{"iss": "https://idp.example", "aud": "other"}, "audience"},
		{"ErrMissingAudience", map[string]any{"iss": "https://idp.example"}, "audience is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, settings, buyertokentest.SignHS256(t, hsSecret, claims(tc.claims)))
			assertCode(t, err, billing.EUNAUTHORIZED, tc.want)
		})
	}
}

func TestVerify_JWKS(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{JWKSURL: srv.URL(), Issuer: "https://idp.example"}
	ctx := context.Background()
	iss := map[string]any{"iss": "https://idp.example"}

	t.Run("OKRS256", func(t *testing.T) {
		got, err := v.Verify(ctx, settings, srv.SignRS256(claims(iss)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != "user_123" || got.Email != "buyer@example.com" {
			t.Fatalf("got %+v, want user_123 / buyer@example.com", got)
		}
	})
	t.Run("OKES256", func(t *testing.T) {
		if _, err := v.Verify(ctx, settings, srv.SignES256(claims(iss))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("KeysFetchedOnce", func(t *testing.T) {
		for range 10 {
			if _, err := v.Verify(ctx, settings, srv.SignRS256(claims(iss))); err != nil {
				t.Fatal(err)
			}
		}
		if got := srv.Requests(); got != 1 {
			t.Fatalf("got %d JWKS fetches, want 1", got)
		}
	})
	t.Run("ErrWrongIssuer", func(t *testing.T) {
		_, err := v.Verify(ctx, settings, srv.SignES256(claims(map[string]any{"iss": "https://evil.example"})))
		assertCode(t, err, billing.EUNAUTHORIZED, "issuer")
	})
	t.Run("ErrExpired", func(t *testing.T) {
		_, err := v.Verify(ctx, settings, srv.SignRS256(claims(map[string]any{"iss": "https://idp.example", "exp": now.Add(-time.Hour).Unix()})))
		assertCode(t, err, billing.EUNAUTHORIZED, "expired")
	})
	t.Run("ErrAlgConfusion", func(t *testing.T) {
		// An HS256 token whose HMAC key is the RSA public key the JWKS
		// publishes: a verifier that fed the public key to HMAC would accept it.
		der, err := x509.MarshalPKIXPublicKey(srv.RSAPublicKey())
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		for _, key := range [][]byte{pemKey, der} {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims(iss)))
			tok.Header["kid"] = srv.CurrentRSAKeyID()
			signed, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(ctx, settings, signed)
			assertCode(t, err, billing.EUNAUTHORIZED, "algorithm is not accepted")
		}
	})
	t.Run("ErrNone", func(t *testing.T) {
		_, err := v.Verify(ctx, settings, signNone(t, claims(iss)))
		assertCode(t, err, billing.EUNAUTHORIZED, "algorithm is not accepted")
	})
	t.Run("ErrHS256SecretIgnored", func(t *testing.T) {
		// With a JWKS URL configured, an HS256 token is refused even when an
		// HS256 secret is also stored.
		both := settings
		both.HS256Secret = hsSecret
		_, err := v.Verify(ctx, both, buyertokentest.SignHS256(t, hsSecret, claims(iss)))
		assertCode(t, err, billing.EUNAUTHORIZED, "algorithm is not accepted")
	})
	t.Run("ErrKeyOfOtherServer", func(t *testing.T) {
		other := buyertokentest.NewJWKSServer(t)
		_, err := v.Verify(ctx, settings, other.SignRS256(claims(iss)))
		assertCode(t, err, billing.EUNAUTHORIZED, "signature is invalid")
	})
	t.Run("ErrMalformedNoFetch", func(t *testing.T) {
		fresh := buyertokentest.NewJWKSServer(t)
		_, err := v.Verify(ctx, billing.AuthSettings{JWKSURL: fresh.URL()}, "garbage")
		assertCode(t, err, billing.EUNAUTHORIZED, "malformed")
		if got := fresh.Requests(); got != 0 {
			t.Fatalf("got %d JWKS fetches for a malformed token, want 0", got)
		}
	})
}

func TestVerify_JWKSRotation(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{JWKSURL: srv.URL()}
	ctx := context.Background()

	old := srv.SignRS256(claims(nil))
	if _, err := v.Verify(ctx, settings, old); err != nil {
		t.Fatal(err)
	}
	srv.Rotate()
	for _, tok := range []string{srv.SignRS256(claims(nil)), srv.SignES256(claims(nil)), old} {
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
	if got := srv.Requests(); got != 2 {
		t.Fatalf("got %d JWKS fetches, want 2 (first use and one refresh for the new kid)", got)
	}

	t.Run("ErrUnknownKIDRateLimited", func(t *testing.T) {
		// The refresh for an unknown kid was just spent; another unknown kid
		// fails at once without fetching again.
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims(nil)))
		tok.Header["kid"] = "no-such-kid"
		signed, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = v.Verify(ctx, settings, signed)
		assertCode(t, err, billing.EUNAUTHORIZED, "signing key is not known")
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v, want an immediate failure", d)
		}
		if got := srv.Requests(); got != 2 {
			t.Fatalf("got %d JWKS fetches, want 2", got)
		}
	})
}

func TestVerify_JWKSBackgroundRefresh(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	v := buyertoken.NewVerifier(buyertoken.Options{JWKSRefreshInterval: 20 * time.Millisecond, URLs: &urlguard.Guard{AllowPrivate: true}})
	if _, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: srv.URL()}, srv.SignRS256(claims(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return srv.Requests() >= 3 })

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// One refresh may have been under way when Close was called.
	time.Sleep(50 * time.Millisecond)
	after := srv.Requests()
	time.Sleep(150 * time.Millisecond)
	if got := srv.Requests(); got != after {
		t.Fatalf("got %d JWKS fetches after Close, want %d: refresh goroutine still running", got, after)
	}

	_, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: srv.URL()}, srv.SignRS256(claims(nil)))
	if err == nil {
		t.Fatal("JWKS verification after Close: got nil error, want one")
	}
}

func TestVerify_JWKSConcurrentFirstUse(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{JWKSURL: srv.URL()}
	tok := srv.SignES256(claims(nil))

	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 20 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), settings, tok); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if got := failures.Load(); got != 0 {
		t.Fatalf("got %d failures, want 0", got)
	}
	if got := srv.Requests(); got != 1 {
		t.Fatalf("got %d JWKS fetches, want 1", got)
	}
}

func TestVerify_JWKSUnreachable(t *testing.T) {
	t.Run("ErrRefused", func(t *testing.T) {
		v := newVerifier(t, buyertoken.Options{})
		_, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: closedURL(t)}, rs256Token(t))
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
	})

	t.Run("ErrClientTimeout", func(t *testing.T) {
		url := hangingServer(t)
		v := newVerifier(t, buyertoken.Options{HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
		start := time.Now()
		_, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: url}, rs256Token(t))
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v, want about 200ms", d)
		}
	})

	t.Run("ErrContextDeadline", func(t *testing.T) {
		url := hangingServer(t)
		v := newVerifier(t, buyertoken.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := v.Verify(ctx, billing.AuthSettings{JWKSURL: url}, rs256Token(t))
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v, want about 200ms", d)
		}
	})

	t.Run("ErrStatus", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		v := newVerifier(t, buyertoken.Options{})
		_, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: srv.URL}, rs256Token(t))
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
	})

	t.Run("ErrTooLarge", func(t *testing.T) {
		jwks := buyertokentest.NewJWKSServer(t)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"keys":[`+strings.Repeat(" ", 2<<20)+`]}`)
		}))
		t.Cleanup(srv.Close)
		v := newVerifier(t, buyertoken.Options{})
		_, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: srv.URL}, jwks.SignRS256(claims(nil)))
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
	})

	t.Run("RetryAfterFailure", func(t *testing.T) {
		jwks := buyertokentest.NewJWKSServer(t)
		var up atomic.Bool
		var hits atomic.Int32
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if !up.Load() {
				http.Error(w, "down", http.StatusBadGateway)
				return
			}
			resp, err := http.Get(jwks.URL())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.Copy(w, resp.Body)
		}))
		t.Cleanup(proxy.Close)

		clk := &clock{t: now}
		v := newVerifier(t, buyertoken.Options{Now: clk.Now})
		settings := billing.AuthSettings{JWKSURL: proxy.URL}
		tok := jwks.SignRS256(claims(nil))

		_, err := v.Verify(context.Background(), settings, tok)
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
		up.Store(true)
		_, err = v.Verify(context.Background(), settings, tok)
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
		if got := hits.Load(); got != 1 {
			t.Fatalf("got %d fetches right after a failure, want 1", got)
		}
		clk.Add(11 * time.Second)
		if _, err := v.Verify(context.Background(), settings, tok); err != nil {
			t.Fatalf("after the retry delay: %v", err)
		}
	})
}

func TestVerifier_CloseLeavesNoGoroutines(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	tok := srv.SignRS256(claims(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}))
	before := runtime.NumGoroutine()

	v := buyertoken.NewVerifier(buyertoken.Options{URLs: &urlguard.Guard{AllowPrivate: true}})
	if _, err := v.Verify(context.Background(), billing.AuthSettings{JWKSURL: srv.URL()}, tok); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	var got int
	ok := waitUntil(5*time.Second, func() bool {
		got = runtime.NumGoroutine()
		return got <= before
	})
	if !ok {
		buf := make([]byte, 1<<16)
		n := runtime.Stack(buf, true)
		t.Fatalf("got %d goroutines after Close, want <= %d\n%s", got, before, buf[:n])
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	v := newVerifier(b, buyertoken.Options{})
	settings := billing.AuthSettings{HS256Secret: hsSecret, Issuer: "https://idp.example", Audience: "billing"}
	tok := buyertokentest.SignHS256(b, hsSecret, claims(map[string]any{"iss": "https://idp.example", "aud": "billing"}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRS256Cached(b *testing.B) {
	srv := buyertokentest.NewJWKSServer(b)
	v := newVerifier(b, buyertoken.Options{})
	settings := billing.AuthSettings{JWKSURL: srv.URL()}
	tok := srv.SignRS256(claims(nil))
	ctx := context.Background()
	if _, err := v.Verify(ctx, settings, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, settings, tok); err != nil {
			b.Fatal(err)
		}
	}
	if got := srv.Requests(); got != 1 {
		b.Fatalf("got %d JWKS fetches, want 1", got)
	}
}

// rs256Token returns a valid RS256 token from a JWKS server of its own.
func rs256Token(tb testing.TB) string {
	tb.Helper()
	return buyertokentest.NewJWKSServer(tb).SignRS256(claims(nil))
}

func signNone(tb testing.TB, c map[string]any) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(c)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func signHS512(tb testing.TB, secret string, c map[string]any) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(c)).SignedString([]byte(secret))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// closedURL returns a loopback URL nothing listens on.
func closedURL(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr + "/jwks.json"
}

// hangingServer returns the URL of a server that never answers until the
// test ends.
func hangingServer(tb testing.TB) string {
	tb.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() { close(release) })
	return srv.URL
}

func waitFor(tb testing.TB, timeout time.Duration, cond func() bool) {
	tb.Helper()
	if !waitUntil(timeout, cond) {
		tb.Fatalf("condition not met within %v", timeout)
	}
}

func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

func TestVerify_IssuedInTheFuture(t *testing.T) {
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{HS256Secret: hsSecret}
	for _, c := range []struct {
		name  string
		ahead time.Duration
		ok    bool
	}{{"OKNow", 0, true}, {"OKSkew", 50 * time.Second, true}, {"ErrTwoMinutes", 2 * time.Minute, false}} {
		t.Run(c.name, func(t *testing.T) {
			tok := buyertokentest.SignHS256(t, hsSecret, claims(map[string]any{"iat": now.Add(c.ahead).Unix()}))
			_, err := v.Verify(context.Background(), settings, tok)
			if c.ok && err != nil {
				t.Fatalf("got %v, want the token accepted", err)
			}
			if !c.ok {
				assertCode(t, err, billing.EUNAUTHORIZED, "issued in the future")
			}
		})
	}
}

func TestVerify_EmailVerified(t *testing.T) {
	v := newVerifier(t, buyertoken.Options{})
	settings := billing.AuthSettings{HS256Secret: hsSecret}
	for _, c := range []struct {
		name   string
		claim  any
		want   *bool
		owning bool
	}{
		{"Absent", nil, nil, true},
		{"True", true, ptr(true), true},
		{"TrueString", "true", ptr(true), true},
		{"False", false, ptr(false), false},
		{"FalseString", "false", ptr(false), false},
		{"Other", "yes", ptr(false), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := claims(nil)
			if c.claim != nil {
				cl["email_verified"] = c.claim
			}
			got, err := v.Verify(context.Background(), settings, buyertokentest.SignHS256(t, hsSecret, cl))
			if err != nil {
				t.Fatal(err)
			}
			if (got.EmailVerified == nil) != (c.want == nil) || (c.want != nil && *got.EmailVerified != *c.want) {
				t.Errorf("got EmailVerified %v, want %v", got.EmailVerified, c.want)
			}
			if got.EmailOwned() != c.owning {
				t.Errorf("got EmailOwned %v, want %v", got.EmailOwned(), c.owning)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestVerify_JWKSPrivateAddressRefused checks that, by default, a JWKS URL
// that reaches a loopback address is not fetched, directly or through a
// redirect.
func TestVerify_JWKSPrivateAddressRefused(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	tok := srv.SignRS256(claims(nil))
	t.Run("ErrLoopback", func(t *testing.T) {
		v := newVerifier(t, buyertoken.Options{URLs: &urlguard.Guard{}})
		_, err := v.Verify(context.Background(), billing.AuthSettings{ProjectID: "prj_a", JWKSURL: srv.URL()}, tok)
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
		if n := srv.Requests(); n != 0 {
			t.Errorf("got %d requests to the loopback JWKS, want 0", n)
		}
	})
	t.Run("ErrMetadataAddress", func(t *testing.T) {
		v := newVerifier(t, buyertoken.Options{URLs: &urlguard.Guard{}})
		_, err := v.Verify(context.Background(), billing.AuthSettings{ProjectID: "prj_a", JWKSURL: "http://169.254.169.254/latest/meta-data/"}, tok)
		assertCode(t, err, billing.EUNAUTHORIZED, "could not be fetched")
	})
	t.Run("OKWhenAllowed", func(t *testing.T) {
		v := newVerifier(t, buyertoken.Options{URLs: &urlguard.Guard{AllowPrivate: true}})
		if _, err := v.Verify(context.Background(), billing.AuthSettings{ProjectID: "prj_a", JWKSURL: srv.URL()}, tok); err != nil {
			t.Fatal(err)
		}
	})
}

// TestVerify_OneKeySetPerProject checks that a project that changes its
// JWKS URL leaves no key set (and refresher) behind, however often, and
// that a URL another project still uses is kept.
func TestVerify_OneKeySetPerProject(t *testing.T) {
	srv := buyertokentest.NewJWKSServer(t)
	tok := srv.SignRS256(claims(nil))
	v := newVerifier(t, buyertoken.Options{})
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for i := range 60 {
		url := fmt.Sprintf("%s?v=%d", srv.URL(), i)
		if _, err := v.Verify(ctx, billing.AuthSettings{ProjectID: "prj_a", JWKSURL: url}, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.KeySets(); n != 1 {
		t.Errorf("got %d key sets after one project used 60 URLs in turn, want 1", n)
	}
	var got int
	if !waitUntil(5*time.Second, func() bool { got = runtime.NumGoroutine(); return got <= before+5 }) {
		t.Errorf("got %d goroutines, want at most %d: refreshers of dropped key sets still run", got, before+5)
	}

	shared := srv.URL() + "?shared"
	for _, p := range []string{"prj_b", "prj_c"} {
		if _, err := v.Verify(ctx, billing.AuthSettings{ProjectID: p, JWKSURL: shared}, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(ctx, billing.AuthSettings{ProjectID: "prj_b", HS256Secret: hsSecret}, buyertokentest.SignHS256(t, hsSecret, claims(nil))); err != nil {
		t.Fatal(err)
	}
	if n := v.KeySets(); n != 2 {
		t.Errorf("got %d key sets, want 2 (prj_a's and the one prj_c still uses)", n)
	}
	if _, err := v.Verify(ctx, billing.AuthSettings{ProjectID: "prj_c", HS256Secret: hsSecret}, buyertokentest.SignHS256(t, hsSecret, claims(nil))); err != nil {
		t.Fatal(err)
	}
	if n := v.KeySets(); n != 1 {
		t.Errorf("got %d key sets, want 1 once no project uses the shared URL", n)
	}
}
