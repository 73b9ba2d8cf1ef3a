// Package buyertokentest mints buyer tokens for tests: HS256 tokens from a
// shared secret, and RS256 and ES256 tokens whose public keys a local JWKS
// server publishes.
package buyertokentest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// SignHS256 returns claims signed with HS256 under secret.
func SignHS256(tb testing.TB, secret string, claims map[string]any) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		tb.Fatalf("buyertokentest: sign HS256: %v", err)
	}
	return s
}

// JWKSServer is an HTTP server that publishes a JWK Set with one RSA and one
// ECDSA P-256 public key and signs tokens with the matching private keys.
// Rotate adds a new pair of keys, as an identity provider does when it rolls
// its keys. The server is closed when the test ends.
type JWKSServer struct {
	tb       testing.TB
	srv      *httptest.Server
	requests atomic.Int64

	mu         sync.Mutex
	generation int
	rsaKey     *rsa.PrivateKey
	rsaKID     string
	ecKey      *ecdsa.PrivateKey
	ecKID      string
	body       []byte // the JWK Set JSON served
	published  []jwkset.JWK
}

// NewJWKSServer starts a JWKSServer with a first pair of keys.
func NewJWKSServer(tb testing.TB) *JWKSServer {
	tb.Helper()
	s := &JWKSServer{tb: tb}
	s.Rotate()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL returns the URL of the JWK Set.
func (s *JWKSServer) URL() string { return s.srv.URL + "/.well-known/jwks.json" }

// Requests returns how many times the JWK Set has been fetched.
func (s *JWKSServer) Requests() int { return int(s.requests.Load()) }

// Rotate generates a new RSA and ECDSA key pair with new key ids, publishes
// them beside the old ones and signs with them from now on.
func (s *JWKSServer) Rotate() {
	s.tb.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		s.tb.Fatalf("buyertokentest: generate RSA key: %v", err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.tb.Fatalf("buyertokentest: generate ECDSA key: %v", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation++
	gen := strconv.Itoa(s.generation)
	s.rsaKey, s.rsaKID = rsaKey, "rsa-"+gen
	s.ecKey, s.ecKID = ecKey, "ec-"+gen
	s.published = append(s.published,
		s.jwk(rsaKey.Public(), s.rsaKID, jwkset.AlgRS256),
		s.jwk(ecKey.Public(), s.ecKID, jwkset.AlgES256))

	var set jwkset.JWKSMarshal
	for _, k := range s.published {
		set.Keys = append(set.Keys, k.Marshal())
	}
	body, err := json.Marshal(set)
	if err != nil {
		s.tb.Fatalf("buyertokentest: marshal JWK Set: %v", err)
	}
	s.body = body
}

// SignRS256 returns claims signed with RS256 under the current RSA key, with
// its key id in the header.
func (s *JWKSServer) SignRS256(claims map[string]any) string {
	s.tb.Helper()
	s.mu.Lock()
	key, kid := s.rsaKey, s.rsaKID
	s.mu.Unlock()
	return s.sign(jwt.SigningMethodRS256, key, kid, claims)
}

// SignES256 returns claims signed with ES256 under the current ECDSA key, with
// its key id in the header.
func (s *JWKSServer) SignES256(claims map[string]any) string {
	s.tb.Helper()
	s.mu.Lock()
	key, kid := s.ecKey, s.ecKID
	s.mu.Unlock()
	return s.sign(jwt.SigningMethodES256, key, kid, claims)
}

// RSAPublicKey returns the public half of the current RSA key.
func (s *JWKSServer) RSAPublicKey() *rsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.rsaKey.PublicKey
}

// CurrentRSAKeyID returns the key id of the current RSA key.
func (s *JWKSServer) CurrentRSAKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rsaKID
}

func (s *JWKSServer) sign(method jwt.SigningMethod, key crypto.Signer, kid string, claims map[string]any) string {
	s.tb.Helper()
	t := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		s.tb.Fatalf("buyertokentest: sign %s: %v", method.Alg(), err)
	}
	return signed
}

func (s *JWKSServer) jwk(pub crypto.PublicKey, kid string, alg jwkset.ALG) jwkset.JWK {
	s.tb.Helper()
	k, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig},
	})
	if err != nil {
		s.tb.Fatalf("buyertokentest: build JWK: %v", err)
	}
	if err := k.Validate(); err != nil {
		s.tb.Fatalf("buyertokentest: invalid JWK: %v", err)
	}
	return k
}
