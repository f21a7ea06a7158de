package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// at is a HubSpot time in the tests, minute m of one day.
func at(m int) time.Time { return time.Date(2026, 11, 1, 12, m, 0, 0, time.UTC) }

// dated is enrollment() with a first name, a content hash that follows it,
// and HubSpot's time of the data; m < 0 leaves the time unknown.
func dated(first string, m int) *store.Enrollment {
	e := enrollment("101", "ann@example.com", first, "h-"+first)
	if m >= 0 {
		e.SourceUpdatedAt = at(m)
	}
	return e
}

// Workflow bodies carry no event id; their HubSpot time decides whether a
// late one may overwrite what is stored.
func TestIngestSourceOrder(t *testing.T) {
	type step struct {
		e           *store.Enrollment
		wantOutcome store.Outcome
		wantVersion int
		wantFirst   string // the stored first name afterwards
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"older after newer is stale and changes nothing", []step{
			{dated("Ann", 20), store.OutcomeCreated, 1, "Ann"},
			{dated("Anna", 10), store.OutcomeStale, 1, "Ann"},
		}},
		{"newer after older is a new version", []step{
			{dated("Ann", 10), store.OutcomeCreated, 1, "Ann"},
			{dated("Anna", 20), store.OutcomeUpdated, 2, "Anna"},
		}},
		{"the same time with changed content is a new version", []step{
			{dated("Ann", 10), store.OutcomeCreated, 1, "Ann"},
			{dated("Anna", 10), store.OutcomeUpdated, 2, "Anna"},
		}},
		{"an older repeat of the stored content is stale", []step{
			{dated("Ann", 20), store.OutcomeCreated, 1, "Ann"},
			{dated("Ann", 10), store.OutcomeStale, 1, "Ann"},
		}},
		{"unknown times keep the old rules", []step{
			{dated("Ann", -1), store.OutcomeCreated, 1, "Ann"},
			{dated("Ann", -1), store.OutcomeUnchanged, 1, "Ann"},
			{dated("Anna", -1), store.OutcomeUpdated, 2, "Anna"},
			{dated("Ann", 10), store.OutcomeUpdated, 3, "Ann"},
			{dated("Anne", -1), store.OutcomeUpdated, 4, "Anne"},
		}},
		// A body of unknown time is applied, but cannot make the row's data
		// look older than it was.
		{"an unknown time does not lower the stored one", []step{
			{dated("Ann", 20), store.OutcomeCreated, 1, "Ann"},
			{dated("Anna", -1), store.OutcomeUpdated, 2, "Anna"},
			{dated("Anne", 10), store.OutcomeStale, 2, "Anna"},
		}},
		// HubSpot can change a contact and change it back; the second
		// delivery is the same content, yet its time must still make the
		// late first one stale.
		{"a repeat of the content with a newer time moves the time", []step{
			{dated("Ann", 10), store.OutcomeCreated, 1, "Ann"},
			{dated("Ann", 30), store.OutcomeUnchanged, 1, "Ann"},
			{dated("Anna", 20), store.OutcomeStale, 1, "Ann"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MySQL(t)
			var id int64
			for i, st := range tc.steps {
				body := []byte(fmt.Sprintf(`{"step":%d}`, i))
				d := &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: body}
				res, err := db.Ingest(ctx, d, st.e)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if id == 0 {
					id = res.EnrollmentID
				}
				if res.EnrollmentID != id || res.Outcome != st.wantOutcome || res.Version != st.wantVersion {
					t.Errorf("step %d: %+v, want enrollment %d outcome %v version %d", i, res, id, st.wantOutcome, st.wantVersion)
				}
				wantVerdict := map[store.Outcome]string{
					store.OutcomeCreated: store.VerdictAccepted, store.OutcomeUpdated: store.VerdictAccepted,
					store.OutcomeUnchanged: store.VerdictDuplicate, store.OutcomeStale: store.VerdictStale,
				}[st.wantOutcome]
				got, err := db.GetDelivery(ctx, res.DeliveryID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Verdict != wantVerdict || got.EnrollmentID != id || string(got.Body) != string(body) {
					t.Errorf("step %d: delivery %+v, want verdict %q", i, got, wantVerdict)
				}
				if (st.wantOutcome == store.OutcomeStale) != strings.Contains(got.Reason, "older than") {
					t.Errorf("step %d: reason %q", i, got.Reason)
				}
				e, err := db.GetEnrollment(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if e.FirstName != st.wantFirst || e.Version != st.wantVersion || e.ContentHash != "h-"+st.wantFirst {
					t.Errorf("step %d: stored %q version %d hash %q, want %q version %d",
						i, e.FirstName, e.Version, e.ContentHash, st.wantFirst, st.wantVersion)
				}
			}
		})
	}
}

// hashOf stands in for hubspot.Enrollment.ContentHash: any change of a
// field or property changes it.
func hashOf(e *store.Enrollment) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(e.Email, e.FirstName, e.LastName, e.Country, e.Properties)))
	return hex.EncodeToString(sum[:])
}

// setProp is the change the handler makes for a propertyChange event, less
// the routing: the property, the first name when it is the first name, and
// the hash. An "@"-less email is refused, as hubspot.SetProperty refuses it.
func setProp(name, value string) func(e *store.Enrollment) error {
	return func(e *store.Enrollment) error {
		if name == "email" && !strings.Contains(value, "@") {
			return &store.Refusal{Verdict: store.VerdictNoEmail, Reason: "invalid email"}
		}
		e.Properties[name] = value
		if name == "firstname" {
			e.FirstName = value
		}
		e.ContentHash = hashOf(e)
		return nil
	}
}

func change(portal int64, object, name, value string, m int) *store.PropertyChange {
	c := &store.PropertyChange{PortalID: portal, ObjectKey: object, Name: name, Apply: setProp(name, value)}
	if m >= 0 {
		c.OccurredAt = at(m)
	}
	return c
}

// One contact through a run of Webhooks API events and workflow bodies.
// Subtests run in order on one database; each builds on the last.
func TestIngestEvent(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	base := enrollment("101", "ann@example.com", "Ann", "")
	base.SourceUpdatedAt = at(10)
	base.ContentHash = hashOf(base)
	created, err := db.Ingest(ctx, workflowDelivery(base), base)
	if err != nil {
		t.Fatal(err)
	}
	id := created.EnrollmentID
	// A customised body without a portal id is stored under portal 0.
	flat := enrollment("202", "bob@example.com", "Bob", "")
	flat.PortalID = 0
	flat.ContentHash = hashOf(flat)
	flatRes, err := db.Ingest(ctx, workflowDelivery(flat), flat)
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name        string
		key         string
		change      *store.PropertyChange // nil: recorded as unsupported
		enrollment  int64                 // the enrollment the result and delivery name
		outcome     store.Outcome
		verdict     string
		version     int // of that enrollment afterwards
		first, last string
		reason      string // a part of the delivery's reason; "" when it must have none
	}{
		{"a newer change is a new version", "k1", change(62515, "101", "firstname", "Anna", 20),
			id, store.OutcomeUpdated, store.VerdictAccepted, 2, "Anna", "", ""},
		{"HubSpot's retry of the event is a duplicate", "k1", change(62515, "101", "firstname", "Anna", 20),
			id, store.OutcomeUnchanged, store.VerdictDuplicate, 2, "Anna", "", "repeat of the event stored as delivery"},
		{"an older change of the same property is stale", "k2", change(62515, "101", "firstname", "Anne", 15),
			id, store.OutcomeStale, store.VerdictStale, 2, "Anna", "", `change of "firstname" at 2026-11-01T12:15:00.000Z is older than the stored value of 2026-11-01T12:20:00.000Z`},
		// Events of different properties keep no order between them.
		{"an older change of another property still applies", "k3", change(62515, "101", "lastname", "Lee", 12),
			id, store.OutcomeUpdated, store.VerdictAccepted, 3, "Anna", "Lee", ""},
		{"a change to the stored value is no new version", "k4", change(62515, "101", "lastname", "Lee", 30),
			id, store.OutcomeUnchanged, store.VerdictDuplicate, 3, "Anna", "Lee", ""},
		{"which still makes an older change stale", "k5", change(62515, "101", "lastname", "Old", 25),
			id, store.OutcomeStale, store.VerdictStale, 3, "Anna", "Lee", "12:30:00.000Z"},
		{"a change older than the body is stale", "k6", change(62515, "101", "company", "Acme", 5),
			id, store.OutcomeStale, store.VerdictStale, 3, "Anna", "Lee", "12:10:00.000Z"},
		{"a refused change is recorded with its verdict", "k7", change(62515, "101", "email", "nobody", 40),
			id, store.OutcomeRecorded, store.VerdictNoEmail, 3, "Anna", "Lee", "invalid email"},
		{"a change without a time applies", "k8", change(62515, "101", "firstname", "Ann", -1),
			id, store.OutcomeUpdated, store.VerdictAccepted, 4, "Ann", "Lee", ""},
		{"an event without a key is never a duplicate", "", change(62515, "101", "firstname", "Ann", -1),
			id, store.OutcomeUnchanged, store.VerdictDuplicate, 4, "Ann", "Lee", ""},
		{"an unknown contact is recorded as unsupported", "k9", change(62515, "999", "firstname", "Zed", 50),
			0, store.OutcomeRecorded, store.VerdictUnsupported, 0, "", "", `no enrollment for contact "999" of portal 62515`},
		{"its retry is a duplicate", "k9", change(62515, "999", "firstname", "Zed", 50),
			0, store.OutcomeUnchanged, store.VerdictDuplicate, 0, "", "", "repeat of the event stored as delivery"},
		{"an event the bridge does not apply is recorded", "k10", nil,
			0, store.OutcomeRecorded, store.VerdictUnsupported, 0, "", "", "is not applied"},
		{"a contact stored without a portal is found", "k11", change(62515, "202", "firstname", "Bo", 50),
			flatRes.EnrollmentID, store.OutcomeUpdated, store.VerdictAccepted, 2, "Bo", "", ""},
	}
	for i, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			body := []byte(fmt.Sprintf(`{"eventId":%d}`, i))
			d := &store.Delivery{Kind: store.KindWebhooksAPI, SignatureVersion: "v1", Body: body}
			if st.change == nil {
				d.Verdict, d.Reason = store.VerdictUnsupported, "contact.creation is not applied"
			}
			res, err := db.IngestEvent(ctx, d, st.key, st.change)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != st.outcome || res.EnrollmentID != st.enrollment || res.Version != st.version {
				t.Errorf("result %+v, want outcome %v enrollment %d version %d", res, st.outcome, st.enrollment, st.version)
			}
			got, err := db.GetDelivery(ctx, res.DeliveryID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != store.KindWebhooksAPI || got.SignatureVersion != "v1" || got.Verdict != st.verdict ||
				got.EnrollmentID != st.enrollment || string(got.Body) != string(body) || d.Verdict != st.verdict {
				t.Errorf("delivery %+v (caller sees verdict %q), want verdict %q enrollment %d", got, d.Verdict, st.verdict, st.enrollment)
			}
			if (st.reason == "") != (got.Reason == "") || !strings.Contains(got.Reason, st.reason) {
				t.Errorf("reason %q, want one with %q", got.Reason, st.reason)
			}
			if st.enrollment == 0 {
				return
			}
			e, err := db.GetEnrollment(ctx, st.enrollment)
			if err != nil {
				t.Fatal(err)
			}
			if e.Version != st.version || e.FirstName != st.first || e.Properties["lastname"] != st.last ||
				e.ContentHash != hashOf(e) {
				t.Errorf("enrollment version %d first %q last %q, want %d %q %q",
					e.Version, e.FirstName, e.Properties["lastname"], st.version, st.first, st.last)
			}
			if st.outcome == store.OutcomeUpdated && (e.Status != store.StatusPending || res.Status != store.StatusPending) {
				t.Errorf("status %q / %q after a new version, want pending", e.Status, res.Status)
			}
		})
		if !ok {
			t.FailNow()
		}
	}

	// A workflow body must be newer than every event applied since the
	// last body; one that is replaces all of it.
	e, err := db.GetEnrollment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !e.SourceUpdatedAt.Equal(at(10)) || len(e.PropertyTimes) != 2 ||
		!e.PropertyTimes["firstname"].Equal(at(20)) || !e.PropertyTimes["lastname"].Equal(at(30)) {
		t.Errorf("times: body %v, properties %v", e.SourceUpdatedAt, e.PropertyTimes)
	}
	body := func(first string, m int) *store.Enrollment {
		b := enrollment("101", "ann@example.com", first, "")
		b.SourceUpdatedAt = at(m)
		b.ContentHash = hashOf(b)
		return b
	}
	old := body("Old", 28)
	res, err := db.Ingest(ctx, workflowDelivery(old), old)
	if err != nil || res.Outcome != store.OutcomeStale || res.Version != 4 {
		t.Fatalf("body older than an event: %+v, %v; want stale at version 4", res, err)
	}
	newer := body("New", 45)
	res, err = db.Ingest(ctx, workflowDelivery(newer), newer)
	if err != nil || res.Outcome != store.OutcomeUpdated || res.Version != 5 {
		t.Fatalf("body newer than every event: %+v, %v; want version 5", res, err)
	}
	if e, _ := db.GetEnrollment(ctx, id); e.FirstName != "New" || !e.SourceUpdatedAt.Equal(at(45)) || e.PropertyTimes != nil {
		t.Errorf("after the body: first %q, body time %v, property times %v", e.FirstName, e.SourceUpdatedAt, e.PropertyTimes)
	}
	res, err = db.IngestEvent(ctx, &store.Delivery{Kind: store.KindWebhooksAPI, Body: []byte("{}")}, "k12",
		change(62515, "101", "lastname", "Late", 40))
	if err != nil || res.Outcome != store.OutcomeStale {
		t.Errorf("event older than the new body: %+v, %v; want stale", res, err)
	}
}

// An Apply that fails for another reason than a refusal is a fault: nothing
// is stored, not even the event's key, so that HubSpot's retry applies it.
func TestIngestEventApplyFault(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	if _, err := db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, Body: []byte("{}")},
		enrollment("101", "ann@example.com", "Ann", "h")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	c := change(62515, "101", "firstname", "Anna", 20)
	c.Apply = func(*store.Enrollment) error { return boom }
	if _, err := db.IngestEvent(ctx, &store.Delivery{Kind: store.KindWebhooksAPI, Body: []byte("{}")}, "k", c); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	counts, err := db.CountDeliveries(ctx)
	if err != nil || counts[store.VerdictAccepted] != 1 || len(counts) != 1 {
		t.Fatalf("deliveries %v, %v; want only the workflow one", counts, err)
	}
	res, err := db.IngestEvent(ctx, &store.Delivery{Kind: store.KindWebhooksAPI, Body: []byte("{}")}, "k",
		change(62515, "101", "firstname", "Anna", 20))
	if err != nil || res.Outcome != store.OutcomeUpdated || res.Version != 2 {
		t.Fatalf("retry: %+v, %v; want version 2", res, err)
	}
}

// HubSpot's retries of one event can arrive together; exactly one applies.
func TestIngestEventConcurrentRetries(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	base := enrollment("101", "ann@example.com", "Ann", "")
	base.ContentHash = hashOf(base)
	if _, err := db.Ingest(ctx, workflowDelivery(base), base); err != nil {
		t.Fatal(err)
	}
	const n = 16
	results := make([]store.IngestResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &store.Delivery{Kind: store.KindWebhooksAPI, Body: []byte("{}")}
			results[i], errs[i] = db.IngestEvent(ctx, d, "same-event", change(62515, "101", "firstname", "Anna", 20))
		}()
	}
	wg.Wait()
	byOutcome := map[store.Outcome]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		byOutcome[results[i].Outcome]++
		if results[i].Version != 2 {
			t.Errorf("event %d: version %d, want 2", i, results[i].Version)
		}
	}
	if byOutcome[store.OutcomeUpdated] != 1 || byOutcome[store.OutcomeUnchanged] != n-1 {
		t.Errorf("outcomes %v, want one update and %d duplicates", byOutcome, n-1)
	}
	counts, err := db.CountDeliveries(ctx)
	if err != nil || counts[store.VerdictAccepted] != 2 || counts[store.VerdictDuplicate] != n-1 {
		t.Errorf("delivery verdicts %v, %v", counts, err)
	}
}
