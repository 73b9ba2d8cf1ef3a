package buyertoken

import (
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stackfordevs/billing"
)

// SignHS256 returns a buyer token for c signed with the settings' HS256
// secret, carrying their issuer and audience when set, issued at now and
// valid for ttl. It is how a developer tries the buyer endpoints; in
// production the application's identity provider issues the tokens. A
// project without an HS256 secret is EINVALID.
func SignHS256(settings billing.AuthSettings, c Claims, now time.Time, ttl time.Duration) (string, error) {
	if settings.HS256Secret == "" {
		return "", billing.Errorf(billing.EINVALID,
			"The project verifies buyer tokens with a JWKS URL; only its identity provider can sign them.")
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			Issuer:    settings.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Email: c.Email,
	}
	if settings.Audience != "" {
		claims.Audience = jwt.ClaimStrings{settings.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(settings.HS256Secret))
}
