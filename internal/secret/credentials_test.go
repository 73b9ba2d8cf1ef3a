package secret_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/stackfordevs/billing/internal/secret"
)

func TestNewAPIKey(t *testing.T) {
	re := regexp.MustCompile(`^pk_[a-z2-7]{24}$`)
	assertUnique(t, 1000, func() string {
		k, err := secret.NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(k) {
			t.Fatalf("got %q, want match of %s", k, re)
		}
		return k
	})
}

func TestNewSecretKey(t *testing.T) {
	assertUnique(t, 1000, func() string {
		k, err := secret.NewSecretKey()
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(k, "sk_")
		if !ok {
			t.Fatalf("got %q, want prefix sk_", k)
		}
		raw, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || len(raw) < 32 {
			t.Fatalf("got %d random bytes (err %v), want >= 32", len(raw), err)
		}
		return k
	})
}

func TestNewID(t *testing.T) {
	for _, prefix := range []string{"ten_", "prj_"} {
		t.Run(prefix, func(t *testing.T) {
			re := regexp.MustCompile(`^` + prefix + `[a-z2-7]{20}$`)
			assertUnique(t, 1000, func() string {
				id, err := secret.NewID(prefix)
				if err != nil {
					t.Fatal(err)
				}
				if !re.MatchString(id) {
					t.Fatalf("got %q, want match of %s", id, re)
				}
				return id
			})
		})
	}
}

func TestSecretMatches(t *testing.T) {
	sk, err := secret.NewSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	hash := secret.HashSecret(sk)
	if len(hash) != 32 {
		t.Fatalf("got hash of %d bytes, want 32", len(hash))
	}

	t.Run("OK", func(t *testing.T) {
		if !secret.SecretMatches(hash, sk) {
			t.Fatal("got false, want true")
		}
	})
	for name, candidate := range map[string]string{
		"ErrOtherSecret": "sk_" + strings.Repeat("A", 43),
		"ErrOneCharOff":  sk[:len(sk)-1] + string(sk[len(sk)-1]^1),
		"ErrPrefixOnly":  sk[:10],
		"ErrEmpty":       "",
	} {
		t.Run(name, func(t *testing.T) {
			if secret.SecretMatches(hash, candidate) {
				t.Fatal("got true, want false")
			}
		})
	}
	t.Run("ErrEmptyHash", func(t *testing.T) {
		if secret.SecretMatches(nil, sk) || secret.SecretMatches(nil, "") {
			t.Fatal("got true for an empty hash, want false")
		}
	})
}

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, mask, last4 string }{
		{"", "", ""},
		{"abc", "****", ""},
		{"1234567", "****", ""},
		{"12345678", "****5678", "5678"},
		{"sk_test_51Habcdefghijklmnopabcd", "****abcd", "abcd"},
		{"whsec_ééééxyzé", "****xyzé", "xyzé"},
	} {
		if got := secret.Mask(tc.in); got != tc.mask {
			t.Errorf("Mask(%q): got %q, want %q", tc.in, got, tc.mask)
		}
		if got := secret.Last4(tc.in); got != tc.last4 {
			t.Errorf("Last4(%q): got %q, want %q", tc.in, got, tc.last4)
		}
	}
}

func assertUnique(tb testing.TB, n int, gen func() string) {
	tb.Helper()
	seen := make(map[string]bool, n)
	for range n {
		v := gen()
		if seen[v] {
			tb.Fatalf("duplicate value %q", v)
		}
		seen[v] = true
	}
}

func BenchmarkSecretMatches(b *testing.B) {
	sk, _ := secret.NewSecretKey()
	hash := secret.HashSecret(sk)
	b.ReportAllocs()
	for b.Loop() {
		if !secret.SecretMatches(hash, sk) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkKeyringOpen(b *testing.B) {
	ring := mustKeyring(b, newKey(b))
	sealed, _ := ring.Seal("sk_test_51Habcdefghijklmnopqrstuvwxyz")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}
