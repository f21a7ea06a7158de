package hubspot

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// Reasons CheckShape gives for a request not shaped like one of HubSpot's.
// They are few and fixed, so that they can label a metric and key a table
// whose rows cannot grow with what a sender makes up.
const (
	// UnshapedNoSignature is a request with neither X-HubSpot-Signature-v3
	// nor X-HubSpot-Signature.
	UnshapedNoSignature = "no_signature"
	// UnshapedMalformedSignature is a signature that cannot be one HubSpot
	// computed: a v3 one that is not 44 characters of standard base64, a
	// v1/v2 one that is not 64 lower-case hex digits, or a version header
	// naming a scheme HubSpot does not have.
	UnshapedMalformedSignature = "malformed_signature"
	// UnshapedMalformedTimestamp is a v3 signature whose timestamp is
	// missing or not a count of milliseconds.
	UnshapedMalformedTimestamp = "malformed_timestamp"
	// UnshapedStaleTimestamp is a v3 timestamp older than the window.
	UnshapedStaleTimestamp = "stale_timestamp"
	// UnshapedFutureTimestamp is a v3 timestamp further ahead than the
	// window allows.
	UnshapedFutureTimestamp = "future_timestamp"
)

// UnshapedReasons lists every reason CheckShape gives, in a fixed order.
var UnshapedReasons = []string{UnshapedNoSignature, UnshapedMalformedSignature, UnshapedMalformedTimestamp,
	UnshapedStaleTimestamp, UnshapedFutureTimestamp}

// CheckShape reports whether the headers h look like a request HubSpot
// signed, without checking any signature: a v3 signature of 44 characters
// of standard base64 with a timestamp inside the verifier's window, or,
// without v3, a v1/v2 signature of 64 lower-case hex digits. When the
// request is not shaped so, reason is one of UnshapedReasons.
//
// A request that fails verification is kept in quarantine only when it is
// shaped like HubSpot's: such a request may be genuine, signed with a secret
// not yet configured, and HubSpot never sends it again. One that is not so
// shaped cannot verify under any secret or at any later time, since Verify
// refuses the same shapes, so keeping it would only let anyone fill the
// quarantine with junk. As in Verify, a v3 header alone decides when it is
// present.
func (v *Verifier) CheckShape(h http.Header) (reason string, shaped bool) {
	if sig := headerValue(h, keySignatureV3); sig != "" {
		if !isSignatureV3(sig) {
			return UnshapedMalformedSignature, false
		}
		return v.checkTimestampShape(headerValue(h, keyRequestTimestamp))
	}
	sig := headerValue(h, keySignature)
	if sig == "" {
		return UnshapedNoSignature, false
	}
	switch ver := headerValue(h, keySignatureVersion); {
	case ver != "" && !strings.EqualFold(ver, string(V1)) && !strings.EqualFold(ver, string(V2)):
		return UnshapedMalformedSignature, false
	case !isLowerHex64(sig):
		return UnshapedMalformedSignature, false
	}
	return "", true
}

// checkTimestampShape judges a v3 timestamp as verifyV3 does, against the
// same window around the verifier's clock.
func (v *Verifier) checkTimestampShape(ts string) (reason string, shaped bool) {
	ms, err := strconv.ParseUint(ts, 10, 63)
	if err != nil {
		return UnshapedMalformedTimestamp, false
	}
	age := v.now().UnixMilli() - int64(ms)
	if age > orDefault(v.MaxAge).Milliseconds() {
		return UnshapedStaleTimestamp, false
	}
	if -age > orDefault(v.MaxFuture).Milliseconds() {
		return UnshapedFutureTimestamp, false
	}
	return "", true
}

// isSignatureV3 reports whether sig is the standard base64 of 32 bytes, the
// only form a v3 signature (an HMAC-SHA256) takes.
func isSignatureV3(sig string) bool {
	const sigLen = 44 // base64.StdEncoding.EncodedLen(sha256.Size)
	if len(sig) != sigLen {
		return false
	}
	var sum [33]byte
	n, err := base64.StdEncoding.Strict().Decode(sum[:], []byte(sig))
	return err == nil && n == 32
}

// isLowerHex64 reports whether sig is 64 lower-case hex digits, the form
// SignV1 and SignV2 give a SHA-256.
func isLowerHex64(sig string) bool {
	if len(sig) != 64 {
		return false
	}
	for i := 0; i < len(sig); i++ {
		if c := sig[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
