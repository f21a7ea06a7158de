package hubspot

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestVerifyAt: a request replayed long after it arrived is judged against
// the time it arrived, for its timestamp only; a wrong signature, a stale or
// future timestamp at arrival, and a missing secret stay refused.
func TestVerifyAt(t *testing.T) {
	const (
		secret = "replay-secret"
		uri    = "https://hooks.example.com/webhooks/hubspot"
	)
	body := []byte(`{"email":"ann@example.com"}`)
	signed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// The clock has moved on by a day: Verify alone would call every v3
	// request stale.
	later := func() time.Time { return signed.Add(24 * time.Hour) }
	req := func(h http.Header) Request {
		return Request{Method: http.MethodPost, URI: uri, Body: body, Header: h}
	}
	v2Only := func(h http.Header) http.Header {
		h.Del(HeaderSignatureV3)
		h.Del(HeaderRequestTimestamp)
		return h
	}
	cases := []struct {
		name    string
		secrets []string
		header  http.Header
		at      time.Time
		want    Version
		wantErr error
	}{
		{"v3 received a second after signing", []string{secret}, Sign(secret, "POST", uri, body, signed), signed.Add(time.Second), V3, nil},
		{"v3 received four minutes late", []string{secret}, Sign(secret, "POST", uri, body, signed), signed.Add(4 * time.Minute), V3, nil},
		{"v3 with the second of two secrets", []string{"old", secret}, Sign(secret, "POST", uri, body, signed), signed, V3, nil},
		{"v2 has no timestamp to judge", []string{secret}, v2Only(Sign(secret, "POST", uri, body, signed)), signed.Add(time.Hour), V2, nil},
		{"v3 that was already stale on arrival", []string{secret}, Sign(secret, "POST", uri, body, signed), signed.Add(6 * time.Minute), V3, ErrStaleTimestamp},
		{"v3 from the future on arrival", []string{secret}, Sign(secret, "POST", uri, body, signed), signed.Add(-6 * time.Minute), V3, ErrStaleTimestamp},
		{"v3 under another secret", []string{"other"}, Sign(secret, "POST", uri, body, signed), signed, V3, ErrBadSignature},
		{"zero time means now, which is a day later", []string{secret}, Sign(secret, "POST", uri, body, signed), time.Time{}, V3, ErrStaleTimestamp},
		{"no secret", nil, Sign(secret, "POST", uri, body, signed), signed, "", ErrNoSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vf := Verifier{Secrets: tc.secrets, Now: later}
			got, err := vf.VerifyAt(req(tc.header), tc.at)
			if got.Version != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("VerifyAt = %q, %v; want %q, %v", got.Version, err, tc.want, tc.wantErr)
			}
			// A verified v3 request carries the time HubSpot signed it, which
			// orders it against other deliveries; v2 carries none.
			if err == nil && tc.want == V3 && !got.SignedAt.Equal(signed) {
				t.Errorf("SignedAt = %v, want %v", got.SignedAt, signed)
			}
			if tc.want == V2 && !got.SignedAt.IsZero() {
				t.Errorf("SignedAt = %v for v2, want zero", got.SignedAt)
			}
		})
	}

	// The same request through Verify, with the clock a day on, is stale:
	// VerifyAt is what makes a replay possible at all.
	vf := Verifier{Secrets: []string{secret}, Now: later}
	if _, err := vf.Verify(req(Sign(secret, "POST", uri, body, signed))); !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("Verify a day later = %v, want ErrStaleTimestamp", err)
	}
}
