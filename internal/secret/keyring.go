// Package secret holds the service's cryptographic building blocks: the
// keyring that encrypts stored secrets at rest and the generators and hashes
// of project credentials.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/stackfordevs/billing"
)

// KeySize is the length in bytes of a master key (AES-256).
const KeySize = 32

// Sealed value formats. v1 binds the key id; v2 (SealFor) also binds a
// context, such as the row and column the value is stored in, so that a
// ciphertext copied elsewhere does not open.
const (
	sealVersion      = "v1"
	sealVersionBound = "v2"
)

// Keyring encrypts secrets at rest with AES-256-GCM. It seals with its
// current master key and opens values sealed with the current key or any of
// the previous keys, so master keys can be rotated without downtime. A
// Keyring is safe for concurrent use.
type Keyring struct {
	current   []byte
	currentID string
	aeads     map[string]cipher.AEAD // by key id
}

// NewKeyring returns a Keyring that seals with current and also opens values
// sealed with any of previous. Every key must be exactly 32 bytes.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD, 1+len(previous))}
	id, err := k.add(current, "Current master key")
	if err != nil {
		return nil, err
	}
	k.currentID = id
	k.current = append([]byte(nil), current...)
	for i, p := range previous {
		if _, err := k.add(p, "Previous master key "+strconv.Itoa(i+1)); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// ParseKeyring returns a Keyring from keys given as base64 (standard or
// URL-safe, padded or not): currentB64 is the current key and previousB64 a
// comma-separated list, possibly empty, of previous keys.
func ParseKeyring(currentB64 string, previousB64 string) (*Keyring, error) {
	current, err := decodeKey(currentB64, "Current master key")
	if err != nil {
		return nil, err
	}
	var previous [][]byte
	if strings.TrimSpace(previousB64) != "" {
		for i, s := range strings.Split(previousB64, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			p, err := decodeKey(s, "Previous master key "+strconv.Itoa(i+1))
			if err != nil {
				return nil, err
			}
			previous = append(previous, p)
		}
	}
	return NewKeyring(current, previous...)
}

// GenerateMasterKey returns a new random 32-byte master key in standard
// base64, the form ParseKeyring reads.
func GenerateMasterKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", billing.Errorf(billing.EINTERNAL, "Could not generate a master key.")
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// KeyID returns the id of a master key: the first 8 hex characters of its
// SHA-256. The id names the key without revealing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// DeriveKey returns a 32-byte key for one purpose (such as signing session
// cookies), derived from the current master key with HMAC-SHA256, so that no
// further secret has to be configured.
func (k *Keyring) DeriveKey(purpose string) []byte {
	m := hmac.New(sha256.New, k.current)
	m.Write([]byte("billing/derive/" + purpose))
	return m.Sum(nil)
}

// CurrentKeyID returns the id of the key Seal uses.
func (k *Keyring) CurrentKeyID() string { return k.currentID }

// Seal encrypts plaintext under the current key with a fresh random nonce and
// returns "v1:<kid>:<base64url(nonce|ciphertext)>". Seal("") returns "" so an
// unset secret stays unset. Values stored at rest are sealed with SealFor.
func (k *Keyring) Seal(plaintext string) (string, error) {
	return k.seal(plaintext, sealVersion, "")
}

// SealFor is Seal bound to aad, a context such as the project,
// environment and column the value is stored in: it returns
// "v2:<kid>:<base64url(nonce|ciphertext)>", which OpenFor opens only with
// the same aad.
func (k *Keyring) SealFor(plaintext, aad string) (string, error) {
	return k.seal(plaintext, sealVersionBound, aad)
}

func (k *Keyring) seal(plaintext, version, aad string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	aead := k.aeads[k.currentID]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", billing.Errorf(billing.EINTERNAL, "Could not encrypt a secret.")
	}
	sealed := aead.Seal(buf, buf, []byte(plaintext), additionalData(version, k.currentID, aad))
	return version + ":" + k.currentID + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open decrypts a value returned by Seal under any key of the ring.
// Open("") returns "". It fails when the value is malformed, was sealed under
// a key the ring does not hold, or was tampered with.
func (k *Keyring) Open(sealed string) (string, error) {
	return k.OpenFor(sealed, "")
}

// OpenFor decrypts a value returned by SealFor with the same aad, or by
// Seal (the format before values were bound; NeedsRotation reports it so
// that a rotation binds it). A value bound to another context does not
// open.
func (k *Keyring) OpenFor(sealed, aad string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	version, kid, payload, ok := parseSealed(sealed)
	if !ok {
		return "", billing.Errorf(billing.EINTERNAL, "Stored secret is not in the expected sealed format.")
	}
	if version == sealVersion {
		aad = ""
	}
	aead, ok := k.aeads[kid]
	if !ok {
		return "", billing.Errorf(billing.EINTERNAL,
			"Stored secret was sealed with master key %q, which is not configured; add that key to the previous master keys.", kid)
	}
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil || len(data) < aead.NonceSize()+aead.Overhead() {
		return "", billing.Errorf(billing.EINTERNAL, "Stored secret is not in the expected sealed format.")
	}
	nonce, ciphertext := data[:aead.NonceSize()], data[aead.NonceSize():]
	plaintext, err := aead.Open(nil, nonce, ciphertext, additionalData(version, kid, aad))
	if err != nil {
		return "", billing.Errorf(billing.EINTERNAL,
			"Stored secret could not be decrypted with master key %q; it is corrupt, was tampered with, or belongs to another record.", kid)
	}
	return string(plaintext), nil
}

// NeedsRotation reports whether sealed was sealed under a key other than the
// current one, or without a context (Seal), so it should be opened and
// sealed again with SealFor. It is false for ""
// and for values that are not in the sealed format.
func (k *Keyring) NeedsRotation(sealed string) bool {
	version, kid, _, ok := parseSealed(sealed)
	return ok && (kid != k.currentID || version != sealVersionBound)
}

// add registers key and returns its id. name says which key it is in errors.
func (k *Keyring) add(key []byte, name string) (string, error) {
	if len(key) != KeySize {
		return "", billing.Errorf(billing.EINTERNAL, "%s must be %d bytes, got %d.", name, KeySize, len(key))
	}
	id := KeyID(key)
	if _, ok := k.aeads[id]; ok {
		// The same key listed twice (for example current also among the
		// previous keys) is harmless; 32-bit id collisions of distinct keys
		// are not worth a separate path.
		return id, nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", billing.Errorf(billing.EINTERNAL, "%s could not be used.", name)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", billing.Errorf(billing.EINTERNAL, "%s could not be used.", name)
	}
	k.aeads[id] = aead
	return id, nil
}

// parseSealed splits "v1:<kid>:<payload>" or "v2:<kid>:<payload>".
func parseSealed(sealed string) (version, kid, payload string, ok bool) {
	version, rest, ok := strings.Cut(sealed, ":")
	if !ok || (version != sealVersion && version != sealVersionBound) {
		return "", "", "", false
	}
	kid, payload, ok = strings.Cut(rest, ":")
	if !ok || len(kid) != 8 || payload == "" {
		return "", "", "", false
	}
	return version, kid, payload, true
}

// additionalData binds the format version, the key id and, from v2 on, the
// value's context to the ciphertext.
func additionalData(version, kid, aad string) []byte {
	if version == sealVersion {
		return []byte(sealVersion + ":" + kid)
	}
	return []byte(version + ":" + kid + ":" + aad)
}

// decodeKey decodes a base64 master key in any of the common alphabets.
func decodeKey(s, name string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, billing.Errorf(billing.EINTERNAL, "%s is empty.", name)
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				return nil, billing.Errorf(billing.EINTERNAL, "%s must be %d bytes, got %d.", name, KeySize, len(key))
			}
			return key, nil
		}
	}
	return nil, billing.Errorf(billing.EINTERNAL, "%s is not valid base64.", name)
}
