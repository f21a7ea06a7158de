package hubspot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Version names one of HubSpot's request-signature schemes.
type Version string

// The signature versions HubSpot sends. Workflow webhooks carry v2 in
// X-HubSpot-Signature and, since the v3 rollout, v3 alongside it; the
// Webhooks API carries v1 instead of v2.
const (
	V1 Version = "v1"
	V2 Version = "v2"
	V3 Version = "v3"
)

// The signature headers as HubSpot spells them. http.Header canonicalises
// names, so these work with Get and Set in any case.
const (
	HeaderSignature        = "X-HubSpot-Signature"
	HeaderSignatureVersion = "X-HubSpot-Signature-Version"
	HeaderSignatureV3      = "X-HubSpot-Signature-v3"
	HeaderRequestTimestamp = "X-HubSpot-Request-Timestamp"
)

// The canonical forms of the header names above. Verify looks them up in the
// map directly because http.Header.Get would allocate to canonicalise the
// mixed-case spelling on every request.
const (
	keySignature        = "X-Hubspot-Signature"
	keySignatureVersion = "X-Hubspot-Signature-Version"
	keySignatureV3      = "X-Hubspot-Signature-V3"
	keyRequestTimestamp = "X-Hubspot-Request-Timestamp"
)

// defaultWindow is HubSpot's documented v3 freshness limit; it also bounds
// how far ahead of our clock a timestamp may be.
const defaultWindow = 5 * time.Minute

// Sentinel errors returned, wrapped with detail, by Verifier.Verify.
var (
	// ErrMissingSignature means the request carries no signature that the
	// policy accepts, for example none at all, or only v2 when v3 is required.
	ErrMissingSignature = errors.New("missing signature")
	// ErrBadSignature means a signature was present but matches no secret.
	ErrBadSignature = errors.New("signature mismatch")
	// ErrStaleTimestamp means a genuine v3 signature whose timestamp lies
	// outside the accepted window; the signature is checked first so that this
	// error points at a clock or a delay rather than at the secret.
	ErrStaleTimestamp = errors.New("timestamp outside the accepted window")
	// ErrBadTimestamp means the v3 timestamp header is missing or is not an
	// integer count of milliseconds.
	ErrBadTimestamp = errors.New("bad timestamp")
	// ErrNoSecret means the Verifier has no usable secret; it is a
	// configuration fault, not the sender's.
	ErrNoSecret = errors.New("no client secret configured")
)

// Request is what a verifier needs from an HTTP request, independent of any
// framework.
type Request struct {
	Method string // upper-case HTTP method
	URI    string // full URI as HubSpot signed it: public base URL + r.RequestURI, not re-encoded
	Body   []byte // raw body bytes exactly as received
	Header http.Header
}

// Verifier checks HubSpot request signatures. Its zero value apart from
// Secrets is ready to use, and it is safe for concurrent use as long as its
// fields are not changed.
type Verifier struct {
	// Secrets are the app client secrets. A match with any of them is
	// accepted, so that a secret can be rotated without downtime. Empty
	// strings are ignored: an empty secret would make v1 a plain hash of the
	// body that anyone can compute.
	Secrets []string
	// RequireV3 rejects requests without v3 headers instead of falling back
	// to v2 or v1, which carry no timestamp and can be replayed.
	RequireV3 bool
	// MaxAge is how old a v3 timestamp may be; 5 minutes when zero.
	MaxAge time.Duration
	// MaxFuture is how far ahead of Now a v3 timestamp may be; 5 minutes when
	// zero. HubSpot's SDKs do not check this, but a far-future timestamp would
	// otherwise stay replayable for as long as it is in the future.
	MaxFuture time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Verified is what a signature check proves about a request: the scheme
// that matched and, for v3, when HubSpot signed it. SignedAt is zero for v1
// and v2, which carry no time: such a request proves only who made it, not
// when, so it can be replayed for ever.
type Verified struct {
	Version  Version
	SignedAt time.Time
}

// Verify checks the signature of r and returns what it proves.
//
// When X-HubSpot-Signature-v3 is present it alone decides, so that a request
// cannot be downgraded to the replayable v2 by a broken v3 header. Otherwise,
// unless RequireV3 is set, X-HubSpot-Signature is checked as the version that
// X-HubSpot-Signature-Version names, or as v2 and then v1 when that header is
// missing. On failure the returned version is the one that was checked, so
// the caller can log it, or empty when no scheme applied.
func (v *Verifier) Verify(r Request) (Verified, error) {
	return v.verify(r, time.Time{})
}

// VerifyAt is Verify for a request received at the time at, such as one
// kept in quarantine and replayed later: the v3 timestamp must lie within
// the window around at instead of around the clock's now. Everything else is
// checked as Verify checks it, so a request that was stale or from the
// future when it arrived stays refused. A zero at means now, as in Verify.
func (v *Verifier) VerifyAt(r Request, at time.Time) (Verified, error) {
	return v.verify(r, at)
}

// verify checks r against the window around at, or around the clock's now
// when at is zero; reading the clock only for v3 keeps it off the v1 and v2
// paths.
func (v *Verifier) verify(r Request, at time.Time) (Verified, error) {
	if !v.hasSecret() {
		return Verified{}, fmt.Errorf("verify: %w", ErrNoSecret)
	}
	if sig := headerValue(r.Header, keySignatureV3); sig != "" {
		signed, err := v.verifyV3(r, sig, headerValue(r.Header, keyRequestTimestamp), at)
		return Verified{Version: V3, SignedAt: signed}, err
	}
	if v.RequireV3 {
		return Verified{}, fmt.Errorf("verify: no %s and v3 is required: %w", HeaderSignatureV3, ErrMissingSignature)
	}
	ver, err := v.verifyHex(r)
	return Verified{Version: ver}, err
}

// verifyHex checks X-HubSpot-Signature as v2 or v1 and returns the version
// it checked.
func (v *Verifier) verifyHex(r Request) (Version, error) {
	sig := headerValue(r.Header, keySignature)
	if sig == "" {
		return "", fmt.Errorf("verify: %w", ErrMissingSignature)
	}
	switch ver := headerValue(r.Header, keySignatureVersion); {
	case strings.EqualFold(ver, string(V2)):
		if !v.matchHex(sig, V2, r) {
			return V2, fmt.Errorf("verify v2: %w", ErrBadSignature)
		}
		return V2, nil
	case strings.EqualFold(ver, string(V1)):
		if !v.matchHex(sig, V1, r) {
			return V1, fmt.Errorf("verify v1: %w", ErrBadSignature)
		}
		return V1, nil
	case ver == "":
		// Without the version header the signature could be either; v2 comes
		// first because it is what workflow webhooks send.
		if v.matchHex(sig, V2, r) {
			return V2, nil
		}
		if v.matchHex(sig, V1, r) {
			return V1, nil
		}
		return "", fmt.Errorf("verify v2 or v1: %w", ErrBadSignature)
	default:
		return "", fmt.Errorf("verify: unsupported %s %q: %w", HeaderSignatureVersion, ver, ErrBadSignature)
	}
}

// verifyV3 checks the v3 signature sig and then the freshness of ts against
// at, or against the clock's now when at is zero. It returns the signing
// time once the signature matches, also when that time is out of the
// window, and the zero time when it does not match.
func (v *Verifier) verifyV3(r Request, sig, ts string, at time.Time) (time.Time, error) {
	if ts == "" {
		return time.Time{}, fmt.Errorf("verify v3: missing %s: %w", HeaderRequestTimestamp, ErrBadTimestamp)
	}
	// ParseUint rejects signs, fractions and exponents, so a float such as
	// "1700000000000.0" fails here instead of being reformatted; the MAC
	// covers the header text as sent. Bit size 63 keeps the value in int64.
	ms, err := strconv.ParseUint(ts, 10, 63)
	if err != nil {
		return time.Time{}, fmt.Errorf("verify v3: timestamp %.32q: %w", ts, ErrBadTimestamp)
	}
	if !v.matchV3(r, sig, ts) {
		return time.Time{}, fmt.Errorf("verify v3: %w", ErrBadSignature)
	}
	signed := time.UnixMilli(int64(ms)).UTC()
	if at.IsZero() {
		at = v.now()
	}
	age := at.UnixMilli() - int64(ms)
	if limit := orDefault(v.MaxAge); age > limit.Milliseconds() {
		return signed, fmt.Errorf("verify v3: timestamp %s is more than %v old: %w", ts, limit, ErrStaleTimestamp)
	}
	if limit := orDefault(v.MaxFuture); -age > limit.Milliseconds() {
		return signed, fmt.Errorf("verify v3: timestamp %s is more than %v in the future: %w", ts, limit, ErrStaleTimestamp)
	}
	return signed, nil
}

// matchV3 reports whether sig is the v3 signature of r under any secret.
// It accepts a MAC over the URI after HubSpot's decode table and, as a
// leniency, over the URI exactly as received: HubSpot's own SDKs hash the
// undecoded URI, and how HubSpot treats escapes is unconfirmed. Both are
// keyed MACs, so the second candidate gives an attacker nothing to work with.
func (v *Verifier) matchV3(r Request, sig, ts string) bool {
	const sigLen = 44 // base64.StdEncoding.EncodedLen(sha256.Size)
	if len(sig) != sigLen {
		return false
	}
	// Copied into an array, the signature stays on the stack; []byte(sig)
	// would allocate, since it is longer than the compiler's stack buffer.
	var want [sigLen]byte
	copy(want[:], sig)
	uris := [2]string{decodeV3URI(r.URI), r.URI}
	n := 1
	if uris[1] != uris[0] {
		n = 2
	}
	// One buffer serves to stage the strings for the MAC and to take its
	// sum: whatever passes through the hash.Hash interface escapes to the
	// heap, so each separate buffer would be an allocation of its own.
	size := max(len(r.Method)+len(uris[0]), len(r.Method)+len(uris[1]), len(ts), sha256.Size)
	scratch := make([]byte, 0, size)
	var got [sigLen]byte
	for _, secret := range v.Secrets {
		if secret == "" {
			continue
		}
		m := hmac.New(sha256.New, []byte(secret))
		for i, uri := range uris[:n] {
			// A new MAC is ready for use. Reset is needed only to use it
			// again, and the first Reset allocates to save the keyed state,
			// which the common case of a single URI never needs.
			if i > 0 {
				m.Reset()
			}
			scratch = writeV3(m, scratch, r.Method, uri, r.Body, ts)
			base64.StdEncoding.Encode(got[:], m.Sum(scratch[:0]))
			if hmac.Equal(got[:], want[:]) {
				return true
			}
		}
	}
	return false
}

// matchHex reports whether sig is the lower-case hex v1 or v2 signature of r
// under any secret.
func (v *Verifier) matchHex(sig string, ver Version, r Request) bool {
	if len(sig) != hex.EncodedLen(sha256.Size) {
		return false
	}
	want := []byte(sig)
	var got [sha256.Size * 2]byte
	for _, secret := range v.Secrets {
		if secret == "" {
			continue
		}
		var sum [sha256.Size]byte
		if ver == V1 {
			sum = digestV1(secret, r.Body)
		} else {
			sum = digestV2(secret, r.Method, r.URI, r.Body)
		}
		hex.Encode(got[:], sum[:])
		if hmac.Equal(got[:], want) {
			return true
		}
	}
	return false
}

func (v *Verifier) hasSecret() bool {
	for _, s := range v.Secrets {
		if s != "" {
			return true
		}
	}
	return false
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultWindow
	}
	return d
}

// headerValue returns the first value of the canonical key, like
// http.Header.Get without its canonicalisation.
func headerValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// SignV1 returns the v1 signature: lower-case hex SHA-256 of secret + body.
func SignV1(secret string, body []byte) string {
	sum := digestV1(secret, body)
	return hex.EncodeToString(sum[:])
}

// SignV2 returns the v2 signature: lower-case hex SHA-256 of
// secret + method + uri + body, with uri exactly as requested.
func SignV2(secret, method, uri string, body []byte) string {
	sum := digestV2(secret, method, uri, body)
	return hex.EncodeToString(sum[:])
}

// SignV3 returns the v3 signature: standard base64 of HMAC-SHA256 keyed with
// secret over method + uri + body + timestamp. The uri must already be in
// the form to hash; Sign applies HubSpot's decode table first.
func SignV3(secret, method, uri string, body []byte, timestamp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	writeV3(m, nil, method, uri, body, timestamp)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns the headers HubSpot would send for a workflow webhook signed
// with secret at ts: X-HubSpot-Signature-v3 over the v3-decoded uri,
// X-HubSpot-Request-Timestamp in epoch milliseconds, and X-HubSpot-Signature
// with X-HubSpot-Signature-Version v2 over uri as given.
func Sign(secret, method, uri string, body []byte, ts time.Time) http.Header {
	stamp := strconv.FormatInt(ts.UnixMilli(), 10)
	h := make(http.Header, 4)
	h.Set(HeaderSignatureV3, SignV3(secret, method, decodeV3URI(uri), body, stamp))
	h.Set(HeaderRequestTimestamp, stamp)
	h.Set(HeaderSignature, SignV2(secret, method, uri, body))
	h.Set(HeaderSignatureVersion, string(V2))
	return h
}

func digestV1(secret string, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(secret))
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func digestV2(secret, method, uri string, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(secret + method + uri))
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// writeV3 feeds the v3 message to m. It stages the strings in scratch and
// returns it, so that checking several secrets and URIs reuses one buffer
// instead of converting each string on every pass.
func writeV3(m hash.Hash, scratch []byte, method, uri string, body []byte, ts string) []byte {
	scratch = append(append(scratch[:0], method...), uri...)
	m.Write(scratch)
	m.Write(body)
	scratch = append(scratch[:0], ts...)
	m.Write(scratch)
	return scratch
}

// decodeV3URI applies HubSpot's v3 decode table to uri: it turns exactly the
// twelve escapes %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B back into
// their characters and leaves every other escape, such as %20, %26 or %2B,
// as it is. It returns uri itself, without allocating, when nothing applies.
//
// Lower-case hex such as %3a is decoded too. RFC 3986 §2.1 makes the hex
// digits of an escape case-insensitive, so a client, proxy or HubSpot's URL
// builder may emit either case, and a decoder on HubSpot's side would treat
// them alike. The documented table is upper-case only, but its case
// sensitivity is unconfirmed; should HubSpot decode upper-case alone, the
// raw-URI leniency in matchV3 still covers a URI with lower-case escapes only.
func decodeV3URI(uri string) string {
	i := 0
	for ; i+2 < len(uri); i++ {
		if uri[i] == '%' {
			if _, ok := v3Unescape(uri[i+1], uri[i+2]); ok {
				break
			}
		}
	}
	if i+2 >= len(uri) {
		return uri
	}
	b := make([]byte, 0, len(uri))
	b = append(b, uri[:i]...)
	for ; i < len(uri); i++ {
		if uri[i] == '%' && i+2 < len(uri) {
			if c, ok := v3Unescape(uri[i+1], uri[i+2]); ok {
				b = append(b, c)
				i += 2
				continue
			}
		}
		b = append(b, uri[i])
	}
	return string(b)
}

// v3Unescape returns the character that the escape %<hi><lo> stands for
// when it is in HubSpot's v3 decode table.
func v3Unescape(hi, lo byte) (byte, bool) {
	if 'a' <= lo && lo <= 'f' {
		lo -= 'a' - 'A'
	}
	switch hi {
	case '2':
		switch lo {
		case '1':
			return '!', true
		case '4':
			return '$', true
		case '7':
			return '\'', true
		case '8':
			return '(', true
		case '9':
			return ')', true
		case 'A':
			return '*', true
		case 'C':
			return ',', true
		case 'F':
			return '/', true
		}
	case '3':
		switch lo {
		case 'A':
			return ':', true
		case 'B':
			return ';', true
		case 'F':
			return '?', true
		}
	case '4':
		if lo == '0' {
			return '@', true
		}
	}
	return 0, false
}
