package ccsandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Error keys. CC documents only unauthorized, throttled and quota_exceeded
// verbatim and contacts.api.validation.error as an example; the others are
// guesses in CC's style, and clients must not depend on them.
const (
	keyUnauthorized     = "unauthorized"
	keyForbidden        = "forbidden"
	keyThrottled        = "throttled"
	keyQuotaExceeded    = "quota_exceeded"
	keyQueueFull        = "activity_queue_full"
	keyValidation       = "contacts.api.validation.error"
	keyMalformedJSON    = "contacts.api.bad.request"
	keyConflict         = "contacts.api.conflict"
	keyNotFound         = "contacts.api.not.found"
	keyUnsupportedMedia = "unsupported_media_type"
	keyServerError      = "server_error"
	keyUnavailable      = "service_unavailable"
)

// apiError is one element of CC's array error body (APIErrorSchema) and also
// the whole of its object error body (AuthorizationErrorSchema).
type apiError struct {
	ErrorKey     string `json:"error_key"`
	ErrorMessage string `json:"error_message"`
}

// writeJSON writes v without a trailing newline, so that fixed bodies such as
// the 401 are byte-for-byte what CC sends.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "ccsandbox: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeErrors writes CC's array error body, used for 400, 404, 409, 415 and 5xx.
func writeErrors(w http.ResponseWriter, status int, errs []apiError) {
	writeJSON(w, status, errs)
}

// writeError writes an array error body with one element.
func writeError(w http.ResponseWriter, status int, key, msg string) {
	writeErrors(w, status, []apiError{{ErrorKey: key, ErrorMessage: msg}})
}

// writeObjectError writes CC's object error body, used for 401, 403 and 429.
func writeObjectError(w http.ResponseWriter, status int, key, msg string) {
	writeJSON(w, status, apiError{ErrorKey: key, ErrorMessage: msg})
}

// isJSON reports whether a Content-Type names JSON, which CC requires of
// every body it reads (415 otherwise).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// requireJSON answers 415 and returns false unless the request body is JSON.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	if isJSON(r.Header.Get("Content-Type")) {
		return true
	}
	writeError(w, http.StatusUnsupportedMediaType, keyUnsupportedMedia,
		"Unsupported Media Type; the payload must be in JSON format, and Content-Type must be application/json.")
	return false
}

// stamp formats a time the way CC does: UTC ISO-8601 with milliseconds.
func stamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// newUUID returns a random (version 4) UUID, the shape of every CC id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// isUUID reports whether s has the 8-4-4-4-12 hex shape CC requires of ids.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// newOpaqueToken returns an unguessable token. CC's access tokens are JWTs,
// but clients must treat them as opaque, so the sandbox makes them so.
func newOpaqueToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
