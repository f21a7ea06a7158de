package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrTokenKey means the stored CC token cannot be opened: no HS2CC_TOKEN_KEY
// is configured, or the token was sealed under a key that is not configured.
// Reconnecting CC (or configuring the old key) is the remedy.
var ErrTokenKey = errors.New("store: CC token key")

// sealedPrefix marks a sealed value. CC's tokens are JWTs ("eyJ…"), so a
// value without it is a plain-text token from before sealing.
const sealedPrefix = "hs2cc-aesgcm-v1:"

// TokenKeys seal and open the CC token pair with AES-256-GCM. The first key
// seals; every key opens, so that HS2CC_TOKEN_KEY can list the new key and
// then the old one while a rotation is under way.
type TokenKeys struct {
	keys []tokenKey
}

type tokenKey struct {
	id   string
	aead cipher.AEAD
}

// NewTokenKey returns a fresh random key in the form ParseTokenKeys reads.
func NewTokenKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.StdEncoding.EncodeToString(b)
}

// ParseTokenKeys reads a comma-separated list of 32-byte keys, each as
// base64 (standard or URL alphabet, padded or not) or 64 hex digits. The
// error never repeats the key.
func ParseTokenKeys(s string) (*TokenKeys, error) {
	var tk TokenKeys
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		raw, err := decodeKey(part)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrTokenKey, i+1, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrTokenKey, i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrTokenKey, i+1, err)
		}
		tk.keys = append(tk.keys, tokenKey{id: keyID(raw), aead: aead})
	}
	if len(tk.keys) == 0 {
		return nil, fmt.Errorf("%w: no key given (make one with `hs2cc keygen`)", ErrTokenKey)
	}
	return &tk, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("want 32 bytes, got %d", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("want 32 bytes as base64 or 64 hex digits")
}

// keyID names a key without revealing it: a short hash, stored next to the
// sealed token so that a wrong key is reported as such.
func keyID(raw []byte) string {
	sum := sha256.Sum256(append([]byte("hs2cc token key id\x00"), raw...))
	return hex.EncodeToString(sum[:8])
}

// ID names the sealing key.
func (k *TokenKeys) ID() string { return k.keys[0].id }

// seal encrypts v under the first key. field is bound in as associated data
// so that the access and refresh ciphertexts cannot be swapped in the row.
func (k *TokenKeys) seal(field, v string) string {
	key := k.keys[0]
	nonce := make([]byte, key.aead.NonceSize(), key.aead.NonceSize()+len(v)+key.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out := key.aead.Seal(nonce, nonce, []byte(v), []byte(field))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out)
}

// open decrypts a value sealed under the key named id.
func (k *TokenKeys) open(id, field, v string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(v, sealedPrefix))
	if err != nil {
		return "", fmt.Errorf("%w: stored %s is not valid: %v", ErrTokenKey, field, err)
	}
	for _, key := range k.keys {
		if key.id != id {
			continue
		}
		n := key.aead.NonceSize()
		if len(raw) < n {
			return "", fmt.Errorf("%w: stored %s is too short", ErrTokenKey, field)
		}
		plain, err := key.aead.Open(nil, raw[:n], raw[n:], []byte(field))
		if err != nil {
			return "", fmt.Errorf("%w: stored %s does not open under key %s", ErrTokenKey, field, id)
		}
		return string(plain), nil
	}
	return "", fmt.Errorf("%w: the token was sealed under key %s, which HS2CC_TOKEN_KEY does not hold (it holds %s); configure that key or reconnect CC",
		ErrTokenKey, id, k.ids())
}

func (k *TokenKeys) ids() string {
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.id
	}
	return strings.Join(ids, ", ")
}

// sealTagged seals v like seal and writes the sealing key's id in front
// ("<id>.hs2cc-aesgcm-v1:…"), for copies kept where no key_id column sits
// next to them, such as the Redis cache. The id is no secret: keyID hashes
// the key.
func (k *TokenKeys) sealTagged(field, v string) string {
	return k.ID() + "." + k.seal(field, v)
}

// openTagged opens a value sealTagged made under any configured key.
func (k *TokenKeys) openTagged(field, v string) (string, error) {
	id, sealed, ok := strings.Cut(v, ".")
	if !ok || !strings.HasPrefix(sealed, sealedPrefix) {
		return "", fmt.Errorf("%w: %s is not sealed", ErrTokenKey, field)
	}
	return k.open(id, field, sealed)
}
