package secret_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/secret"
)

func newKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, secret.KeySize)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustKeyring(tb testing.TB, current []byte, previous ...[]byte) *secret.Keyring {
	tb.Helper()
	k, err := secret.NewKeyring(current, previous...)
	if err != nil {
		tb.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func TestKeyring_SealOpen(t *testing.T) {
	key := newKey(t)
	ring := mustKeyring(t, key)

	t.Run("OK", func(t *testing.T) {
		const plain = "sk_test_51Habcdefghijklmnop"
		sealed, err := ring.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		wantPrefix := "v1:" + ring.CurrentKeyID() + ":"
		if !strings.HasPrefix(sealed, wantPrefix) {
			t.Fatalf("got %q, want prefix %q", sealed, wantPrefix)
		}
		if strings.Contains(sealed, plain) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := ring.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if got != plain {
			t.Fatalf("got %q, want %q", got, plain)
		}
	})

	t.Run("FreshNonce", func(t *testing.T) {
		a, _ := ring.Seal("same")
		b, _ := ring.Seal("same")
		if a == b {
			t.Fatalf("two seals of the same plaintext are equal: %q", a)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		sealed, err := ring.Seal("")
		if err != nil || sealed != "" {
			t.Fatalf("Seal(\"\") = %q, %v; want \"\", nil", sealed, err)
		}
		got, err := ring.Open("")
		if err != nil || got != "" {
			t.Fatalf("Open(\"\") = %q, %v; want \"\", nil", got, err)
		}
	})

	t.Run("KeyIDIsHashPrefix", func(t *testing.T) {
		id := ring.CurrentKeyID()
		if len(id) != 8 || id != secret.KeyID(key) {
			t.Fatalf("got %q, want 8 hex chars equal to KeyID(key)=%q", id, secret.KeyID(key))
		}
	})
}

func TestKeyring_Open(t *testing.T) {
	key := newKey(t)
	ring := mustKeyring(t, key)
	sealed, err := ring.Seal("whsec_abcdefghijklmnop")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ErrUnknownKeyID", func(t *testing.T) {
		other := mustKeyring(t, newKey(t))
		_, err := other.Open(sealed)
		assertInternal(t, err, key)
		if !strings.Contains(billing.ErrorMessage(err), ring.CurrentKeyID()) {
			t.Fatalf("got message %q, want it to name kid %q", billing.ErrorMessage(err), ring.CurrentKeyID())
		}
	})

	t.Run("ErrTampered", func(t *testing.T) {
		i := strings.LastIndex(sealed, ":") + 1
		payload, _ := base64.RawURLEncoding.DecodeString(sealed[i:])
		payload[len(payload)-1] ^= 0x01
		tampered := sealed[:i] + base64.RawURLEncoding.EncodeToString(payload)
		_, err := ring.Open(tampered)
		assertInternal(t, err, key)
	})

	for name, bad := range map[string]string{
		"ErrNoVersion":    "abc",
		"ErrWrongVersion": "v2:" + ring.CurrentKeyID() + ":AAAA",
		"ErrNoPayload":    "v1:" + ring.CurrentKeyID() + ":",
		"ErrShortPayload": "v1:" + ring.CurrentKeyID() + ":AAAA",
		"ErrBadBase64":    "v1:" + ring.CurrentKeyID() + ":!!!!",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ring.Open(bad)
			assertInternal(t, err, key)
		})
	}
}

func TestKeyring_Rotation(t *testing.T) {
	oldKey, newKeyB := newKey(t), newKey(t)
	oldRing := mustKeyring(t, oldKey)
	sealed, err := oldRing.SealFor("rk_live_abcdefghijkl", "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if oldRing.NeedsRotation(sealed) {
		t.Fatal("NeedsRotation under the sealing key: got true, want false")
	}

	ring := mustKeyring(t, newKeyB, oldKey)
	if !ring.NeedsRotation(sealed) {
		t.Fatal("NeedsRotation under the new ring: got false, want true")
	}
	plain, err := ring.OpenFor(sealed, "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if plain != "rk_live_abcdefghijkl" {
		t.Fatalf("got %q, want %q", plain, "rk_live_abcdefghijkl")
	}
	resealed, err := ring.SealFor(plain, "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if ring.NeedsRotation(resealed) {
		t.Fatal("NeedsRotation after resealing: got true, want false")
	}
	if _, err := oldRing.OpenFor(resealed, "ctx"); err == nil {
		t.Fatal("old ring opened a value sealed under the new key")
	}
	if ring.NeedsRotation("") || ring.NeedsRotation("garbage") {
		t.Fatal("NeedsRotation of empty or malformed value: got true, want false")
	}
}

// TestKeyring_BoundContext checks that a value sealed for one context opens
// only in it, and that unbound (v1) values still open and need rotation.
func TestKeyring_BoundContext(t *testing.T) {
	ring := mustKeyring(t, newKey(t))
	sealed, err := ring.SealFor("sk_test_abc", "stripe_settings/prj_a/test/secret_key")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "v2:"+ring.CurrentKeyID()+":") {
		t.Errorf("got %q, want the v2 format", sealed)
	}
	if got, err := ring.OpenFor(sealed, "stripe_settings/prj_a/test/secret_key"); err != nil || got != "sk_test_abc" {
		t.Errorf("same context: got %q, %v", got, err)
	}
	for _, other := range []string{"stripe_settings/prj_b/test/secret_key", "stripe_settings/prj_a/live/secret_key",
		"stripe_settings/prj_a/test/webhook_secret", ""} {
		if _, err := ring.OpenFor(sealed, other); err == nil {
			t.Errorf("opened a value bound to another context with %q", other)
		}
	}
	legacy, _ := ring.Seal("sk_test_old")
	if got, err := ring.OpenFor(legacy, "anything"); err != nil || got != "sk_test_old" {
		t.Errorf("v1 value: got %q, %v; want it opened", got, err)
	}
	if !ring.NeedsRotation(legacy) {
		t.Error("a v1 value does not need rotation, want it rebound")
	}
	if ring.NeedsRotation(sealed) {
		t.Error("a v2 value under the current key needs rotation")
	}
}

func TestNewKeyring(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		t.Run(fmt.Sprintf("ErrLength%d", n), func(t *testing.T) {
			_, err := secret.NewKeyring(make([]byte, n))
			if got := billing.ErrorCode(err); got != billing.EINTERNAL {
				t.Fatalf("len %d: got code %q, want %q", n, got, billing.EINTERNAL)
			}
		})
	}
	t.Run("ErrPreviousLength", func(t *testing.T) {
		_, err := secret.NewKeyring(newKey(t), newKey(t), make([]byte, 10))
		if got := billing.ErrorCode(err); got != billing.EINTERNAL {
			t.Fatalf("got code %q, want %q", got, billing.EINTERNAL)
		}
		if !strings.Contains(billing.ErrorMessage(err), "Previous master key 2") {
			t.Fatalf("got message %q, want it to name previous key 2", billing.ErrorMessage(err))
		}
	})
	t.Run("DuplicateKey", func(t *testing.T) {
		k := newKey(t)
		mustKeyring(t, k, k)
	})
}

func TestParseKeyring(t *testing.T) {
	cur, prev1, prev2 := newKey(t), newKey(t), newKey(t)
	old := mustKeyring(t, prev2)
	sealed, _ := old.Seal("secret")

	for name, enc := range map[string]*base64.Encoding{
		"Std": base64.StdEncoding, "RawStd": base64.RawStdEncoding,
		"URL": base64.URLEncoding, "RawURL": base64.RawURLEncoding,
	} {
		t.Run(name, func(t *testing.T) {
			ring, err := secret.ParseKeyring(enc.EncodeToString(cur),
				" "+enc.EncodeToString(prev1)+", "+enc.EncodeToString(prev2)+",")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ring.CurrentKeyID(), secret.KeyID(cur); got != want {
				t.Fatalf("got kid %q, want %q", got, want)
			}
			if got, err := ring.Open(sealed); err != nil || got != "secret" {
				t.Fatalf("Open = %q, %v; want %q, nil", got, err, "secret")
			}
		})
	}

	t.Run("NoPrevious", func(t *testing.T) {
		if _, err := secret.ParseKeyring(base64.StdEncoding.EncodeToString(cur), ""); err != nil {
			t.Fatal(err)
		}
	})

	for name, tc := range map[string]struct{ cur, prev string }{
		"ErrEmpty":         {"", ""},
		"ErrNotBase64":     {"not base64 at all!", ""},
		"ErrShort":         {base64.StdEncoding.EncodeToString(cur[:16]), ""},
		"ErrPreviousShort": {base64.StdEncoding.EncodeToString(cur), base64.StdEncoding.EncodeToString(cur[:16])},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := secret.ParseKeyring(tc.cur, tc.prev)
			if got := billing.ErrorCode(err); got != billing.EINTERNAL {
				t.Fatalf("got code %q, want %q", got, billing.EINTERNAL)
			}
			msg := billing.ErrorMessage(err)
			if tc.cur != "" && strings.Contains(msg, tc.cur) {
				t.Fatalf("message %q contains the key", msg)
			}
		})
	}
}

func TestGenerateMasterKey(t *testing.T) {
	a, err := secret.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := secret.GenerateMasterKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != secret.KeySize {
		t.Fatalf("got %d bytes (err %v), want %d", len(raw), err, secret.KeySize)
	}
	if _, err := secret.ParseKeyring(a, b); err != nil {
		t.Fatalf("ParseKeyring of generated keys: %v", err)
	}
}

// assertInternal checks err is an EINTERNAL *billing.Error whose message
// leaks no key material.
func assertInternal(tb testing.TB, err error, key []byte) {
	tb.Helper()
	if err == nil {
		tb.Fatal("got nil error, want one")
	}
	if got := billing.ErrorCode(err); got != billing.EINTERNAL {
		tb.Fatalf("got code %q, want %q", got, billing.EINTERNAL)
	}
	msg := billing.ErrorMessage(err)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		if strings.Contains(msg, enc.EncodeToString(key)) {
			tb.Fatalf("message %q contains the key", msg)
		}
	}
	if bytes.Contains([]byte(msg), key) {
		tb.Fatalf("message %q contains the raw key", msg)
	}
}

func TestDeriveKey(t *testing.T) {
	a, _ := secret.NewKeyring(bytes.Repeat([]byte{1}, 32))
	b, _ := secret.NewKeyring(bytes.Repeat([]byte{2}, 32))
	if got := a.DeriveKey("x"); len(got) != 32 || bytes.Equal(got, a.DeriveKey("y")) || bytes.Equal(got, b.DeriveKey("x")) {
		t.Errorf("got %x, want 32 bytes that differ per purpose and per master key", got)
	}
	if !bytes.Equal(a.DeriveKey("x"), a.DeriveKey("x")) {
		t.Error("derivation is not deterministic")
	}
}
