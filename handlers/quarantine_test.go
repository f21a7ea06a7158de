package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// quarantined returns every quarantined request whole, oldest first.
func (a *app) quarantined(t testing.TB) []*store.Quarantined {
	t.Helper()
	return loadAll(t, a.db, "quarantine", a.db.GetQuarantined)
}

// otherSecret is the secret HubSpot signs with after a rotation the
// service has not been told about.
const otherSecret = "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"

// Every kind of signature failure of a request shaped like HubSpot's is
// answered 401 as before, and the request is kept with the check that
// failed, the version it claimed and its whole body, and nothing else is
// stored. Requests of other shapes are counted instead (unshaped_test.go).
func TestWebhookQuarantinesSignatureFailures(t *testing.T) {
	body := profile(t)
	tampered := replaceOnce(t, body, `"value":"Agent.Ylla@Example.com","versions"`, `"value":"attacker@example.com","versions"`)
	// A contact with a long history, signed after a secret rotation the
	// service was not told about: kept whole, so that it replays.
	large := largeProfile(t, 404)
	const queryURI = hookPath + "?source=hs%3Aworkflow&tag=%28a%29"
	cases := []struct {
		name    string
		cfg     func(*handlers.Config)
		uri     string // hookPath when empty
		body    []byte // what is sent; body when nil
		header  func() http.Header
		reason  string
		version string
		// replayWith, when set, is a secret under which the kept request
		// verifies again at its received_at: the kept parts are enough.
		replayWith string
	}{
		{
			name: "signed with a secret the service does not know yet",
			header: func() http.Header {
				return hubspot.Sign(otherSecret, http.MethodPost, publicURL+hookPath, body, time.Now())
			},
			reason: store.QuarantineBadSignature, version: "v3", replayWith: otherSecret,
		},
		{
			name: "query string kept as received",
			uri:  queryURI,
			header: func() http.Header {
				return hubspot.Sign(otherSecret, http.MethodPost, publicURL+queryURI, body, time.Now())
			},
			reason: store.QuarantineBadSignature, version: "v3", replayWith: otherSecret,
		},
		{
			name:   "tampered body",
			body:   tampered,
			header: func() http.Header { return sign(body, hookPath) },
			reason: store.QuarantineBadSignature, version: "v3",
		},
		{
			name:   "tampered body, v2 signature only",
			body:   tampered,
			header: func() http.Header { return withoutV3(sign(body, hookPath)) },
			reason: store.QuarantineBadSignature, version: "v2",
		},
		{
			name: "v2 under another secret without the version header",
			header: func() http.Header {
				h := withoutV3(hubspot.Sign(otherSecret, http.MethodPost, publicURL+hookPath, body, time.Now()))
				h.Del(hubspot.HeaderSignatureVersion)
				return h
			},
			reason: store.QuarantineBadSignature, version: "v1/v2", replayWith: otherSecret,
		},
		{
			name:   "v2 signature only while v3 is required",
			cfg:    func(c *handlers.Config) { c.Verifier.RequireV3 = true },
			header: func() http.Header { return withoutV3(sign(body, hookPath)) },
			reason: store.QuarantineMissingSignature, version: "v2",
		},
		{
			name:   "PublicURL with a path prefix the signature lacks",
			cfg:    func(c *handlers.Config) { c.PublicURL = publicURL + "/hs2cc" },
			header: func() http.Header { return sign(body, hookPath) },
			reason: store.QuarantineBadSignature, version: "v3",
		},
		{
			name: "a 600 KB profile is kept whole",
			body: large,
			header: func() http.Header {
				return hubspot.Sign(otherSecret, http.MethodPost, publicURL+hookPath, large, time.Now())
			},
			reason: store.QuarantineBadSignature, version: "v3", replayWith: otherSecret,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*setup)
			if tc.cfg != nil {
				opts = append(opts, func(s *setup) { tc.cfg(&s.cfg) })
			}
			a := start(t, opts...)
			sent, uri := tc.body, tc.uri
			if sent == nil {
				sent = body
			}
			if uri == "" {
				uri = hookPath
			}
			h := tc.header()
			h.Set("User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/)")
			req := a.request(t, http.MethodPost, uri, bytes.NewReader(sent))
			for k, v := range h {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/json")
			before := time.Now()
			wantError(t, a.do(t, req), http.StatusUnauthorized, handlers.CodeBadSignature)
			a.wantNothingStored(t)
			a.wantTasks(t)

			qs := a.quarantined(t)
			if len(qs) != 1 {
				t.Fatalf("%d quarantined, want 1", len(qs))
			}
			q := qs[0]
			if q.Reason != tc.reason || q.SignatureVersion != tc.version || q.Method != http.MethodPost || q.RequestURI != uri {
				t.Errorf("kept reason %q version %q %s %s; want %q %q POST %s",
					q.Reason, q.SignatureVersion, q.Method, q.RequestURI, tc.reason, tc.version, uri)
			}
			if q.Detail == "" || q.ReceivedAt.Before(before.Add(-time.Second)) || q.ReceivedAt.After(time.Now()) {
				t.Errorf("kept detail %q received %v", q.Detail, q.ReceivedAt)
			}
			if !bytes.Equal(q.Body, sent) || q.BodyLength != len(sent) || q.BodyBytes != len(sent) || q.BodyTruncated {
				t.Errorf("kept %d body bytes of %d, truncated %v; want all %d", len(q.Body), q.BodyLength, q.BodyTruncated, len(sent))
			}
			for _, k := range store.KeptHeaders {
				if got, want := q.Header.Get(k), req.Header.Get(k); got != want {
					t.Errorf("kept %s %q, sent %q", k, got, want)
				}
			}
			if q.Header.Get("X-HubSpot-Correlation-Id") != "" {
				t.Errorf("kept a header verification does not read: %v", q.Header)
			}
			if tc.replayWith != "" {
				vf := hubspot.Verifier{Secrets: []string{tc.replayWith}}
				if _, err := vf.VerifyAt(hubspot.Request{
					Method: q.Method, URI: handlers.SignedURI(publicURL, q.Scheme, q.Host, q.RequestURI),
					Body: q.Body, Header: q.Header,
				}, q.ReceivedAt); err != nil {
					t.Errorf("kept request does not verify under the secret it was signed with: %v", err)
				}
			}
			if !strings.Contains(a.logs.String(), "quarantined") {
				t.Errorf("the quarantine was not logged:\n%s", a.logs)
			}
		})
	}
}

// Only signature failures are quarantined: a 503 makes HubSpot retry, a
// 413 is recorded as a too_large delivery unverified, and a verified request
// is stored as a delivery.
func TestWebhookQuarantinesNothingElse(t *testing.T) {
	body := profile(t)
	tooBig := append(exactlyTheLimit(), ' ')
	cases := []struct {
		name   string
		cfg    func(*handlers.Config)
		body   []byte
		status int
	}{
		{"no secret configured", func(c *handlers.Config) { c.Verifier = &hubspot.Verifier{} }, body, http.StatusServiceUnavailable},
		{"body over the limit", nil, tooBig, http.StatusRequestEntityTooLarge},
		{"a verified request", nil, body, http.StatusAccepted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*setup)
			if tc.cfg != nil {
				opts = append(opts, func(s *setup) { tc.cfg(&s.cfg) })
			}
			a := start(t, opts...)
			if r := a.post(t, tc.body, sign(tc.body, hookPath)); r.status != tc.status {
				t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if qs := a.quarantined(t); len(qs) != 0 {
				t.Errorf("%d quarantined, want none: %+v", len(qs), qs[0])
			}
		})
	}
}

// A full quarantine keeps its older evidence and refuses the new request,
// which is still answered 401; the log says so once, not once per request.
func TestWebhookQuarantineFull(t *testing.T) {
	body := profile(t)
	cases := []struct {
		name  string
		limit store.QuarantineCap
		sent  int
		kept  int
	}{
		{"row cap", store.QuarantineCap{MaxRows: 2}, 5, 2},
		{"byte cap", store.QuarantineCap{MaxBytes: int64(3*len(body) + 10)}, 5, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, func(s *setup) { s.cfg.QuarantineCap = tc.limit })
			for i := range tc.sent {
				// Each request differs, so that each is evidence of its own.
				h := hubspot.Sign(otherSecret, http.MethodPost, publicURL+hookPath, body, time.Now().Add(time.Duration(i)*time.Millisecond))
				wantError(t, a.post(t, body, h), http.StatusUnauthorized, handlers.CodeBadSignature)
			}
			qs := a.quarantined(t)
			if len(qs) != tc.kept {
				t.Fatalf("%d quarantined, want the first %d", len(qs), tc.kept)
			}
			for i := 1; i < len(qs); i++ {
				if qs[i].ReceivedAt.Before(qs[i-1].ReceivedAt) {
					t.Errorf("kept rows out of order: %v before %v", qs[i-1].ReceivedAt, qs[i].ReceivedAt)
				}
			}
			logs := a.logs.String()
			if n := strings.Count(logs, "not quarantined"); n != 1 {
				t.Errorf("%d log lines about requests not quarantined, want 1 within the minute:\n%s", n, logs)
			}
			if !strings.Contains(logs, "full=1") {
				t.Errorf("the report does not count the first refused request:\n%s", logs)
			}
		})
	}
}

// With MySQL unable to keep the request, closed or locked, the answer is
// still 401, not a 5xx, and comes within about the quarantine's one-second
// bound; the failure is logged.
func TestWebhookQuarantineStoreFails(t *testing.T) {
	ctx := context.Background()
	body := profile(t)
	outages := []struct {
		name     string
		fail     func(t *testing.T, served *store.DB)
		parallel int
		logged   string
	}{
		{
			name:     "connection pool closed",
			fail:     func(t *testing.T, served *store.DB) { served.Close() },
			parallel: 1,
			logged:   "sql: database is closed",
		},
		{
			// A table lock makes every quarantine write wait; more requests
			// than writers arrive at once, so some never get a writer.
			name: "quarantine table locked",
			fail: func(t *testing.T, served *store.DB) {
				conn, err := served.SQL().Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.ExecContext(ctx, "LOCK TABLES quarantine WRITE"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_, _ = conn.ExecContext(ctx, "UNLOCK TABLES")
					conn.Close()
				})
			},
			parallel: 8,
			logged:   "could not quarantine",
		},
	}
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			served, err := store.Open(ctx, storetest.MySQLDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { served.Close() })
			if _, err := served.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			a := start(t, func(s *setup) { s.db = served })
			o.fail(t, served)

			var wg sync.WaitGroup
			replies := make([]reply, o.parallel)
			took := make([]time.Duration, o.parallel)
			for i := range o.parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h := hubspot.Sign(otherSecret, http.MethodPost, publicURL+hookPath, body, time.Now())
					h.Set("X-Test-Request", strconv.Itoa(i))
					began := time.Now()
					replies[i] = a.post(t, body, h)
					took[i] = time.Since(began)
				}()
			}
			wg.Wait()
			for i, r := range replies {
				wantError(t, r, http.StatusUnauthorized, handlers.CodeBadSignature)
				if took[i] > 3*time.Second {
					t.Errorf("request %d answered after %v; the quarantine must give up after about a second", i, took[i])
				}
			}
			if !strings.Contains(a.logs.String(), o.logged) {
				t.Errorf("log does not name the failure %q:\n%s", o.logged, a.logs)
			}
		})
	}
}
