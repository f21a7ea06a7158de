package hubspot

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCheckShape tells HubSpot-shaped headers from junk, and checks the
// promise that lets junk go unkept: no unshaped request verifies, under the
// secret it was signed with or at any time.
func TestCheckShape(t *testing.T) {
	const (
		secret = "shape-secret-0000"
		uri    = "https://hooks.example.com/webhooks/hubspot"
	)
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"vid":1}`)
	signed := func(at time.Time) http.Header { return Sign(secret, http.MethodPost, uri, body, at) }
	v2Only := func() http.Header {
		h := signed(now)
		h.Del(HeaderSignatureV3)
		h.Del(HeaderRequestTimestamp)
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	stamp := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	cases := []struct {
		name   string
		header http.Header
		reason string // "" when shaped
	}{
		{"as HubSpot signs it", signed(now), ""},
		{"v3 another secret signed", Sign("other", http.MethodPost, uri, body, now), ""},
		{"v3 timestamp 4 minutes old", signed(now.Add(-4 * time.Minute)), ""},
		{"v3 timestamp 4 minutes ahead", signed(now.Add(4 * time.Minute)), ""},
		{"v2 only", v2Only(), ""},
		{"v2 without a version header", with(v2Only(), HeaderSignatureVersion, ""), ""},
		{"v1", with(v2Only(), HeaderSignatureVersion, "V1"), ""},
		{"any 64 lower-case hex digits", with(v2Only(), HeaderSignature, strings.Repeat("ab", 32)), ""},
		{"nothing", http.Header{}, UnshapedNoSignature},
		{"only a timestamp", with(http.Header{}, HeaderRequestTimestamp, stamp(0)), UnshapedNoSignature},
		{"v3 too short", with(signed(now), HeaderSignatureV3, "c2lnbmF0dXJl"), UnshapedMalformedSignature},
		{"v3 44 characters, not base64", with(signed(now), HeaderSignatureV3, strings.Repeat("*", 44)), UnshapedMalformedSignature},
		{"v3 44 characters of base64 without padding", with(signed(now), HeaderSignatureV3, strings.Repeat("A", 44)), UnshapedMalformedSignature},
		{"v3 as hex", with(signed(now), HeaderSignatureV3, strings.Repeat("ab", 32)), UnshapedMalformedSignature},
		{"v3 without a timestamp", with(signed(now), HeaderRequestTimestamp, ""), UnshapedMalformedTimestamp},
		{"v3 timestamp in seconds with a fraction", with(signed(now), HeaderRequestTimestamp, "1772625600.5"), UnshapedMalformedTimestamp},
		{"v3 timestamp negative", with(signed(now), HeaderRequestTimestamp, "-1"), UnshapedMalformedTimestamp},
		{"v3 timestamp 6 minutes old", with(signed(now), HeaderRequestTimestamp, stamp(-6*time.Minute)), UnshapedStaleTimestamp},
		{"v3 timestamp zero", with(signed(now), HeaderRequestTimestamp, "0"), UnshapedStaleTimestamp},
		{"v3 timestamp 6 minutes ahead", with(signed(now), HeaderRequestTimestamp, stamp(6*time.Minute)), UnshapedFutureTimestamp},
		{"a broken v3 beside a good v2", with(signed(now), HeaderSignatureV3, "x"), UnshapedMalformedSignature},
		{"v2 upper-case hex", with(v2Only(), HeaderSignature, strings.ToUpper(v2Only().Get(HeaderSignature))), UnshapedMalformedSignature},
		{"v2 63 hex digits", with(v2Only(), HeaderSignature, strings.Repeat("a", 63)), UnshapedMalformedSignature},
		{"v2 as base64", with(v2Only(), HeaderSignature, signed(now).Get(HeaderSignatureV3)), UnshapedMalformedSignature},
		{"a version HubSpot does not have", with(v2Only(), HeaderSignatureVersion, "v9"), UnshapedMalformedSignature},
	}
	vf := &Verifier{Secrets: []string{secret, "other"}, Now: func() time.Time { return now }}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, shaped := vf.CheckShape(tc.header)
			if reason != tc.reason || shaped != (tc.reason == "") {
				t.Fatalf("CheckShape = %q, %v; want %q, %v", reason, shaped, tc.reason, tc.reason == "")
			}
			if shaped {
				return
			}
			// Judged against its own timestamp's moment, the request still
			// fails: it was never shaped to pass.
			req := Request{Method: http.MethodPost, URI: uri, Body: body, Header: tc.header}
			for _, at := range []time.Time{now, now.Add(-6 * time.Minute), now.Add(6 * time.Minute)} {
				if _, err := vf.VerifyAt(req, at); err == nil {
					t.Errorf("an unshaped request verifies at %v", at)
				}
			}
		})
	}
}

// TestCheckShapeWindow follows the verifier's own window, not a fixed one.
func TestCheckShapeWindow(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	h := Sign("s", http.MethodPost, "https://h/x", nil, now.Add(-2*time.Minute))
	cases := []struct {
		maxAge time.Duration
		reason string
	}{
		{0, ""},
		{time.Minute, UnshapedStaleTimestamp},
		{3 * time.Minute, ""},
	}
	for _, tc := range cases {
		vf := &Verifier{MaxAge: tc.maxAge, Now: func() time.Time { return now }}
		if reason, _ := vf.CheckShape(h); reason != tc.reason {
			t.Errorf("MaxAge %v: reason %q, want %q", tc.maxAge, reason, tc.reason)
		}
	}
}

// BenchmarkCheckShape is the cost a junk request adds before its 401.
func BenchmarkCheckShape(b *testing.B) {
	vf := &Verifier{}
	h := Sign("s", http.MethodPost, "https://h/x", nil, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := vf.CheckShape(h); !ok {
			b.Fatal("not shaped")
		}
	}
}
