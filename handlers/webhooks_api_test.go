package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/store"
)

// signV1 returns the headers of a Webhooks API delivery as HubSpot signs
// it for an app subscription: the v1 hash, without the v3 headers.
func signV1(body []byte) http.Header {
	h := http.Header{}
	h.Set(hubspot.HeaderSignature, hubspot.SignV1(secret, body))
	h.Set(hubspot.HeaderSignatureVersion, "v1")
	return h
}

// batch is a Webhooks API body holding the events given.
func batch(events ...string) []byte { return []byte("[" + strings.Join(events, ",") + "]") }

// jsonText renders s as a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// propChange is a contact.propertyChange event of the test portal, shaped
// like the fact sheet's fixture; attempt is HubSpot's attempt number.
func propChange(eventID, object int, prop, value string, occurredAt int64, attempt int) string {
	return fmt.Sprintf(`{"eventId":%d,"subscriptionId":12345,"portalId":62515,"occurredAt":%d,`+
		`"subscriptionType":"contact.propertyChange","attemptNumber":%d,"objectId":%d,"propertyName":%s,`+
		`"propertyValue":%s,"changeSource":"CRM_UI","sourceId":"userId:882761034","appId":54321}`,
		eventID, occurredAt, attempt, object, jsonText(prop), jsonText(value))
}

// otherEvent is an event of the given type, which the bridge does not apply.
func otherEvent(eventID, object int, subscriptionType string, attempt int) string {
	return fmt.Sprintf(`{"eventId":%d,"subscriptionId":12345,"portalId":62515,"occurredAt":1700000300000,`+
		`"subscriptionType":%q,"attemptNumber":%d,"objectId":%d,"changeSource":"CRM","changeFlag":"NEW","appId":54321}`,
		eventID, subscriptionType, attempt, object)
}

// eventsReply is the body of the 200 that answers a Webhooks API delivery.
type eventsReply struct {
	Events  int `json:"events"`
	Updated int `json:"updated"`
	Stored  int `json:"stored"`
}

func wantEventsReply(t testing.TB, r reply, want eventsReply) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var got eventsReply
	decodeJSON(t, r, &got)
	if got != want {
		t.Errorf("reply %+v, want %+v", got, want)
	}
}

// workflowReply is the body of the 2xx that answers a workflow delivery,
// with the stale flag an old delivery gets.
type workflowReply struct {
	ID        int64 `json:"id"`
	Version   int   `json:"version"`
	Duplicate bool  `json:"duplicate"`
	Stale     bool  `json:"stale"`
}

// The contact of the profile fixture through Webhooks API batches and
// workflow bodies. Each step checks the answer, the enrollment, every
// delivery it stored and the queue; steps run in order on one service.
func TestWebhooksAPIPropertyChanges(t *testing.T) {
	a := start(t)
	first := profile(t)
	created := wantAccepted(t, a.post(t, first, sign(first, hookPath)), http.StatusAccepted)
	id := created.ID

	// The profile's newest content is from 1700000100000; every change
	// below is later unless it says otherwise.
	changeFirst := propChange(1, 101, "firstname", "Yllä-Maria", 1700000300000, 0)
	creation := otherEvent(2, 555, "contact.creation", 0)
	unknown := propChange(3, 999, "firstname", "Zed", 1700000300000, 0)
	deletion := otherEvent(4, 101, "contact.deletion", 0)
	retried := func(event string) string { return strings.Replace(event, `"attemptNumber":0`, `"attemptNumber":1`, 1) }
	older := propChange(5, 101, "firstname", "Old", 1700000200000, 0)
	badEmail := propChange(6, 101, "email", "not an email", 1700000400000, 0)
	lastName := propChange(7, 101, "lastname", "Lee", 1700000500000, 0)
	country := propChange(8, 101, "country", "Sweden", 1700000450000, 0)

	// sameContent is the workflow body of the contact as the events left
	// it, dated after them: it must hash as the events' result does.
	sameContent := replaceOnce(t, replaceOnce(t, replaceOnce(t, first,
		`"firstname":{"value":"Yll\u00e4","versions":[{"value":"Yll\u00e4","source-type":"FORM","source-id":"a1b2c3d4-0000-4a5b-9c8d-0123456789ab","source-label":null,"updated-by-user-id":null,"timestamp":1700000000000`,
		`"firstname":{"value":"Yll\u00e4-Maria","versions":[{"value":"Yll\u00e4-Maria","source-type":"CRM_UI","source-id":"a1b2c3d4-0000-4a5b-9c8d-0123456789ab","source-label":null,"updated-by-user-id":null,"timestamp":1700000600000`),
		`"lastname":{"value":"\u00d8ster-Kallstr\u00f6m"`, `"lastname":{"value":"Lee"`),
		`"country":{"value":"Finland"`, `"country":{"value":"Sweden"`)

	type delivery struct {
		body    string
		verdict string
		ofThis  bool   // names the enrollment; else none
		reason  string // a part of the reason; "" when it must have none
	}
	steps := []struct {
		name  string
		body  []byte
		head  http.Header
		check func(t *testing.T, r reply)
		// The enrollment afterwards.
		version               int
		firstName, last, ctry string
		deliveries            []delivery // stored by this step, in order
		kind                  string     // of those deliveries
		queued                []int      // versions whose task waits in the group
	}{
		{
			name: "a batch with a change of a known contact updates it and keeps the rest",
			body: batch(changeFirst, creation, unknown, deletion),
			check: func(t *testing.T, r reply) {
				wantEventsReply(t, r, eventsReply{Events: 4, Updated: 1, Stored: 4})
			},
			version: 2, firstName: "Yllä-Maria", last: "Øster-Kallström", ctry: "Finland", kind: store.KindWebhooksAPI,
			deliveries: []delivery{
				{changeFirst, store.VerdictAccepted, true, ""},
				{creation, store.VerdictUnsupported, false, "contact.creation events are stored, not applied"},
				{unknown, store.VerdictUnsupported, false, `no enrollment for contact "999" of portal 62515`},
				{deletion, store.VerdictUnsupported, false, "contact.deletion events are stored, not applied"},
			},
			queued: []int{1, 2},
		},
		{
			name: "HubSpot's retry of the batch is four duplicates",
			body: batch(retried(changeFirst), retried(creation), retried(unknown), retried(deletion)),
			check: func(t *testing.T, r reply) {
				wantEventsReply(t, r, eventsReply{Events: 4, Updated: 0, Stored: 4})
			},
			version: 2, firstName: "Yllä-Maria", last: "Øster-Kallström", ctry: "Finland", kind: store.KindWebhooksAPI,
			deliveries: []delivery{
				{retried(changeFirst), store.VerdictDuplicate, true, "repeat of the event"},
				{retried(creation), store.VerdictDuplicate, false, "repeat of the event"},
				{retried(unknown), store.VerdictDuplicate, false, "repeat of the event"},
				{retried(deletion), store.VerdictDuplicate, false, "repeat of the event"},
			},
			queued: []int{1, 2},
		},
		{
			name: "an older change of the same property is stale",
			body: batch(older),
			check: func(t *testing.T, r reply) {
				wantEventsReply(t, r, eventsReply{Events: 1, Updated: 0, Stored: 1})
			},
			version: 2, firstName: "Yllä-Maria", last: "Øster-Kallström", ctry: "Finland", kind: store.KindWebhooksAPI,
			deliveries: []delivery{{older, store.VerdictStale, true, "older than the stored value"}},
			queued:     []int{1, 2},
		},
		{
			name: "an email that cannot be imported is kept, not applied",
			body: batch(badEmail),
			check: func(t *testing.T, r reply) {
				wantEventsReply(t, r, eventsReply{Events: 1, Updated: 0, Stored: 1})
			},
			version: 2, firstName: "Yllä-Maria", last: "Øster-Kallström", ctry: "Finland", kind: store.KindWebhooksAPI,
			deliveries: []delivery{{badEmail, store.VerdictNoEmail, true, "invalid"}},
			queued:     []int{1, 2},
		},
		{
			// HubSpot does not keep the order of events; both apply, and
			// only the batch's last version is queued.
			name: "two changes of one contact in one batch, out of order",
			body: batch(lastName, country),
			check: func(t *testing.T, r reply) {
				wantEventsReply(t, r, eventsReply{Events: 2, Updated: 2, Stored: 2})
			},
			version: 4, firstName: "Yllä-Maria", last: "Lee", ctry: "Sweden", kind: store.KindWebhooksAPI,
			deliveries: []delivery{
				{lastName, store.VerdictAccepted, true, ""},
				{country, store.VerdictAccepted, true, ""},
			},
			queued: []int{1, 2, 4},
		},
		{
			name: "a workflow body with the content the events made is a duplicate",
			body: sameContent, head: sign(sameContent, hookPath),
			check: func(t *testing.T, r reply) {
				got := wantAccepted(t, r, http.StatusOK)
				if got.ID != id || got.Version != 4 || !got.Duplicate {
					t.Errorf("reply %s, want a duplicate of version 4", r.body)
				}
			},
			version: 4, firstName: "Yllä-Maria", last: "Lee", ctry: "Sweden", kind: store.KindWorkflow,
			deliveries: []delivery{{string(sameContent), store.VerdictDuplicate, true, ""}},
			queued:     []int{1, 2, 4},
		},
		{
			// The first body again: older than the events, so stale, and an
			// exact repeat, so counted on its delivery instead of stored.
			name: "a workflow body older than the events is stale",
			body: first, head: sign(first, hookPath),
			check: func(t *testing.T, r reply) {
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200; body %s", r.status, r.body)
				}
				var got workflowReply
				decodeJSON(t, r, &got)
				if got != (workflowReply{ID: id, Version: 4, Duplicate: true, Stale: true}) {
					t.Errorf("reply %s, want a stale duplicate of version 4", r.body)
				}
				if d := a.deliveries(t)[0]; !bytes.Equal(d.Body, first) || d.Repeats != 1 {
					t.Errorf("first delivery has %d repeats, want this one counted there", d.Repeats)
				}
			},
			version: 4, firstName: "Yllä-Maria", last: "Lee", ctry: "Sweden", kind: store.KindWorkflow,
			queued: []int{1, 2, 4},
		},
	}
	seen := len(a.deliveries(t))
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			head, sig := st.head, "v3"
			if head == nil {
				head, sig = signV1(st.body), "v1"
			}
			st.check(t, a.post(t, st.body, head))

			es := a.enrollments(t)
			if len(es) != 1 {
				t.Fatalf("%d enrollments, want 1", len(es))
			}
			e := es[0]
			if e.ID != id || e.Version != st.version || e.FirstName != st.firstName || e.LastName != st.last ||
				e.Country != st.ctry || e.Properties["firstname"] != st.firstName || e.Properties["lastname"] != st.last ||
				e.Properties["country"] != st.ctry {
				t.Errorf("enrollment %d version %d names %q %q country %q; want %d %d %q %q %q",
					e.ID, e.Version, e.FirstName, e.LastName, e.Country, id, st.version, st.firstName, st.last, st.ctry)
			}
			if e.Email != "Agent.Ylla@Example.com" || e.Status != store.StatusPending || !slices.Equal(e.Lists, lists) {
				t.Errorf("enrollment email %q status %q lists %v", e.Email, e.Status, e.Lists)
			}

			ds := a.deliveries(t)
			if len(ds) != seen+len(st.deliveries) {
				t.Fatalf("%d new deliveries, want %d", len(ds)-seen, len(st.deliveries))
			}
			for i, want := range st.deliveries {
				d := ds[seen+i]
				var enr int64
				if want.ofThis {
					enr = id
				}
				wantDelivery(t, d, st.kind, sig, want.verdict, enr, []byte(want.body))
				if (want.reason == "") != (d.Reason == "") || !strings.Contains(d.Reason, want.reason) {
					t.Errorf("delivery %d: reason %q, want one with %q", d.ID, d.Reason, want.reason)
				}
			}
			seen = len(ds)

			var tasks []string
			for _, v := range st.queued {
				tasks = append(tasks, taskID(id, v))
			}
			a.wantTasks(t, tasks...)
		})
		if !ok {
			t.FailNow()
		}
	}
}

// Every event the bridge does not apply is still stored, one delivery each,
// and answered 200: HubSpot retries any 4xx of the Webhooks API.
func TestWebhooksAPIStoresEveryEvent(t *testing.T) {
	docs := `{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation",` +
		`"attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}`
	noValue := `{"eventId":2,"portalId":62515,"subscriptionType":"contact.propertyChange","objectId":101,"propertyName":"phone"}`
	company := `{"eventId":3,"portalId":62515,"subscriptionType":"object.propertyChange","objectTypeId":"0-2","objectId":5,` +
		`"propertyName":"name","propertyValue":"Acme","isSensitive":false}`
	untyped := `{"eventId":4,"objectId":123}`
	v1AndV3 := func(b []byte) http.Header {
		h := sign(b, hookPath)
		h.Set(hubspot.HeaderSignature, hubspot.SignV1(secret, b))
		h.Set(hubspot.HeaderSignatureVersion, "v1")
		return h
	}
	cases := []struct {
		name    string
		events  []string
		header  func([]byte) http.Header
		sig     string
		reasons []string // a part of each delivery's reason
	}{
		{"the docs' example, v1 signed", []string{docs}, signV1, "v1", []string{"contact.creation events are stored"}},
		{"the docs' example with the v3 headers too", []string{docs}, v1AndV3, "v3", []string{"contact.creation events are stored"}},
		{"a change of a contact the bridge does not have", []string{propChange(9, 404, "firstname", "Ann", 1700000000000, 0)},
			signV1, "v1", []string{`no enrollment for contact "404"`}},
		{"a change without a value, a company's change and an untyped event", []string{noValue, company, untyped},
			signV1, "v1", []string{`"phone" without a propertyValue`, "object.propertyChange events are stored", "untyped events are stored"}},
		{"an empty array", nil, signV1, "v1", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t)
			body := batch(tc.events...)
			wantEventsReply(t, a.post(t, body, tc.header(body)),
				eventsReply{Events: len(tc.events), Updated: 0, Stored: len(tc.events)})
			ds := a.deliveries(t)
			if len(ds) != len(tc.events) {
				t.Fatalf("%d deliveries, want one per event (%d)", len(ds), len(tc.events))
			}
			for i, d := range ds {
				wantDelivery(t, d, store.KindWebhooksAPI, tc.sig, store.VerdictUnsupported, 0, []byte(tc.events[i]))
				if !strings.Contains(d.Reason, tc.reasons[i]) {
					t.Errorf("delivery %d: reason %q, want one with %q", d.ID, d.Reason, tc.reasons[i])
				}
			}
			if e := a.enrollments(t); len(e) != 0 {
				t.Errorf("%d enrollments, want none", len(e))
			}
			a.wantTasks(t)
		})
	}
}

// With routing rules, a changed property routes the contact anew, and a
// change the rules send nowhere is kept without changing the contact.
func TestWebhooksAPIRoutes(t *testing.T) {
	rules, err := routing.Parse([]byte(`routes:
  - when: {country: ["Finland"]}
    lists: ["Agents - Nordics"]
  - when: {country: ["Canada"]}
    lists: ["Agents - North America"]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := start(t, func(s *setup) { s.cfg.Router = rules })
	body := profile(t)
	got := wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusAccepted)

	steps := []struct {
		event   string
		verdict string
		version int
		lists   []string
	}{
		{propChange(1, 101, "country", "Canada", 1700000300000, 0), store.VerdictAccepted, 2, []string{"Agents - North America"}},
		{propChange(2, 101, "country", "Germany", 1700000400000, 0), store.VerdictNoRoute, 2, []string{"Agents - North America"}},
	}
	for _, st := range steps {
		body := batch(st.event)
		updated := 0
		if st.verdict == store.VerdictAccepted {
			updated = 1
		}
		wantEventsReply(t, a.post(t, body, signV1(body)), eventsReply{Events: 1, Updated: updated, Stored: 1})
		ds := a.deliveries(t)
		wantDelivery(t, ds[len(ds)-1], store.KindWebhooksAPI, "v1", st.verdict, got.ID, []byte(st.event))
		e, err := a.db.GetEnrollment(context.Background(), got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Version != st.version || !slices.Equal(e.Lists, st.lists) {
			t.Errorf("after %s: version %d lists %v, want %d %v", st.verdict, e.Version, e.Lists, st.version, st.lists)
		}
	}
	// The new version waits in the group of its new lists.
	tasks, err := a.ins.ListAggregatingTasks(jobs.Queue, jobs.GroupKey([]string{"Agents - North America"}))
	if err != nil || len(tasks) != 1 || tasks[0].ID != taskID(got.ID, 2) {
		t.Errorf("tasks for the new lists: %v, %v; want %s", tasks, err, taskID(got.ID, 2))
	}
}

// flakyStore fails one IngestEvent call, as MySQL failing in the middle of a
// batch would.
type flakyStore struct {
	handlers.Store
	mu     sync.Mutex
	calls  int
	failAt int // the call that fails; 0 for none
}

func (s *flakyStore) IngestEvent(ctx context.Context, d *store.Delivery, key string, c *store.PropertyChange) (store.IngestResult, error) {
	s.mu.Lock()
	s.calls++
	fail := s.calls == s.failAt
	s.mu.Unlock()
	if fail {
		return store.IngestResult{}, errors.New("store: connection refused")
	}
	return s.Store.IngestEvent(ctx, d, key, c)
}

// recordingEnqueuer keeps the versions it was asked to queue.
type recordingEnqueuer struct {
	mu     sync.Mutex
	queued []string
}

func (r *recordingEnqueuer) EnqueueEnrollment(_ context.Context, id int64, version int, _ []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queued = append(r.queued, taskID(id, version))
	return nil
}

// A batch that fails part-way is answered 503 so that HubSpot sends it
// again; the events stored before the fault are then duplicates, and the
// rest apply, each once.
func TestWebhooksAPIFaultMidBatch(t *testing.T) {
	a := start(t)
	body := profile(t)
	got := wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusAccepted)

	flaky := &flakyStore{Store: a.db, failAt: 2}
	enq := &recordingEnqueuer{}
	app := handlers.New(handlers.Config{
		PublicURL: publicURL, Verifier: &hubspot.Verifier{Secrets: []string{secret}}, Lists: lists, Logger: slogDiscard(),
	}, flaky, enq)
	send := func(attempt int) *httptest.ResponseRecorder {
		b := batch(propChange(1, 101, "firstname", "Anna", 1700000300000, attempt),
			propChange(2, 101, "lastname", "Lee", 1700000300000, attempt))
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, newRequest(b, signV1(b)))
		return rec
	}

	if rec := send(0); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), handlers.CodeUnavailable) {
		t.Fatalf("first attempt: %d %s, want 503", rec.Code, rec.Body)
	}
	verdicts := func() []string {
		var out []string
		for _, d := range a.deliveries(t)[1:] {
			out = append(out, d.Verdict)
		}
		return out
	}
	if v := verdicts(); !slices.Equal(v, []string{store.VerdictAccepted}) {
		t.Fatalf("after the fault: deliveries %v, want the first event accepted", v)
	}

	rec := send(1)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"events":2,"updated":1,"stored":2}` {
		t.Fatalf("retry: %d %s", rec.Code, rec.Body)
	}
	if v := verdicts(); !slices.Equal(v, []string{store.VerdictAccepted, store.VerdictDuplicate, store.VerdictAccepted}) {
		t.Errorf("after the retry: deliveries %v", v)
	}
	e, err := a.db.GetEnrollment(context.Background(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != 3 || e.FirstName != "Anna" || e.LastName != "Lee" {
		t.Errorf("enrollment version %d names %q %q, want 3 Anna Lee", e.Version, e.FirstName, e.LastName)
	}
	if !slices.Equal(enq.queued, []string{taskID(got.ID, 3)}) {
		t.Errorf("queued %v, want only the last version", enq.queued)
	}
}
