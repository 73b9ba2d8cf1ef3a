package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"

	"github.com/stackfordevs/billing"
)

// Credential prefixes.
const (
	APIKeyPrefix    = "pk_"
	SecretKeyPrefix = "sk_"
)

// lowerBase32 is RFC 4648 base32 in lower case without padding: ids and keys
// made of it are URL-safe and easy to read aloud.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewAPIKey returns a new public project key id: "pk_" and 24 lowercase
// base32 characters (120 random bits).
func NewAPIKey() (string, error) {
	s, err := randomBase32(24)
	if err != nil {
		return "", err
	}
	return APIKeyPrefix + s, nil
}

// NewSecretKey returns a new project secret key: "sk_" and the unpadded
// base64url encoding of 32 random bytes (256 bits).
func NewSecretKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", billing.Errorf(billing.EINTERNAL, "Could not generate a secret key.")
	}
	return SecretKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// NewID returns a new random id: prefix (such as "ten_" or "prj_") and 20
// lowercase base32 characters (100 random bits).
func NewID(prefix string) (string, error) {
	s, err := randomBase32(20)
	if err != nil {
		return "", err
	}
	return prefix + s, nil
}

// HashSecret returns the SHA-256 of secret, the form in which a project
// secret is stored. Secrets are random with at least 256 bits of entropy, so
// a fast hash is enough; a password hash would only slow every request.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches reports whether secret hashes to hash, comparing in constant
// time.
func SecretMatches(hash []byte, secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(hash, sum[:]) == 1
}

// minRevealLen is the shortest value of which Last4 shows anything: below
// it, four characters would be too large a share of the secret.
const minRevealLen = 8

// Last4 returns the last four characters of s, the only part of a stored
// secret the service ever shows. It returns "" when s is shorter than eight
// characters, so a short value is never largely revealed.
func Last4(s string) string {
	r := []rune(s)
	if len(r) < minRevealLen {
		return ""
	}
	return string(r[len(r)-4:])
}

// Mask returns s hidden but for its last four characters, as "****abcd". It
// returns "" for "" and "****" when s is too short to show any of it.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	return "****" + Last4(s)
}

// randomBase32 returns n random lowercase base32 characters.
func randomBase32(n int) (string, error) {
	b := make([]byte, (n*5+7)/8)
	if _, err := rand.Read(b); err != nil {
		return "", billing.Errorf(billing.EINTERNAL, "Could not generate a random identifier.")
	}
	return lowerBase32.EncodeToString(b)[:n], nil
}
