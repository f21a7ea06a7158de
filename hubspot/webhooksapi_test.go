package hubspot

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

// docsEvent is the Webhooks API fixture of HubSpot's docs and official SDKs
// (the fact sheet's §2 example), byte for byte.
const docsEvent = `[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation",
  "attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]`

func TestParseWebhooksAPIDocsExample(t *testing.T) {
	events, err := ParseWebhooksAPI([]byte(docsEvent))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d events, want 1", len(events))
	}
	got := events[0]
	want := Event{
		EventID: 1, SubscriptionID: 12345, PortalID: 62515, AppID: 54321, ObjectID: "123",
		SubscriptionType: "contact.creation", ChangeSource: "CRM", ChangeFlag: "NEW",
		OccurredAt: time.UnixMilli(1564113600000).UTC(),
	}
	wantRaw := docsEvent[1 : len(docsEvent)-1]
	if string(got.Raw) != wantRaw {
		t.Errorf("Raw = %s, want the element exactly as sent: %s", got.Raw, wantRaw)
	}
	got.Raw = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.OccurredAt.Location() != time.UTC {
		t.Errorf("OccurredAt %v is not UTC", got.OccurredAt)
	}
}

// A batch mixes event types and the variations the fact sheet allows: the
// docs' eventType name, generic subscriptions, ids as text, a cleared value.
func TestParseWebhooksAPIBatch(t *testing.T) {
	body := `[
	  {"eventId":100,"subscriptionId":7,"portalId":62515,"occurredAt":1700000300000,"subscriptionType":"contact.propertyChange",
	   "attemptNumber":2,"objectId":101,"propertyName":"firstname","propertyValue":"Yll\u00e4-Maria","changeSource":"CRM_UI",
	   "sourceId":"userId:882761034","appId":54321},
	  {"eventId":101,"portalId":62515,"occurredAt":1700000300001,"eventType":"contact.deletion","objectId":"0102"},
	  {"eventId":"102","portalId":62515,"occurredAt":"1700000300002","subscriptionType":"object.propertyChange",
	   "objectTypeId":"0-1","objectId":103,"propertyName":"country","propertyValue":""},
	  {"eventId":103,"portalId":62515,"subscriptionType":"contact.propertyChange","objectId":104,"propertyName":"phone","propertyValue":null},
	  {"eventId":104,"portalId":62515,"subscriptionType":"contact.propertyChange","objectId":105,"propertyName":"score","propertyValue":4.5},
	  {"eventId":105,"portalId":62515,"subscriptionType":"object.propertyChange","objectTypeId":"0-2","objectId":5,
	   "propertyName":"name","propertyValue":"Acme","isSensitive":false},
	  {"eventId":106,"subscriptionType":"contact.merge","primaryObjectId":101,"mergedObjectIds":[102],"newObjectId":101,
	   "occurredAt":99999999999999999,"attemptNumber":-1},
	  {}
	]`
	events, err := ParseWebhooksAPI([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id             int64
		typ, object    string
		prop, value    string
		hasValue       bool
		occurredMillis int64 // 0 for the zero time
		attempt        int
		contactChange  bool
	}{
		{100, "contact.propertyChange", "101", "firstname", "Yllä-Maria", true, 1700000300000, 2, true},
		{101, "contact.deletion", "102", "", "", false, 1700000300001, 0, false},
		{102, "object.propertyChange", "103", "country", "", true, 1700000300002, 0, true},
		{103, "contact.propertyChange", "104", "phone", "", false, 0, 0, true},
		{104, "contact.propertyChange", "105", "score", "4.5", true, 0, 0, true},
		{105, "object.propertyChange", "5", "name", "Acme", true, 0, 0, false},
		{106, "contact.merge", "", "", "", false, 0, 0, false},
		{0, "", "", "", "", false, 0, 0, false},
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d", len(events), len(want))
	}
	for i, w := range want {
		ev := events[i]
		var occurred int64
		if !ev.OccurredAt.IsZero() {
			occurred = ev.OccurredAt.UnixMilli()
		}
		if ev.EventID != w.id || ev.SubscriptionType != w.typ || ev.ObjectID != w.object || ev.PropertyName != w.prop ||
			ev.PropertyValue != w.value || ev.HasPropertyValue != w.hasValue || occurred != w.occurredMillis ||
			ev.AttemptNumber != w.attempt || ev.IsContactPropertyChange() != w.contactChange {
			t.Errorf("event %d: %+v\nwant %+v", i, ev, w)
		}
		if len(ev.Raw) == 0 || ev.Raw[0] != '{' || ev.Raw[len(ev.Raw)-1] != '}' {
			t.Errorf("event %d: Raw %q is not the element", i, ev.Raw)
		}
	}
	if ev := events[0]; ev.SubscriptionID != 7 || ev.AppID != 54321 || ev.ChangeSource != "CRM_UI" || ev.SourceID != "userId:882761034" {
		t.Errorf("event 0: %+v", ev)
	}
	if ev := events[2]; ev.ObjectTypeID != "0-1" {
		t.Errorf("event 2: objectTypeId %q", ev.ObjectTypeID)
	}
}

func TestParseWebhooksAPIErrors(t *testing.T) {
	for name, body := range map[string]string{
		"empty body":                "",
		"whitespace":                " \n",
		"workflow object":           `{"eventId":1}`,
		"string":                    `"[]"`,
		"truncated":                 `[{"eventId":1,"objectId":`,
		"unclosed array":            `[{"eventId":1}`,
		"number element":            `[1]`,
		"null element":              `[null]`,
		"array element":             `[[{"eventId":1}]]`,
		"one bad element of two":    `[{"eventId":1},"x"]`,
		"data after the array":      `[{"eventId":1}] [{"eventId":2}]`,
		"single-quoted pseudo JSON": `[{'eventId':1}]`,
	} {
		t.Run(name, func(t *testing.T) {
			events, err := ParseWebhooksAPI([]byte(body))
			if !errors.Is(err, ErrMalformed) || events != nil {
				t.Errorf("ParseWebhooksAPI(%q) = %v, %v; want nil, ErrMalformed", body, events, err)
			}
		})
	}
	events, err := ParseWebhooksAPI([]byte(" [ ] "))
	if err != nil || len(events) != 0 {
		t.Errorf("empty array: %v, %v; want no events and no error", events, err)
	}
}

func TestEventKey(t *testing.T) {
	const base = `{"eventId":100,"subscriptionId":7,"portalId":62515,"appId":1,"occurredAt":1700000300000,` +
		`"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":101,"propertyName":"firstname","propertyValue":"Ann"}`
	key := func(t *testing.T, event string) string {
		t.Helper()
		events, err := ParseWebhooksAPI([]byte("[" + event + "]"))
		if err != nil {
			t.Fatal(err)
		}
		return events[0].Key()
	}
	k0 := key(t, base)
	if len(k0) != 64 {
		t.Fatalf("Key = %q, want 64 hex digits", k0)
	}
	tests := []struct {
		name      string
		event     string
		wantEqual bool
	}{
		{"HubSpot's retry", strings.Replace(base, `"attemptNumber":0`, `"attemptNumber":3`, 1), true},
		{"keys reordered, ids as text", `{"propertyValue":"Ann","propertyName":"firstname","objectId":"101","eventId":"100",` +
			`"subscriptionType":"contact.propertyChange","occurredAt":"1700000300000","portalId":62515,"appId":1,"subscriptionId":7}`, true},
		{"another event id", strings.Replace(base, `"eventId":100`, `"eventId":101`, 1), false},
		{"same id, another value", strings.Replace(base, `"Ann"`, `"Anna"`, 1), false},
		{"same id, value cleared", strings.Replace(base, `"Ann"`, `""`, 1), false},
		{"same id, no value", strings.Replace(base, `,"propertyValue":"Ann"`, ``, 1), false},
		{"same id, another contact", strings.Replace(base, `"objectId":101`, `"objectId":102`, 1), false},
		{"same id, another portal", strings.Replace(base, `"portalId":62515`, `"portalId":62516`, 1), false},
		{"same id, another time", strings.Replace(base, `1700000300000`, `1700000300001`, 1), false},
		{"same id, another subscription", strings.Replace(base, `"subscriptionId":7`, `"subscriptionId":8`, 1), false},
		{"same id, another property", strings.Replace(base, `"firstname"`, `"lastname"`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := key(t, tt.event) == k0; got != tt.wantEqual {
				t.Errorf("key equal = %v, want %v", got, tt.wantEqual)
			}
		})
	}
	if k := key(t, strings.Replace(base, `"eventId":100,`, ``, 1)); k != "" {
		t.Errorf("event without an id has key %q, want none", k)
	}
}

func TestSetProperty(t *testing.T) {
	base := func() Enrollment {
		return Enrollment{PortalID: 62515, ObjectID: "101", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee",
			Country: "FI", EnrolledAt: time.UnixMilli(1700000000000).UTC(),
			Properties: map[string]string{"email": "ann@example.com", "firstname": "Ann", "work_email": "ann@work.example"}}
	}
	custom := FieldNames{Email: "work_email", Country: "hs_country"}
	tests := []struct {
		name, prop, value string
		names             FieldNames
		wantErr           error
		want              func(e *Enrollment) // what changes besides Properties[prop]
	}{
		{name: "first name, trimmed field, raw property", prop: "firstname", value: " Anna ", want: func(e *Enrollment) { e.FirstName = "Anna" }},
		{name: "last name cleared", prop: "lastname", value: "", want: func(e *Enrollment) { e.LastName = "" }},
		{name: "country", prop: "country", value: "Sweden", want: func(e *Enrollment) { e.Country = "Sweden" }},
		{name: "enrolled-at as epoch ms", prop: "createdate", value: "1700000500000",
			want: func(e *Enrollment) { e.EnrolledAt = time.UnixMilli(1700000500000).UTC() }},
		{name: "enrolled-at unreadable", prop: "createdate", value: "soon", want: func(e *Enrollment) { e.EnrolledAt = time.Time{} }},
		{name: "new email", prop: "email", value: "Anna@Example.com", want: func(e *Enrollment) { e.Email = "Anna@Example.com" }},
		{name: "other property", prop: "company", value: "Acme", want: func(*Enrollment) {}},
		{name: "invalid email refused", prop: "email", value: "ann at example.com", wantErr: ErrNoEmail},
		{name: "cleared email refused", prop: "email", value: " ", wantErr: ErrNoEmail},
		{name: "configured email property", prop: "work_email", value: "ann@new.example", names: custom,
			want: func(e *Enrollment) { e.Email = "ann@new.example" }},
		{name: "default email name when another is configured", prop: "email", value: "x", names: custom, want: func(*Enrollment) {}},
		{name: "configured country property", prop: "hs_country", value: "SE", names: custom, want: func(e *Enrollment) { e.Country = "SE" }},
		{name: "default country name when another is configured", prop: "country", value: "SE", names: custom, want: func(*Enrollment) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			shared := e.Properties
			before := maps.Clone(shared)
			err := e.SetProperty(tt.prop, tt.value, tt.names)
			if !maps.Equal(shared, before) {
				t.Errorf("the caller's map changed: %v", shared)
			}
			want := base()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if e.ContentHash() != want.ContentHash() || e.Email != want.Email {
					t.Errorf("a refused change altered the enrollment: %+v", e)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want(&want)
			want.Properties[tt.prop] = tt.value
			if e.Email != want.Email || e.FirstName != want.FirstName || e.LastName != want.LastName ||
				e.Country != want.Country || !e.EnrolledAt.Equal(want.EnrolledAt) || !maps.Equal(e.Properties, want.Properties) {
				t.Errorf("got  %+v\nwant %+v", e, want)
			}
			if e.ContentHash() == base().ContentHash() {
				t.Error("the change left ContentHash as it was")
			}
		})
	}
	// Setting a value the enrollment already has changes nothing, so the
	// store sees the same content and makes no new version.
	e := base()
	if err := e.SetProperty("firstname", "Ann", FieldNames{}); err != nil || e.ContentHash() != base().ContentHash() {
		t.Errorf("setting the same value: %v, hash changed %v", err, e.ContentHash() != base().ContentHash())
	}
}

func TestParseWorkflowSourceUpdatedAt(t *testing.T) {
	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	tests := []struct {
		name string
		body string
		want time.Time
	}{
		// The fixture's newest stamps (1700000200000) belong to
		// lastmodifieddate and page views, which HubSpot bumps on its own;
		// the newest content is the country change.
		{"contact profile fixture", string(readProfile(t)), ms(1700000100000)},
		{"profile, timestamps as text", `{"vid":1,"properties":{"email":{"value":"a@b.com","versions":[{"timestamp":"1700000000001"}]}}}`, ms(1700000000001)},
		{"profile without versions uses lastmodifieddate", `{"vid":1,"properties":{"email":{"value":"a@b.com"},` +
			`"lastmodifieddate":{"value":"1700000000002"}}}`, ms(1700000000002)},
		{"profile with only bookkeeping versions uses lastmodifieddate", `{"vid":1,"properties":{"email":{"value":"a@b.com"},` +
			`"lastmodifieddate":{"value":"1700000000003","versions":[{"timestamp":1700000000009}]}}}`, ms(1700000000003)},
		{"flat body, lastmodifieddate", `{"email":"a@b.com","lastmodifieddate":"1700000000004"}`, ms(1700000000004)},
		{"flat body, hs_lastmodifieddate as a number", `{"email":"a@b.com","hs_lastmodifieddate":1700000000005}`, ms(1700000000005)},
		{"flat body, the newer of both", `{"email":"a@b.com","lastmodifieddate":"1700000000006","hs_lastmodifieddate":"1700000000007"}`, ms(1700000000007)},
		{"flat body, RFC 3339", `{"email":"a@b.com","hs_lastmodifieddate":"2023-11-14T22:13:20.008Z"}`, ms(1700000000008)},
		{"flat body without a date", `{"email":"a@b.com"}`, time.Time{}},
		{"unreadable date", `{"email":"a@b.com","lastmodifieddate":"yesterday"}`, time.Time{}},
		{"beyond what MySQL stores", `{"email":"a@b.com","lastmodifieddate":"99999999999999999"}`, time.Time{}},
		{"negative version stamp", `{"vid":1,"properties":{"email":{"value":"a@b.com","versions":[{"timestamp":-5}]}}}`, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseWorkflow([]byte(tt.body), DefaultFieldNames())
			if err != nil {
				t.Fatal(err)
			}
			if !e.SourceUpdatedAt.Equal(tt.want) || (!tt.want.IsZero() && e.SourceUpdatedAt.Location() != time.UTC) {
				t.Errorf("SourceUpdatedAt = %v, want %v", e.SourceUpdatedAt, tt.want)
			}
		})
	}
}

// A date MySQL cannot store would fail every insert of the delivery, so it
// reads as absent.
func TestParseWorkflowEnrolledAtOutOfRange(t *testing.T) {
	for _, v := range []string{`"99999999999999999"`, `"10000-01-01T00:00:00Z"`, `"0999-12-31"`} {
		e, err := ParseWorkflow([]byte(`{"email":"a@b.com","createdate":`+v+`}`), DefaultFieldNames())
		if err != nil || !e.EnrolledAt.IsZero() {
			t.Errorf("createdate %s: EnrolledAt %v, %v; want zero", v, e.EnrolledAt, err)
		}
	}
}

func FuzzParseWebhooksAPI(f *testing.F) {
	f.Add([]byte(docsEvent))
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Body))
	}
	for _, s := range []string{
		"", "[]", "[{}]", "{}", "[null]", `[{"eventId":1}]`,
		`[{"eventId":"1","objectId":"0101","occurredAt":"1700000000000","propertyValue":true}]`,
		`[{"subscriptionType":"object.propertyChange","objectTypeId":"0-1","propertyName":"email","propertyValue":"a@b.com"}]`,
		`[{"eventId":1,"occurredAt":-1,"attemptNumber":1e3}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := ParseWebhooksAPI(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || events != nil {
				t.Fatalf("events %v with error %v", events, err)
			}
			return
		}
		for i, ev := range events {
			if len(ev.Raw) == 0 || !strings.Contains(string(body), string(ev.Raw)) {
				t.Fatalf("event %d: Raw %q is not part of the body", i, ev.Raw)
			}
			if !ev.OccurredAt.IsZero() && (ev.OccurredAt.Location() != time.UTC || ev.OccurredAt.Year() > 9999) {
				t.Fatalf("event %d: OccurredAt %v", i, ev.OccurredAt)
			}
			if k := ev.Key(); (k == "") != (ev.EventID == 0) || (k != "" && len(k) != 64) {
				t.Fatalf("event %d: id %d, key %q", i, ev.EventID, k)
			}
			if ev.EventID < 0 || ev.PortalID < 0 || ev.AttemptNumber < 0 {
				t.Fatalf("event %d: negative number %+v", i, ev)
			}
		}
	})
}

func BenchmarkParseWebhooksAPI(b *testing.B) {
	body := []byte(`[` + strings.Repeat(`{"eventId":100,"subscriptionId":7,"portalId":62515,"occurredAt":1700000300000,`+
		`"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":101,"propertyName":"firstname",`+
		`"propertyValue":"Ann","changeSource":"CRM_UI","sourceId":"userId:882761034","appId":54321},`, 9) +
		`{"eventId":109,"portalId":62515,"occurredAt":1700000300009,"subscriptionType":"contact.creation","objectId":102}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseWebhooksAPI(body); err != nil {
			b.Fatal(err)
		}
	}
}
