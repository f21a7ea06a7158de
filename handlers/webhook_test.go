package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

func taskID(id int64, version int) string { return fmt.Sprintf("enrollment:%d:v%d", id, version) }

// wantDelivery checks one stored delivery against what the handler should
// have recorded, including the raw body byte for byte.
func wantDelivery(t testing.TB, d *store.Delivery, kind, sigVersion, verdict string, enrollmentID int64, body []byte) {
	t.Helper()
	if d.Kind != kind || d.SignatureVersion != sigVersion || d.Verdict != verdict || d.EnrollmentID != enrollmentID {
		t.Errorf("delivery %d: kind %q signature %q verdict %q enrollment %d; want %q %q %q %d",
			d.ID, d.Kind, d.SignatureVersion, d.Verdict, d.EnrollmentID, kind, sigVersion, verdict, enrollmentID)
	}
	if !bytes.Equal(d.Body, body) {
		t.Errorf("delivery %d: stored body differs from the bytes sent (%d vs %d bytes)", d.ID, len(d.Body), len(body))
	}
	if d.ReceivedAt.IsZero() || time.Since(d.ReceivedAt) > time.Hour || time.Until(d.ReceivedAt) > time.Minute {
		t.Errorf("delivery %d: received_at %v is not now", d.ID, d.ReceivedAt)
	}
}

// The cases below walk one contact through HubSpot's behaviour: a first
// delivery, HubSpot's retries of it, a change, and a retry of the change.
// Each step checks the answer, both tables and the queue.
func TestWebhookVersionsAndDuplicates(t *testing.T) {
	a := start(t)
	first := profile(t)
	// HubSpot bumps its own bookkeeping between a delivery and its retry.
	bookkeeping := replaceOnce(t,
		replaceOnce(t, first,
			`"lastmodifieddate":{"value":"1700000200000","versions":[{"value":"1700000200000"`,
			`"lastmodifieddate":{"value":"1700000900000","versions":[{"value":"1700000900000"`),
		`"hs_analytics_num_page_views":{"value":"7","versions":[{"value":"7"`,
		`"hs_analytics_num_page_views":{"value":"8","versions":[{"value":"8"`)
	changed := replaceOnce(t, first, `"firstname":{"value":"Yll\u00e4"`, `"firstname":{"value":"Yll\u00e4-Maria"`)
	changedAgain := replaceOnce(t, changed, `"firstname":{"value":"Yll\u00e4-Maria"`, `"firstname":{"value":"Yll\u00e4-Marja"`)
	var id int64
	// imported does what the worker does with the queued version: takes it
	// off the queue and, once CC reports a clean import, settles the row.
	imported := func(t *testing.T) {
		ctx := context.Background()
		if _, err := a.ins.DeleteAllAggregatingTasks(jobs.Queue, jobs.GroupKey(lists)); err != nil {
			t.Fatal(err)
		}
		imp, err := a.db.ClaimImport(ctx, "test-import", "", []int64{id})
		if err != nil || imp == nil {
			t.Fatalf("claim import: %v, %v", imp, err)
		}
		if err := a.db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
			t.Fatal(err)
		}
	}

	steps := []struct {
		name      string
		before    func(t *testing.T)
		body      []byte
		status    int
		version   int
		verdict   string
		firstName string
		rowStatus string
		queued    []int // versions whose task must be waiting in the group
		// repeats is how often the newest delivery of this body has been
		// repeated exactly: a body seen before is counted there, not stored.
		repeats int
	}{
		{"first delivery is accepted", nil, first, http.StatusAccepted, 1, store.VerdictAccepted, "Yllä", store.StatusPending, []int{1}, 0},
		{"identical retry is a no-op, counted on the first", nil, first, http.StatusOK, 1, store.VerdictAccepted, "Yllä", store.StatusPending, []int{1}, 1},
		{"retry with only HubSpot's bookkeeping changed is a no-op", nil, bookkeeping, http.StatusOK, 1, store.VerdictDuplicate, "Yllä", store.StatusPending, []int{1}, 0},
		{"changed content is a new version", nil, changed, http.StatusAccepted, 2, store.VerdictAccepted, "Yllä-Maria", store.StatusPending, []int{1, 2}, 0},
		{"retry of the changed content is a no-op", nil, changed, http.StatusOK, 2, store.VerdictAccepted, "Yllä-Maria", store.StatusPending, []int{1, 2}, 1},
		{"retry after the import queues nothing", imported, changed, http.StatusOK, 2, store.VerdictAccepted, "Yllä-Maria", store.StatusImported, nil, 2},
		{"change after the import is a new version", nil, changedAgain, http.StatusAccepted, 3, store.VerdictAccepted, "Yllä-Marja", store.StatusPending, []int{3}, 0},
	}
	stored := 0
	for _, st := range steps {
		// Subtests share the service and run in order; each builds on the last.
		ok := t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before(t)
			}
			got := wantAccepted(t, a.post(t, st.body, sign(st.body, hookPath)), st.status)
			if id == 0 {
				id = got.ID
			}
			wantDup := st.status == http.StatusOK
			if got.ID != id || got.Version != st.version || got.Duplicate != wantDup {
				t.Errorf("reply %+v, want id %d version %d duplicate %v", got, id, st.version, wantDup)
			}

			es := a.enrollments(t)
			if len(es) != 1 {
				t.Fatalf("%d enrollments, want 1", len(es))
			}
			e := es[0]
			if e.ID != id || e.Version != st.version || e.Status != st.rowStatus || e.FirstName != st.firstName {
				t.Errorf("enrollment id %d version %d status %q first name %q; want %d %d %q %q",
					e.ID, e.Version, e.Status, e.FirstName, id, st.version, st.rowStatus, st.firstName)
			}
			if e.PortalID != 62515 || e.ObjectKey != "101" || e.Email != "Agent.Ylla@Example.com" ||
				e.LastName != "Øster-Kallström" || e.Country != "Finland" ||
				!e.EnrolledAt.Equal(time.UnixMilli(1700000000000)) || !slices.Equal(e.Lists, lists) ||
				len(e.ContentHash) != 64 || e.StatusReason != "" {
				t.Errorf("enrollment %+v", e)
			}
			if e.Properties["firstname"] != st.firstName || e.Properties["company"] != "Revontuli Matkat Oy" ||
				e.Properties["phone"] != "+358 40 123 4567" || e.Properties["hs_object_id"] != "101" {
				t.Errorf("enrollment properties %v", e.Properties)
			}

			ds := a.deliveries(t)
			if st.repeats == 0 {
				stored++
			}
			if len(ds) != stored {
				t.Fatalf("%d deliveries, want %d", len(ds), stored)
			}
			var last *store.Delivery
			for _, d := range ds {
				if bytes.Equal(d.Body, st.body) {
					last = d
				}
			}
			wantDelivery(t, last, store.KindWorkflow, "v3", st.verdict, id, st.body)
			if last.Reason != "" || last.Repeats != st.repeats {
				t.Errorf("delivery has reason %q and %d repeats, want none and %d", last.Reason, last.Repeats, st.repeats)
			}

			var want []string
			for _, v := range st.queued {
				want = append(want, taskID(id, v))
			}
			a.wantTasks(t, want...)
		})
		if !ok {
			t.FailNow()
		}
	}
}

// exactlyTheLimit is a valid flat body of exactly DefaultMaxBodyBytes bytes.
func exactlyTheLimit() []byte {
	head := `{"hs_object_id":"303","email":"pad@example.com","padding":"`
	tail := `"}`
	return []byte(head + strings.Repeat("x", handlers.DefaultMaxBodyBytes-len(head)-len(tail)) + tail)
}

func withoutV3(h http.Header) http.Header {
	h.Del(hubspot.HeaderSignatureV3)
	h.Del(hubspot.HeaderRequestTimestamp)
	return h
}

// Bodies and requests HubSpot may legitimately send, each accepted into a
// fresh service.
func TestWebhookAccepts(t *testing.T) {
	flat := []byte(`{"hs_object_id":202,"email":"ann.oster@example.com","firstname":"Ann","lastname":"Øster",` +
		`"country":"US","createdate":1700000000000,"agency_name":"Acme Travel","vip":true,"score":4.5,` +
		`"bridge_source":"wf-new-agents-v1","nested":{"ignored":1},"nothing":null}`)
	const queryURI = hookPath + "?source=hs%3Aworkflow&tag=%28a%29"
	cases := []struct {
		name string
		cfg  func(*handlers.Config)
		body []byte
		// send builds the request; signed with v3 and v2 over the public URL when nil.
		send     func(t testing.TB, a *app, body []byte) reply
		sig      string
		wantEnr  func(t testing.TB, e *store.Enrollment)
		wantCode int
	}{
		{
			name: "contact profile with \\u escapes", body: profile(t), sig: "v3",
			wantEnr: func(t testing.TB, e *store.Enrollment) {
				if e.FirstName != "Yllä" || e.LastName != "Øster-Kallström" || e.ObjectKey != "101" {
					t.Errorf("enrollment %+v", e)
				}
			},
		},
		{
			name: "customised flat body with typed values and raw UTF-8", body: flat, sig: "v3",
			wantEnr: func(t testing.TB, e *store.Enrollment) {
				if e.PortalID != 0 || e.ObjectKey != "202" || e.Email != "ann.oster@example.com" || e.FirstName != "Ann" ||
					e.LastName != "Øster" || e.Country != "US" || !e.EnrolledAt.Equal(time.UnixMilli(1700000000000)) {
					t.Errorf("enrollment %+v", e)
				}
				p := e.Properties
				if p["vip"] != "true" || p["score"] != "4.5" || p["hs_object_id"] != "202" ||
					p["createdate"] != "1700000000000" || p["agency_name"] != "Acme Travel" || p["bridge_source"] != "wf-new-agents-v1" {
					t.Errorf("properties %v", p)
				}
				if _, ok := p["nested"]; ok {
					t.Errorf("nested object kept as a property: %v", p)
				}
			},
		},
		{
			name: "customised body without an object id is keyed by email",
			body: []byte(`{"email":"Bea@Example.com","firstname":"Bea"}`), sig: "v3",
			wantEnr: func(t testing.TB, e *store.Enrollment) {
				if e.ObjectKey != "email:bea@example.com" || e.Email != "Bea@Example.com" {
					t.Errorf("enrollment %+v", e)
				}
			},
		},
		{
			name: "v2 signature only, no v3 headers", body: profile(t), sig: "v2",
			send: func(t testing.TB, a *app, body []byte) reply {
				return a.post(t, body, withoutV3(sign(body, hookPath)))
			},
		},
		{
			name: "v2 signature without the version header", body: profile(t), sig: "v2",
			send: func(t testing.TB, a *app, body []byte) reply {
				h := withoutV3(sign(body, hookPath))
				h.Del(hubspot.HeaderSignatureVersion)
				return a.post(t, body, h)
			},
		},
		{
			name: "secret rotation: signed with the older of two secrets", body: profile(t), sig: "v3",
			cfg: func(c *handlers.Config) {
				c.Verifier = &hubspot.Verifier{Secrets: []string{"new-secret", secret}}
			},
		},
		{
			name: "behind a proxy: internal Host, signature over PublicURL", body: profile(t), sig: "v3",
			send: func(t testing.TB, a *app, body []byte) reply {
				req := a.request(t, http.MethodPost, hookPath, bytes.NewReader(body))
				req.Host = "internal:8080"
				for k, v := range sign(body, hookPath) {
					req.Header[k] = v
				}
				return a.do(t, req)
			},
		},
		{
			name: "PublicURL with the path prefix a proxy strips", body: profile(t), sig: "v3",
			cfg: func(c *handlers.Config) { c.PublicURL = publicURL + "/hs2cc" },
			send: func(t testing.TB, a *app, body []byte) reply {
				return a.post(t, body, sign(body, "/hs2cc"+hookPath))
			},
		},
		{
			name: "PublicURL with a trailing slash", body: profile(t), sig: "v3",
			cfg: func(c *handlers.Config) { c.PublicURL = publicURL + "/" },
		},
		{
			name: "static query parameters are signed as received", body: profile(t), sig: "v3",
			send: func(t testing.TB, a *app, body []byte) reply {
				req := a.request(t, http.MethodPost, queryURI, bytes.NewReader(body))
				for k, v := range sign(body, queryURI) {
					req.Header[k] = v
				}
				return a.do(t, req)
			},
		},
		{
			// Values longer than CC accepts are stored whole; whether CC can
			// take them is decided, visibly, at import time.
			name: "very long email without an id and a very long name",
			body: []byte(`{"email":"` + strings.Repeat("a", 230) + `@example.com","firstname":"` + strings.Repeat("Ä", 400) + `"}`),
			sig:  "v3",
			wantEnr: func(t testing.TB, e *store.Enrollment) {
				if !strings.HasPrefix(e.ObjectKey, "sha256:") || len(e.Email) != 242 || e.FirstName != strings.Repeat("Ä", 400) {
					t.Errorf("enrollment key %q, email %d bytes, first name %d bytes", e.ObjectKey, len(e.Email), len(e.FirstName))
				}
			},
		},
		{
			name: "body of exactly the default limit, 8 MiB", body: exactlyTheLimit(), sig: "v3",
			wantEnr: func(t testing.TB, e *store.Enrollment) {
				if e.ObjectKey != "303" || len(e.Properties["padding"]) < handlers.DefaultMaxBodyBytes-100 {
					t.Errorf("enrollment %s with %d bytes of padding", e.ObjectKey, len(e.Properties["padding"]))
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*setup)
			if tc.cfg != nil {
				opts = append(opts, func(s *setup) { tc.cfg(&s.cfg) })
			}
			a := start(t, opts...)
			var r reply
			if tc.send != nil {
				r = tc.send(t, a, tc.body)
			} else {
				r = a.post(t, tc.body, sign(tc.body, hookPath))
			}
			got := wantAccepted(t, r, http.StatusAccepted)
			if got.Version != 1 || got.Duplicate {
				t.Errorf("reply %s, want version 1, not a duplicate", r.body)
			}
			es := a.enrollments(t)
			if len(es) != 1 || es[0].ID != got.ID || es[0].Version != 1 || es[0].Status != store.StatusPending {
				t.Fatalf("enrollments %+v, want one pending version 1 with id %d", es, got.ID)
			}
			if tc.wantEnr != nil {
				tc.wantEnr(t, es[0])
			}
			ds := a.deliveries(t)
			if len(ds) != 1 {
				t.Fatalf("%d deliveries, want 1", len(ds))
			}
			wantDelivery(t, ds[0], store.KindWorkflow, tc.sig, store.VerdictAccepted, got.ID, tc.body)
			a.wantTasks(t, taskID(got.ID, 1))
		})
	}
}

// chunked sends body without a Content-Length, so that only reading it can
// find out how large it is.
func chunked(t testing.TB, a *app, body []byte, h http.Header) reply {
	t.Helper()
	req := a.request(t, http.MethodPost, hookPath, io.MultiReader(bytes.NewReader(body)))
	req.ContentLength = -1
	for k, v := range h {
		req.Header[k] = v
	}
	return a.do(t, req)
}

// Requests that are refused before anything is stored: a signature that does
// not verify, a verifier without a secret.
//
// Nothing here becomes a delivery or an enrollment. Signature failures are
// kept in the quarantine instead, which quarantine_test.go asserts; a body
// over the limit is recorded as a too_large delivery, which
// largebody_test.go asserts.
func TestWebhookRefusesUnstored(t *testing.T) {
	body := profile(t)
	tampered := replaceOnce(t, body, `"value":"Agent.Ylla@Example.com","versions"`, `"value":"attacker@example.com","versions"`)
	signedAt := func(ts time.Time) http.Header {
		return hubspot.Sign(secret, http.MethodPost, publicURL+hookPath, body, ts)
	}
	cases := []struct {
		name   string
		cfg    func(*handlers.Config)
		send   func(t testing.TB, a *app) reply
		status int
		code   string
	}{
		{
			name: "no signature headers, only HubSpot's infrastructure ones",
			send: func(t testing.TB, a *app) reply {
				h := http.Header{}
				h.Set("X-HubSpot-Correlation-Id", "9f0c2b1e-1111-4a2b-8c3d-0123456789ab")
				h.Set("User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/)")
				return a.post(t, body, h)
			},
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name: "wrong secret",
			send: func(t testing.TB, a *app) reply {
				return a.post(t, body, hubspot.Sign("pat-na1-00000000-0000-0000-0000-000000000000", http.MethodPost, publicURL+hookPath, body, time.Now()))
			},
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name:   "tampered body",
			send:   func(t testing.TB, a *app) reply { return a.post(t, tampered, sign(body, hookPath)) },
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name:   "tampered body, v2 signature only",
			send:   func(t testing.TB, a *app) reply { return a.post(t, tampered, withoutV3(sign(body, hookPath))) },
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			// The v2 signature sent alongside is valid and carries no time;
			// it must not rescue a stale v3 one.
			name:   "timestamp more than 5 minutes old",
			send:   func(t testing.TB, a *app) reply { return a.post(t, body, signedAt(time.Now().Add(-6*time.Minute))) },
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name:   "timestamp more than 5 minutes ahead",
			send:   func(t testing.TB, a *app) reply { return a.post(t, body, signedAt(time.Now().Add(6*time.Minute))) },
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name: "unreadable timestamp",
			send: func(t testing.TB, a *app) reply {
				h := sign(body, hookPath)
				h.Set(hubspot.HeaderRequestTimestamp, h.Get(hubspot.HeaderRequestTimestamp)+".0")
				return a.post(t, body, h)
			},
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name:   "v2 signature only while v3 is required",
			cfg:    func(c *handlers.Config) { c.Verifier.RequireV3 = true },
			send:   func(t testing.TB, a *app) reply { return a.post(t, body, withoutV3(sign(body, hookPath))) },
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name: "signed over the internal URL instead of the public one",
			send: func(t testing.TB, a *app) reply {
				return a.post(t, body, hubspot.Sign(secret, http.MethodPost, "http://internal:8080"+hookPath, body, time.Now()))
			},
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name: "signed over http while PublicURL is https",
			send: func(t testing.TB, a *app) reply {
				return a.post(t, body, hubspot.Sign(secret, http.MethodPost, "http://hooks.example.com"+hookPath, body, time.Now()))
			},
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			name:   "PublicURL with a path prefix the signature lacks",
			cfg:    func(c *handlers.Config) { c.PublicURL = publicURL + "/hs2cc" },
			send:   func(t testing.TB, a *app) reply { return a.post(t, body, sign(body, hookPath)) },
			status: http.StatusUnauthorized, code: handlers.CodeBadSignature,
		},
		{
			// A missing secret is our configuration fault: 503 makes HubSpot
			// retry until it is fixed, where a 401 would drop the enrollment.
			name:   "no secret configured",
			cfg:    func(c *handlers.Config) { c.Verifier = &hubspot.Verifier{} },
			send:   func(t testing.TB, a *app) reply { return a.post(t, body, sign(body, hookPath)) },
			status: http.StatusServiceUnavailable, code: handlers.CodeUnavailable,
		},
		{
			name: "only an empty secret configured",
			cfg:  func(c *handlers.Config) { c.Verifier = &hubspot.Verifier{Secrets: []string{""}} },
			send: func(t testing.TB, a *app) reply {
				return a.post(t, body, hubspot.Sign("", http.MethodPost, publicURL+hookPath, body, time.Now()))
			},
			status: http.StatusServiceUnavailable, code: handlers.CodeUnavailable,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*setup)
			if tc.cfg != nil {
				opts = append(opts, func(s *setup) { tc.cfg(&s.cfg) })
			}
			a := start(t, opts...)
			wantError(t, tc.send(t, a), tc.status, tc.code)
			a.wantNothingStored(t)
			a.wantTasks(t)
		})
	}
}

// Verified bodies that cannot be imported are kept with their reason, so
// that nothing HubSpot sent is lost.
func TestWebhookStoresWhatItCannotImport(t *testing.T) {
	noEmail := replaceOnce(t,
		replaceOnce(t, profile(t), `"email":{"value":"Agent.Ylla@Example.com","versions"`, `"work_email":{"value":"","versions"`),
		`{"type":"EMAIL","value":"Agent.Ylla@Example.com"`, `{"type":"EMAIL","value":""`)
	cases := []struct {
		name    string
		body    []byte
		header  func(body []byte) http.Header // v3 and v2 when nil
		status  int
		code    string
		kind    string
		sig     string
		verdict string
		reason  string // a part of the stored reason
	}{
		{
			name: "truncated JSON", body: []byte(`{"email":"ann@example.com","firstname":"Ann`),
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindUnknown, sig: "v3", verdict: store.VerdictMalformed, reason: "malformed",
		},
		{
			name: "empty body", body: []byte{},
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindUnknown, sig: "v3", verdict: store.VerdictMalformed, reason: "empty",
		},
		{
			name: "JSON that is not an object", body: []byte(`"ann@example.com"`),
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindUnknown, sig: "v3", verdict: store.VerdictMalformed, reason: "not a JSON object",
		},
		{
			name: "data after the object", body: []byte(`{"email":"ann@example.com"}{"email":"bob@example.com"}`),
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindUnknown, sig: "v3", verdict: store.VerdictMalformed, reason: "after the top-level object",
		},
		{
			name: "single-quoted pseudo JSON, v2 signed", body: []byte(`{'example_field':'example_value'}`),
			header: func(b []byte) http.Header { return withoutV3(sign(b, hookPath)) },
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindUnknown, sig: "v2", verdict: store.VerdictMalformed, reason: "malformed",
		},
		{
			name: "contact profile without any email", body: noEmail,
			status: http.StatusUnprocessableEntity, code: handlers.CodeNoEmail,
			kind: store.KindWorkflow, sig: "v3", verdict: store.VerdictNoEmail, reason: `missing "email"`,
		},
		{
			name: "flat body with an invalid email", body: []byte(`{"hs_object_id":"7","email":"ann at example.com"}`),
			status: http.StatusUnprocessableEntity, code: handlers.CodeNoEmail,
			kind: store.KindWorkflow, sig: "v3", verdict: store.VerdictNoEmail, reason: "invalid",
		},
		{
			name: "email with a display name", body: []byte(`{"hs_object_id":"8","email":"Ann <ann@example.com>"}`),
			status: http.StatusUnprocessableEntity, code: handlers.CodeNoEmail,
			kind: store.KindWorkflow, sig: "v3", verdict: store.VerdictNoEmail, reason: "invalid",
		},
		{
			name: "Webhooks API array cut short", body: []byte(`[{"eventId":1,"objectId":`), header: signV1,
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindWebhooksAPI, sig: "v1", verdict: store.VerdictMalformed, reason: "malformed",
		},
		{
			name: "Webhooks API array of non-events", body: []byte(`[1,2]`), header: signV1,
			status: http.StatusBadRequest, code: handlers.CodeMalformed,
			kind: store.KindWebhooksAPI, sig: "v1", verdict: store.VerdictMalformed, reason: "not a JSON object",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t)
			h := sign(tc.body, hookPath)
			if tc.header != nil {
				h = tc.header(tc.body)
			}
			r := a.post(t, tc.body, h)
			ds := a.deliveries(t)
			if len(ds) != 1 {
				t.Fatalf("%d deliveries stored, want 1; reply %d %s", len(ds), r.status, r.body)
			}
			d := ds[0]
			wantError(t, r, tc.status, tc.code)
			wantDelivery(t, d, tc.kind, tc.sig, tc.verdict, 0, tc.body)
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("stored reason %q, want it to mention %q", d.Reason, tc.reason)
			}
			if e := a.enrollments(t); len(e) != 0 {
				t.Errorf("%d enrollments stored, want none", len(e))
			}
			a.wantTasks(t)
		})
	}
}

// With MySQL gone, every body, good or bad, is answered 503 so that HubSpot
// retries it; a 4xx would lose it for good.
func TestWebhookMySQLDown(t *testing.T) {
	ctx := context.Background()
	bodies := map[string][]byte{
		"contact profile":   profile(t),
		"malformed":         []byte(`{"email":`),
		"no email":          []byte(`{"hs_object_id":"9","firstname":"Ann"}`),
		"Webhooks API body": []byte(`[{"eventId":1,"objectId":123}]`),
		"Webhooks API property change": []byte(`[{"eventId":2,"portalId":62515,"objectId":101,` +
			`"subscriptionType":"contact.propertyChange","propertyName":"firstname","propertyValue":"Ann"}]`),
		"malformed Webhooks API body": []byte(`[{"eventId":`),
	}
	outages := []struct {
		name      string
		fail      func(t *testing.T, served *store.DB)
		readyFail string // the readiness check that must name the outage
		cause     string // what the log must name
	}{
		{
			name:      "connection pool closed",
			fail:      func(t *testing.T, served *store.DB) { served.Close() },
			readyFail: "mysql",
			cause:     "sql: database is closed",
		},
		{
			name: "database dropped under the service",
			fail: func(t *testing.T, served *store.DB) {
				var name string
				if err := served.SQL().QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				if _, err := served.SQL().Exec("DROP DATABASE " + name); err != nil {
					t.Fatal(err)
				}
			},
			readyFail: "schema",
			cause:     "store: ",
		},
	}
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			dsn := storetest.MySQLDSN(t)
			served, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { served.Close() })
			if _, err := served.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			a := start(t, func(s *setup) { s.db = served })
			o.fail(t, served)

			for name, body := range bodies {
				r := a.post(t, body, sign(body, hookPath))
				if r.status >= 400 && r.status < 500 {
					t.Errorf("%s: answered %d, a status HubSpot never retries", name, r.status)
				}
				wantError(t, r, http.StatusServiceUnavailable, handlers.CodeUnavailable)
			}
			a.wantTasks(t)
			// The log must say what failed, not only what was answered.
			if !strings.Contains(a.logs.String(), o.cause) {
				t.Errorf("log does not name the cause %q:\n%s", o.cause, a.logs)
			}

			r := a.do(t, a.request(t, http.MethodGet, "/readyz", nil))
			var ready struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			decodeJSON(t, r, &ready)
			if r.status != http.StatusServiceUnavailable || ready.Status != "unavailable" ||
				ready.Checks[o.readyFail] == "ok" || ready.Checks[o.readyFail] == "" || ready.Checks["redis"] != "ok" {
				t.Errorf("readyz %d %s, want 503 naming %q", r.status, r.body, o.readyFail)
			}

			// Nothing half-written: whatever the outage left is empty.
			if o.name == "connection pool closed" {
				observer, err := store.Open(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer observer.Close()
				(&app{db: observer}).wantNothingStored(t)
			}
		})
	}
}

// With Redis down the enrollment is durable in MySQL, so the answer is still
// 202; the row stays pending and the sweep enqueues it later.
func TestWebhookRedisDown(t *testing.T) {
	a := start(t, func(s *setup) {
		// Nothing listens on port 1: every enqueue fails to connect.
		s.enqueueTo = asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: time.Second}
	})
	body := profile(t)

	began := time.Now()
	got := wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusAccepted)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("answer took %v; HubSpot gives up after 30 s", took)
	}
	if got.Version != 1 || got.Duplicate {
		t.Errorf("reply %+v", got)
	}
	es := a.enrollments(t)
	if len(es) != 1 || es[0].ID != got.ID || es[0].Status != store.StatusPending || es[0].Version != 1 {
		t.Fatalf("enrollments %+v, want one pending row %d", es, got.ID)
	}
	ds := a.deliveries(t)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	wantDelivery(t, ds[0], store.KindWorkflow, "v3", store.VerdictAccepted, got.ID, body)
	if !strings.Contains(a.logs.String(), "enqueue failed") {
		t.Errorf("the failed enqueue was not logged:\n%s", a.logs)
	}
	// The real Redis got nothing, so the sweep is what will queue the row.
	a.wantTasks(t)
	stale, err := a.db.StalePending(context.Background(), time.Now().Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0].ID != got.ID || stale[0].Version != 1 || !slices.Equal(stale[0].Lists, lists) {
		t.Errorf("sweep would find %+v, want enrollment %d version 1", stale, got.ID)
	}

	// HubSpot's retry while Redis is still down is a duplicate, still 2xx.
	again := wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusOK)
	if again.ID != got.ID || !again.Duplicate {
		t.Errorf("retry reply %+v", again)
	}
	a.wantTasks(t)

	// A retry that arrives once Redis is back queues the pending version
	// right away instead of waiting for the sweep: the same database, now
	// served with a working Redis.
	up := start(t, func(s *setup) { s.db = a.db })
	late := wantAccepted(t, up.post(t, body, sign(body, hookPath)), http.StatusOK)
	if late.ID != got.ID || !late.Duplicate || late.Version != 1 {
		t.Errorf("retry reply %+v", late)
	}
	up.wantTasks(t, taskID(got.ID, 1))
}

// HubSpot's retries can arrive together; exactly one of them creates the
// enrollment and the rest are duplicates, each counted on its delivery.
func TestWebhookConcurrentDuplicates(t *testing.T) {
	const n = 50
	a := start(t)
	body := profile(t)
	type result struct {
		status int
		got    accepted
		raw    []byte
		err    error
	}
	results := make(chan result, n)
	ready := make(chan struct{})
	for range n {
		go func() {
			req, err := http.NewRequest(http.MethodPost, a.srv.URL+hookPath, bytes.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			for k, v := range sign(body, hookPath) {
				req.Header[k] = v
			}
			<-ready
			resp, err := a.srv.Client().Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			r := result{status: resp.StatusCode, raw: raw, err: err}
			if err == nil {
				decodeErr := json.Unmarshal(raw, &r.got)
				if resp.StatusCode < 300 {
					r.err = decodeErr
				}
			}
			results <- r
		}()
	}
	close(ready)
	byStatus := map[int]int{}
	ids := map[int64]bool{}
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("request: %v", r.err)
			continue
		}
		byStatus[r.status]++
		if r.status >= 300 {
			t.Errorf("status %d: %s", r.status, r.raw)
			continue
		}
		ids[r.got.ID] = true
		if r.got.Duplicate != (r.status == http.StatusOK) || r.got.Version != 1 {
			t.Errorf("status %d with reply %s", r.status, r.raw)
		}
	}
	if byStatus[http.StatusAccepted] != 1 || byStatus[http.StatusOK] != n-1 {
		t.Errorf("statuses %v, want one 202 and %d 200", byStatus, n-1)
	}
	if len(ids) != 1 {
		t.Errorf("replies name enrollments %v, want one", ids)
	}
	es := a.enrollments(t)
	if len(es) != 1 || !ids[es[0].ID] || es[0].Version != 1 {
		t.Fatalf("enrollments %+v, want one at version 1", es)
	}
	ds := a.deliveries(t)
	if len(ds) != 1 || ds[0].Verdict != store.VerdictAccepted || ds[0].Repeats != n-1 ||
		ds[0].EnrollmentID != es[0].ID || !bytes.Equal(ds[0].Body, body) {
		t.Errorf("deliveries %+v, want one accepted with %d repeats", ds, n-1)
	}
	a.wantTasks(t, taskID(es[0].ID, 1))
}

// BenchmarkWebhook posts realistic signed contact profiles through the
// application on MariaDB and Redis: "new" stores and enqueues a new contact
// per operation; "repeat" answers the same request again (HubSpot's retry,
// or a replay), which is counted on the stored delivery; "same_content"
// answers a body that differs only in HubSpot's bookkeeping, which is
// stored as a duplicate delivery of its own.
func BenchmarkWebhook(b *testing.B) {
	type signed struct {
		body []byte
		h    http.Header
	}
	const pageViews = `"hs_analytics_num_page_views":{"value":"7","versions":[{"value":"7"`
	bench := func(b *testing.B, mode string) {
		a := start(b, func(s *setup) { s.cfg.Logger = slogDiscard() })
		base := profile(b)
		reqs := make([]signed, b.N)
		for i := range reqs {
			body := base
			switch mode {
			case "new":
				body = replaceOnce(b, base, `"canonical-vid":101`, fmt.Sprintf(`"canonical-vid":%d`, 1000+i))
			case "same_content":
				body = replaceOnce(b, base, pageViews, fmt.Sprintf(`"hs_analytics_num_page_views":{"value":"%d","versions":[{"value":"%d"`, 8+i, 8+i))
			}
			reqs[i] = signed{body: body, h: sign(body, hookPath)}
		}
		want := http.StatusAccepted
		if mode != "new" {
			want = http.StatusOK
			// Store it once so that every timed request is a duplicate.
			r := a.post(b, base, sign(base, hookPath))
			if r.status != http.StatusAccepted {
				b.Fatalf("status %d: %s", r.status, r.body)
			}
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(base)))
		b.ResetTimer()
		for i := range b.N {
			req := newRequest(reqs[i].body, reqs[i].h)
			rec := httptest.NewRecorder()
			a.echo.ServeHTTP(rec, req)
			if rec.Code != want {
				b.Fatalf("request %d: status %d, want %d: %s", i, rec.Code, want, rec.Body)
			}
		}
		b.StopTimer()
		if mode != "new" {
			// Each mode takes the path it names: one row counting every
			// repeat, or one row per delivery of the same content.
			rows := len(a.deliveries(b))
			if (mode == "repeat" && rows != 1) || (mode == "same_content" && rows != b.N+1) {
				b.Fatalf("%s: %d deliveries stored after %d requests", mode, rows, b.N)
			}
		}
	}
	for _, mode := range []string{"new", "repeat", "same_content"} {
		b.Run(mode, func(b *testing.B) { bench(b, mode) })
	}
}
