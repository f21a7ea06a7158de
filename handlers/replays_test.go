package handlers_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// flatBody is a customised workflow body of contact 501, which carries no
// HubSpot data time: only the request's own signing time can order it.
func flatBody(first string) []byte {
	return []byte(fmt.Sprintf(`{"hs_object_id":"501","email":"ann@example.com","firstname":%q}`, first))
}

// signV2 is how a v1/v2-only sender signs, with nothing that says when.
func signV2(body []byte) http.Header {
	h := http.Header{}
	h.Set(hubspot.HeaderSignature, hubspot.SignV2(secret, http.MethodPost, publicURL+hookPath, body))
	h.Set(hubspot.HeaderSignatureVersion, "v2")
	return h
}

// signAt signs body with v3 (and v2) as HubSpot would have at the time at.
func signAt(body []byte, at time.Time) http.Header {
	return hubspot.Sign(secret, http.MethodPost, publicURL+hookPath, body, at)
}

// deliveryOf returns the newest stored delivery of body, or nil.
func deliveryOf(ds []*store.Delivery, body []byte) *store.Delivery {
	var found *store.Delivery
	for _, d := range ds {
		if bytes.Equal(d.Body, body) {
			found = d
		}
	}
	return found
}

// TestWebhookV2Replays reproduces the replay of a captured v2 request,
// which proves no time and so stays valid for ever: 300 sends of one body
// make one delivery that counts 299 repeats and one task, and replaying it
// after the contact changed rolls nothing back and queues nothing.
func TestWebhookV2Replays(t *testing.T) {
	// v1/v2 accepted, as HS2CC_HUBSPOT_REQUIRE_V3=false configures it.
	a := start(t, func(s *setup) { s.cfg.Verifier.RequireV3 = false })
	old, changed := flatBody("Ann"), flatBody("Anna")

	first := wantAccepted(t, a.post(t, old, signV2(old)), http.StatusAccepted)
	for i := range 299 {
		r := a.post(t, old, signV2(old))
		if got := wantAccepted(t, r, http.StatusOK); got.ID != first.ID || got.Version != 1 || !got.Duplicate {
			t.Fatalf("replay %d: reply %s, want a duplicate of version 1", i+1, r.body)
		}
	}
	ds := a.deliveries(t)
	if len(ds) != 1 || ds[0].Repeats != 299 || ds[0].Verdict != store.VerdictAccepted || ds[0].LastRepeatAt.IsZero() {
		t.Fatalf("%d deliveries, first with %d repeats; want 1 accepted delivery with 299", len(ds), ds[0].Repeats)
	}
	a.wantTasks(t, taskID(first.ID, 1))

	wantAccepted(t, a.post(t, changed, signV2(changed)), http.StatusAccepted)
	for range 10 {
		r := a.post(t, old, signV2(old))
		if got := wantAccepted(t, r, http.StatusOK); got.Version != 2 || !got.Duplicate {
			t.Fatalf("replay after the change: reply %s, want a duplicate of version 2", r.body)
		}
	}
	es := a.enrollments(t)
	if len(es) != 1 || es[0].FirstName != "Anna" || es[0].Version != 2 {
		t.Errorf("enrollment %+v, want version 2 with the changed name", es[0])
	}
	ds = a.deliveries(t)
	if len(ds) != 2 || deliveryOf(ds, old).Repeats != 309 {
		t.Errorf("%d deliveries, the old body's with %d repeats; want 2 and 309", len(ds), deliveryOf(ds, old).Repeats)
	}
	a.wantTasks(t, taskID(first.ID, 1), taskID(first.ID, 2))
}

// TestWebhookStaleV3 orders v3 deliveries without HubSpot data times by
// when HubSpot signed them: an older request replayed within its five
// minutes, or an older body that arrives late, is stale; the contact keeps
// the newer data and nothing is queued.
func TestWebhookStaleV3(t *testing.T) {
	now := time.Now()
	type send struct {
		body []byte
		ago  time.Duration // how long before now HubSpot signed it
	}
	tests := []struct {
		name        string
		sends       []send // the last one is the stale one
		deliveries  int    // stored in all
		lastVerdict string // of the delivery the stale send names
		reason      string // a part of the stale delivery's reason
	}{
		{
			name:        "the older request replayed",
			sends:       []send{{flatBody("Ann"), 2 * time.Minute}, {flatBody("Anna"), time.Minute}, {flatBody("Ann"), 2 * time.Minute}},
			deliveries:  2, // the replay is counted on the first delivery
			lastVerdict: store.VerdictAccepted,
		},
		{
			name:        "an older body delivered after a newer one",
			sends:       []send{{flatBody("Ann"), 3 * time.Minute}, {flatBody("Anna"), time.Minute}, {flatBody("Annette"), 2 * time.Minute}},
			deliveries:  3,
			lastVerdict: store.VerdictStale,
			reason:      "signed by HubSpot at",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t)
			var id int64
			for _, s := range tc.sends[:len(tc.sends)-1] {
				id = wantAccepted(t, a.post(t, s.body, signAt(s.body, now.Add(-s.ago))), http.StatusAccepted).ID
			}
			last := tc.sends[len(tc.sends)-1]
			r := a.post(t, last.body, signAt(last.body, now.Add(-last.ago)))
			if r.status != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", r.status, r.body)
			}
			var got workflowReply
			decodeJSON(t, r, &got)
			if got != (workflowReply{ID: id, Version: 2, Duplicate: true, Stale: true}) {
				t.Errorf("reply %s, want a stale duplicate of version 2", r.body)
			}
			if es := a.enrollments(t); len(es) != 1 || es[0].FirstName != "Anna" || es[0].Version != 2 {
				t.Errorf("enrollment %+v, want version 2 with the newer name", es[0])
			}
			ds := a.deliveries(t)
			d := deliveryOf(ds, last.body)
			if len(ds) != tc.deliveries || d.Verdict != tc.lastVerdict || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("%d deliveries, the stale body's %q (%q); want %d and %q with %q",
					len(ds), d.Verdict, d.Reason, tc.deliveries, tc.lastVerdict, tc.reason)
			}
			if !d.SignedAt.Equal(now.Add(-last.ago).Truncate(time.Millisecond)) {
				t.Errorf("delivery signed at %v, want %v", d.SignedAt, now.Add(-last.ago))
			}
			a.wantTasks(t, taskID(id, 1), taskID(id, 2))
		})
	}
}

// TestWebhookFieldTooLong: a signed body whose first name (or last name) is
// longer than its column holds was answered 503, and retried by HubSpot,
// for three days. It is refused with 422 every time, kept once as a
// rejected delivery that names the field and counts the retries, and
// counted as rejected.
func TestWebhookFieldTooLong(t *testing.T) {
	huge := strings.Repeat("é", 50_000) // 100,000 bytes, in 50,000 characters
	tests := []struct {
		name, field string
		body        []byte
	}{
		{"a 100 KB first name", "first_name", []byte(`{"hs_object_id":"601","email":"ann@example.com","firstname":"` + huge + `"}`)},
		{"a 100 KB last name", "last_name", []byte(`{"hs_object_id":"602","email":"bob@example.com","lastname":"` + huge + `"}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			a := start(t, func(s *setup) { s.cfg.WebhookMetrics = handlers.NewMetrics(reg) })
			const sends = 3
			for range sends {
				wantError(t, a.post(t, tc.body, sign(tc.body, hookPath)), http.StatusUnprocessableEntity, handlers.CodeFieldTooLong)
			}
			ds := a.deliveries(t)
			if len(ds) != 1 {
				t.Fatalf("%d deliveries, want 1", len(ds))
			}
			wantDelivery(t, ds[0], store.KindWorkflow, "v3", store.VerdictRejected, 0, tc.body)
			if !strings.Contains(ds[0].Reason, "field_too_long: "+tc.field) || ds[0].Repeats != sends-1 {
				t.Errorf("reason %q with %d repeats, want field_too_long of %s and %d", ds[0].Reason, ds[0].Repeats, tc.field, sends-1)
			}
			if es := a.enrollments(t); len(es) != 0 {
				t.Errorf("%d enrollments, want none", len(es))
			}
			a.wantTasks(t)
			if v := gather(t, reg).counter("hs2cc_webhook_requests_total", "outcome", store.VerdictRejected); v != sends {
				t.Errorf("rejected counted %v times, want %d", v, sends)
			}
		})
	}
}
