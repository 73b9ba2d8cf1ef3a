package buyertoken

import (
	"context"
	"testing"
	"time"

	"github.com/stackfordevs/billing"
)

func TestSignHS256(t *testing.T) {
	now := time.Now()
	v := NewVerifier(Options{})
	defer v.Close()
	settings := billing.AuthSettings{HS256Secret: "a-secret-of-more-than-32-characters!", Issuer: "https://auth.example.com/", Audience: "billing"}
	tok, err := SignHS256(settings, Claims{Subject: "user_123", Email: "ada@example.com"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), settings, tok)
	if err != nil || got != (Claims{Subject: "user_123", Email: "ada@example.com"}) {
		t.Fatalf("got %+v, %v; want the signed claims", got, err)
	}
	t.Run("ErrExpired", func(t *testing.T) {
		old, err := SignHS256(settings, Claims{Subject: "user_123"}, now.Add(-2*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), settings, old); billing.ErrorCode(err) != billing.EUNAUTHORIZED {
			t.Errorf("got %v, want an expired token refused", err)
		}
	})
	t.Run("ErrOtherAudience", func(t *testing.T) {
		other := settings
		other.Audience = "another"
		if _, err := v.Verify(context.Background(), other, tok); billing.ErrorCode(err) != billing.EUNAUTHORIZED {
			t.Errorf("got %v, want the audience checked", err)
		}
	})
	t.Run("ErrJWKSProject", func(t *testing.T) {
		_, err := SignHS256(billing.AuthSettings{JWKSURL: "https://auth.example.com/jwks.json"}, Claims{Subject: "u"}, now, time.Hour)
		if billing.ErrorCode(err) != billing.EINVALID {
			t.Errorf("got %v, want EINVALID", err)
		}
	})
}
