package hubspot

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

type vector struct {
	ID        string `json:"id"`
	Version   string `json:"version"`
	Secret    string `json:"secret"`
	Method    string `json:"method"`
	URI       string `json:"uri"`
	Body      string `json:"body"`
	Timestamp string `json:"timestamp"`
	Expected  string `json:"expected"`
}

func loadVectors(tb testing.TB) map[string]vector {
	tb.Helper()
	raw, err := os.ReadFile("testdata/signature-vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var file struct{ Vectors []vector }
	if err := json.Unmarshal(raw, &file); err != nil {
		tb.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		tb.Fatal("no vectors")
	}
	byID := make(map[string]vector, len(file.Vectors))
	for _, v := range file.Vectors {
		byID[v.ID] = v
	}
	return byID
}

// clockAt returns a clock frozen at the epoch-millisecond text ts.
func clockAt(tb testing.TB, ts string) func() time.Time {
	tb.Helper()
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return func() time.Time { return time.UnixMilli(ms) }
}

// vectorRequest builds the request a vector describes, signed with sig.
func vectorRequest(tb testing.TB, v vector, sig string) Request {
	tb.Helper()
	h := http.Header{}
	switch Version(v.Version) {
	case V1, V2:
		h.Set(HeaderSignature, sig)
		h.Set(HeaderSignatureVersion, v.Version)
	case V3:
		h.Set(HeaderSignatureV3, sig)
		h.Set(HeaderRequestTimestamp, v.Timestamp)
	default:
		tb.Fatalf("%s: unknown version %q", v.ID, v.Version)
	}
	return Request{Method: v.Method, URI: v.URI, Body: []byte(v.Body), Header: h}
}

func TestVectors(t *testing.T) {
	for id, v := range loadVectors(t) {
		t.Run(id, func(t *testing.T) {
			var got string
			switch Version(v.Version) {
			case V1:
				got = SignV1(v.Secret, []byte(v.Body))
			case V2:
				got = SignV2(v.Secret, v.Method, v.URI, []byte(v.Body))
			case V3:
				got = SignV3(v.Secret, v.Method, v.URI, []byte(v.Body), v.Timestamp)
			}
			if got != v.Expected {
				t.Errorf("Sign%s = %q, want %q", strings.ToUpper(v.Version), got, v.Expected)
			}

			vf := Verifier{Secrets: []string{v.Secret}}
			if v.Timestamp != "" {
				vf.Now = clockAt(t, v.Timestamp)
			}
			verified, err := vf.Verify(vectorRequest(t, v, v.Expected))
			if err != nil || verified.Version != Version(v.Version) {
				t.Errorf("Verify = %q, %v; want %q, nil", verified.Version, err, v.Version)
			}
			// Only v3 says when it was signed; v1 and v2 prove no time.
			var want time.Time
			if v.Timestamp != "" && verified.Version == V3 {
				want = time.UnixMilli(mustMillis(t, v.Timestamp)).UTC()
			}
			if !verified.SignedAt.Equal(want) {
				t.Errorf("SignedAt = %v, want %v", verified.SignedAt, want)
			}
		})
	}
}

// TestVectorsQueryDecode pins the v3 decode table with the two vectors that
// describe one request whose URI carries %3A, %28 and %29.
func TestVectorsQueryDecode(t *testing.T) {
	vs := loadVectors(t)
	raw, decoded := vs["LOCAL-V3-QUERY-RAW"], vs["LOCAL-V3-QUERY-DECODED"]

	if got := decodeV3URI(raw.URI); got != decoded.URI {
		t.Fatalf("decodeV3URI(%q) = %q, want %q", raw.URI, got, decoded.URI)
	}
	if got := SignV3(raw.Secret, raw.Method, decodeV3URI(raw.URI), []byte(raw.Body), raw.Timestamp); got != decoded.Expected {
		t.Errorf("SignV3 over the decoded uri = %q, want %q", got, decoded.Expected)
	}
	h := Sign(raw.Secret, raw.Method, raw.URI, []byte(raw.Body), time.UnixMilli(mustMillis(t, raw.Timestamp)))
	if got := h.Get(HeaderSignatureV3); got != decoded.Expected {
		t.Errorf("Sign v3 = %q, want %q", got, decoded.Expected)
	}

	vf := Verifier{Secrets: []string{raw.Secret}, Now: clockAt(t, raw.Timestamp)}
	for name, sig := range map[string]string{
		"decoded signature": decoded.Expected,
		"raw signature":     raw.Expected, // the leniency
	} {
		got, err := vf.Verify(vectorRequest(t, raw, sig))
		if err != nil || got.Version != V3 {
			t.Errorf("%s on the raw uri: Verify = %q, %v; want v3, nil", name, got.Version, err)
		}
	}
}

func mustMillis(tb testing.TB, ts string) int64 {
	tb.Helper()
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return ms
}

func TestDecodeV3URI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://h.example/p", "https://h.example/p"},
		{"/%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B", "/:/?@!$'()*,;"},
		{"/%3a%2f%3f%40%21%24%27%28%29%2a%2c%3b", "/:/?@!$'()*,;"},
		{"/?q=a%20b%26c%3Dd%2Be%25f", "/?q=a%20b%26c%3Dd%2Be%25f"},
		{"/%C3%A4", "/%C3%A4"},
		{"/%253A", "/%253A"},
		{"/%%3A", "/%:"},
		{"/%3", "/%3"},
		{"/x%3A", "/x:"},
		{"/%3Ax%3G", "/:x%3G"},
	}
	for _, tt := range tests {
		if got := decodeV3URI(tt.in); got != tt.want {
			t.Errorf("decodeV3URI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHeaderKeysCanonical(t *testing.T) {
	for name, key := range map[string]string{
		HeaderSignature:        keySignature,
		HeaderSignatureVersion: keySignatureVersion,
		HeaderSignatureV3:      keySignatureV3,
		HeaderRequestTimestamp: keyRequestTimestamp,
	} {
		if got := textproto.CanonicalMIMEHeaderKey(name); got != key {
			t.Errorf("canonical %q = %q, want %q", name, got, key)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	const (
		secret = "s3cr3t"
		method = "POST"
		uri    = "https://hooks.example.com/webhooks/hubspot?src=hs"
		body   = `{"vid":101,"properties":{"email":{"value":"a@b.c"}}}`
	)
	ts := time.UnixMilli(1790000000000)
	stamp := strconv.FormatInt(ts.UnixMilli(), 10)
	signed := Sign(secret, method, uri, []byte(body), ts)
	v3 := signed.Get(HeaderSignatureV3)
	v2 := signed.Get(HeaderSignature)
	v1 := SignV1(secret, []byte(body))

	// A signature with '+' shows what a form-decoding proxy does to base64.
	plusVec := loadVectors(t)["HS-PY-V3"]
	if !strings.Contains(plusVec.Expected, "+") {
		t.Fatal("HS-PY-V3 no longer contains '+'")
	}

	type hdr = map[string]string
	tests := []struct {
		name    string
		secrets []string
		require bool
		method  string // default method
		uri     string // default uri
		body    string // default body
		header  hdr
		now     time.Time // default ts
		maxAge  time.Duration
		wantVer Version
		wantErr error
	}{
		{name: "v3 ok", header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3},
		{name: "v3 tampered body", body: body + " ", header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 tampered uri", uri: uri + "&x=1", header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 tampered method", method: "PUT", header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 tampered timestamp", header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: strconv.FormatInt(ts.UnixMilli()+1, 10)}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 wrong secret", secrets: []string{"other"}, header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 rotation second secret", secrets: []string{"next", secret}, header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3},
		{name: "v3 empty secret skipped", secrets: []string{"", secret}, header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3},
		{name: "v3 exactly 5 min old", now: ts.Add(5 * time.Minute), header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3},
		{name: "v3 stale", now: ts.Add(5*time.Minute + time.Millisecond), header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrStaleTimestamp},
		{name: "v3 exactly 5 min ahead", now: ts.Add(-5 * time.Minute), header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3},
		{name: "v3 future", now: ts.Add(-5*time.Minute - time.Millisecond), header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrStaleTimestamp},
		{name: "v3 stale and forged", now: ts.Add(time.Hour), secrets: []string{"other"}, header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 missing timestamp", header: hdr{HeaderSignatureV3: v3}, wantVer: V3, wantErr: ErrBadTimestamp},
		{name: "v3 non-numeric timestamp", header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: "yesterday"}, wantVer: V3, wantErr: ErrBadTimestamp},
		{name: "v3 float timestamp", header: hdr{HeaderSignatureV3: SignV3(secret, method, uri, []byte(body), stamp+".0"), HeaderRequestTimestamp: stamp + ".0"}, wantVer: V3, wantErr: ErrBadTimestamp},
		{name: "v3 signed timestamp", header: hdr{HeaderSignatureV3: SignV3(secret, method, uri, []byte(body), "+"+stamp), HeaderRequestTimestamp: "+" + stamp}, wantVer: V3, wantErr: ErrBadTimestamp},
		{name: "v3 truncated signature", header: hdr{HeaderSignatureV3: v3[:43], HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 wrong but v2 right is no downgrade", header: hdr{HeaderSignatureV3: SignV3("other", method, uri, []byte(body), stamp), HeaderRequestTimestamp: stamp, HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 plus as space", uri: plusVec.URI, body: plusVec.Body, secrets: []string{plusVec.Secret}, now: time.UnixMilli(mustMillis(t, plusVec.Timestamp)),
			header: hdr{HeaderSignatureV3: strings.ReplaceAll(plusVec.Expected, "+", " "), HeaderRequestTimestamp: plusVec.Timestamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 plus percent-encoded", uri: plusVec.URI, body: plusVec.Body, secrets: []string{plusVec.Secret}, now: time.UnixMilli(mustMillis(t, plusVec.Timestamp)),
			header: hdr{HeaderSignatureV3: strings.ReplaceAll(plusVec.Expected, "+", "%2B"), HeaderRequestTimestamp: plusVec.Timestamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v3 plus intact", uri: plusVec.URI, body: plusVec.Body, secrets: []string{plusVec.Secret}, now: time.UnixMilli(mustMillis(t, plusVec.Timestamp)),
			header: hdr{HeaderSignatureV3: plusVec.Expected, HeaderRequestTimestamp: plusVec.Timestamp}, wantVer: V3},
		{name: "v3 custom MaxAge", maxAge: time.Minute, now: ts.Add(time.Minute + time.Millisecond), header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrStaleTimestamp},

		{name: "v2 ok", header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V2},
		{name: "v2 ok without version header", header: hdr{HeaderSignature: v2}, wantVer: V2},
		{name: "v2 tampered uri", uri: uri + "&x=1", header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V2, wantErr: ErrBadSignature},
		{name: "v2 tampered body", body: "{}", header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V2, wantErr: ErrBadSignature},
		{name: "v2 tampered method", method: "GET", header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V2, wantErr: ErrBadSignature},
		{name: "v2 wrong secret", secrets: []string{"other"}, header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V2, wantErr: ErrBadSignature},
		{name: "v2 rotation", secrets: []string{"next", secret}, header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantVer: V2},
		{name: "v2 upper-case hex", header: hdr{HeaderSignature: strings.ToUpper(v2), HeaderSignatureVersion: "v2"}, wantVer: V2, wantErr: ErrBadSignature},
		{name: "v2 labelled v1", header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v1"}, wantVer: V1, wantErr: ErrBadSignature},
		{name: "v2 when v3 required", require: true, header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v2"}, wantErr: ErrMissingSignature},
		{name: "v3 when v3 required", require: true, header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantVer: V3},

		{name: "v1 ok", header: hdr{HeaderSignature: v1, HeaderSignatureVersion: "v1"}, wantVer: V1},
		{name: "v1 ok without version header", header: hdr{HeaderSignature: v1}, wantVer: V1},
		{name: "v1 ignores uri", uri: "https://elsewhere.example/", header: hdr{HeaderSignature: v1, HeaderSignatureVersion: "v1"}, wantVer: V1},
		{name: "v1 tampered body", body: "{}", header: hdr{HeaderSignature: v1, HeaderSignatureVersion: "v1"}, wantVer: V1, wantErr: ErrBadSignature},
		{name: "neither without version header", header: hdr{HeaderSignature: SignV1("other", []byte(body))}, wantErr: ErrBadSignature},
		{name: "unknown version", header: hdr{HeaderSignature: v2, HeaderSignatureVersion: "v9"}, wantErr: ErrBadSignature},

		{name: "no headers", header: hdr{}, wantErr: ErrMissingSignature},
		{name: "version without signature", header: hdr{HeaderSignatureVersion: "v2"}, wantErr: ErrMissingSignature},
		{name: "timestamp without signature", header: hdr{HeaderRequestTimestamp: stamp}, wantErr: ErrMissingSignature},
		{name: "no secrets", secrets: []string{}, header: hdr{HeaderSignatureV3: v3, HeaderRequestTimestamp: stamp}, wantErr: ErrNoSecret},
		{name: "v3 signed with an empty secret", secrets: []string{"", secret}, header: hdr{HeaderSignatureV3: SignV3("", method, uri, []byte(body), stamp), HeaderRequestTimestamp: stamp}, wantVer: V3, wantErr: ErrBadSignature},
		{name: "v1 signed with an empty secret", secrets: []string{"", secret}, header: hdr{HeaderSignature: SignV1("", []byte(body)), HeaderSignatureVersion: "v1"}, wantVer: V1, wantErr: ErrBadSignature},
		{name: "v2 signed with an empty secret", secrets: []string{"", secret}, header: hdr{HeaderSignature: SignV2("", method, uri, []byte(body))}, wantErr: ErrBadSignature},
		{name: "only empty secrets", secrets: []string{""}, header: hdr{HeaderSignature: SignV1("", []byte(body)), HeaderSignatureVersion: "v1"}, wantErr: ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Request{Method: method, URI: uri, Body: []byte(body), Header: http.Header{}}
			if tt.method != "" {
				r.Method = tt.method
			}
			if tt.uri != "" {
				r.URI = tt.uri
			}
			if tt.body != "" {
				r.Body = []byte(tt.body)
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			now := ts
			if !tt.now.IsZero() {
				now = tt.now
			}
			vf := Verifier{Secrets: []string{secret}, RequireV3: tt.require, MaxAge: tt.maxAge, Now: func() time.Time { return now }}
			if tt.secrets != nil {
				vf.Secrets = tt.secrets
			}
			got, err := vf.Verify(r)
			if got.Version != tt.wantVer {
				t.Errorf("version = %q, want %q", got.Version, tt.wantVer)
			}
			if tt.wantErr == nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSignRoundTrip(t *testing.T) {
	const secret = "s3cr3t"
	body := []byte(`{"hs_object_id":"101","email":"agent@example.com","firstname":"Yllä"}`)
	for _, tt := range []struct{ method, uri string }{
		{"POST", "https://hooks.example.com/webhooks/hubspot"},
		{"POST", "https://hooks.example.com/webhooks/hubspot?src=hs%3Awf&tag=%28a%29&q=a%20b"},
		{"GET", "https://hooks.example.com/webhooks/hubspot?src=hs"},
	} {
		h := Sign(secret, tt.method, tt.uri, body, time.Now())
		r := Request{Method: tt.method, URI: tt.uri, Body: body, Header: h}
		vf := Verifier{Secrets: []string{secret}} // the real clock
		if got, err := vf.Verify(r); err != nil || got.Version != V3 {
			t.Errorf("%s %s: Verify = %q, %v; want v3, nil", tt.method, tt.uri, got.Version, err)
		}

		r.Header = h.Clone()
		r.Header.Del(HeaderSignatureV3)
		r.Header.Del(HeaderRequestTimestamp)
		if got, err := vf.Verify(r); err != nil || got.Version != V2 {
			t.Errorf("%s %s without v3: Verify = %q, %v; want v2, nil", tt.method, tt.uri, got.Version, err)
		}
		vf.RequireV3 = true
		if _, err := vf.Verify(r); !errors.Is(err, ErrMissingSignature) {
			t.Errorf("%s %s without v3, v3 required: err = %v, want ErrMissingSignature", tt.method, tt.uri, err)
		}
	}
}

func TestSignHeaders(t *testing.T) {
	v := loadVectors(t)["LOCAL-V3-DQ"]
	h := Sign(v.Secret, v.Method, v.URI, []byte(v.Body), time.UnixMilli(mustMillis(t, v.Timestamp)))
	want := map[string]string{
		HeaderSignatureV3:      v.Expected,
		HeaderRequestTimestamp: v.Timestamp,
		HeaderSignature:        SignV2(v.Secret, v.Method, v.URI, []byte(v.Body)),
		HeaderSignatureVersion: "v2",
	}
	if len(h) != len(want) {
		t.Errorf("Sign returned %d headers, want %d: %v", len(h), len(want), h)
	}
	for k, w := range want {
		if got := h.Get(k); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
}

func BenchmarkVerifyV3(b *testing.B) {
	body, err := os.ReadFile("testdata/contact-profile.json")
	if err != nil {
		b.Fatal(err)
	}
	const uri = "https://hooks.example.com/webhooks/hubspot?src=hs"
	ts := time.UnixMilli(1790000000000)
	r := Request{Method: "POST", URI: uri, Body: body, Header: Sign("s3cr3t", "POST", uri, body, ts)}
	vf := Verifier{Secrets: []string{"s3cr3t"}, Now: func() time.Time { return ts }}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := vf.Verify(r); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Method, v.URI, []byte(v.Body), v.Timestamp, v.Expected)
	}
	f.Add("POST", "/%3a%zz%", []byte("{}"), "", "")
	f.Fuzz(func(t *testing.T, method, uri string, body []byte, ts, sig string) {
		const secret = "s3cr3t"
		now := time.UnixMilli(1790000000000)
		vf := Verifier{Secrets: []string{"other", secret}, Now: func() time.Time { return now }}

		// Arbitrary headers must yield a result, never a panic, and every
		// failure must be one the handlers know how to map.
		for _, h := range []http.Header{
			{keySignatureV3: {sig}, keyRequestTimestamp: {ts}},
			{keySignature: {sig}},
			{keySignature: {sig}, keySignatureVersion: {ts}},
		} {
			_, err := vf.Verify(Request{Method: method, URI: uri, Body: body, Header: h})
			if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadTimestamp) &&
				!errors.Is(err, ErrStaleTimestamp) && !errors.Is(err, ErrMissingSignature) {
				t.Fatalf("unexpected error %v", err)
			}
		}

		// Whatever is signed must verify, both as v3 and as the v2 fallback.
		r := Request{Method: method, URI: uri, Body: body, Header: Sign(secret, method, uri, body, now)}
		if got, err := vf.Verify(r); err != nil || got.Version != V3 {
			t.Fatalf("round trip: Verify = %q, %v", got.Version, err)
		}
		r.Header.Del(HeaderSignatureV3)
		if got, err := vf.Verify(r); err != nil || got.Version != V2 {
			t.Fatalf("round trip v2: Verify = %q, %v", got.Version, err)
		}
	})
}
