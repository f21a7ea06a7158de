package hubspot

import (
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"
)

func readProfile(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/contact-profile.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseWorkflowProfile(t *testing.T) {
	e, err := ParseWorkflow(readProfile(t), DefaultFieldNames())
	if err != nil {
		t.Fatal(err)
	}
	want := Enrollment{
		PortalID:   62515,
		ObjectID:   "101",
		Email:      "Agent.Ylla@Example.com",
		FirstName:  "Yllä",
		LastName:   "Øster-Kallström",
		Country:    "Finland",
		EnrolledAt: time.UnixMilli(1700000000000).UTC(),
	}
	if e.PortalID != want.PortalID || e.ObjectID != want.ObjectID || e.Email != want.Email ||
		e.FirstName != want.FirstName || e.LastName != want.LastName || e.Country != want.Country ||
		!e.EnrolledAt.Equal(want.EnrolledAt) || e.EnrolledAt.Location() != time.UTC {
		t.Errorf("got %+v\nwant %+v", e, want)
	}
	wantProps := map[string]string{
		"email": "Agent.Ylla@Example.com", "firstname": "Yllä", "lastname": "Øster-Kallström",
		"country": "Finland", "company": "Revontuli Matkat Oy", "phone": "+358 40 123 4567",
		"agency_type": "Independent", "lifecyclestage": "lead", "hs_object_id": "101",
		"createdate": "1700000000000", "lastmodifieddate": "1700000200000", "hs_analytics_num_page_views": "7",
	}
	if !maps.Equal(e.Properties, wantProps) {
		t.Errorf("Properties = %v\nwant %v", e.Properties, wantProps)
	}
}

func TestParseWorkflow(t *testing.T) {
	defaults := DefaultFieldNames()
	tests := []struct {
		name  string
		body  string
		names FieldNames
		want  Enrollment // compared field by field; Properties only when non-nil
	}{
		{
			name: "profile prefers canonical-vid",
			body: `{"vid":202,"canonical-vid":101,"portal-id":"62515","properties":{"email":{"value":" a@b.com ","versions":[]}}}`,
			want: Enrollment{PortalID: 62515, ObjectID: "101", Email: "a@b.com",
				Properties: map[string]string{"email": " a@b.com "}},
		},
		{
			name: "profile vid only",
			body: `{"vid":202,"properties":{"email":{"value":"a@b.com"}}}`,
			want: Enrollment{ObjectID: "202", Email: "a@b.com"},
		},
		{
			name: "profile id beyond 2^53 kept exact",
			body: `{"vid":9007199254740993,"properties":{"email":{"value":"a@b.com"}}}`,
			want: Enrollment{ObjectID: "9007199254740993", Email: "a@b.com"},
		},
		{
			name: "profile hs_object_id property when no vid",
			body: `{"properties":{"hs_object_id":{"value":"303"},"email":{"value":"a@b.com"}}}`,
			want: Enrollment{ObjectID: "303", Email: "a@b.com"},
		},
		{
			name: "profile email from primary identity",
			body: `{"vid":1,"properties":{"firstname":{"value":"Ann"}},"identity-profiles":[{"vid":1,"identities":[
				{"type":"LEAD_GUID","value":"x"},{"type":"EMAIL","value":"old@b.com"},{"type":"EMAIL","value":"new@b.com","is-primary":true}]}]}`,
			want: Enrollment{ObjectID: "1", Email: "new@b.com", FirstName: "Ann",
				Properties: map[string]string{"firstname": "Ann"}},
		},
		{
			name: "profile email from first identity when none is primary",
			body: `{"vid":1,"properties":{"email":{"value":"  "}},"identity-profiles":[{"identities":[{"type":"EMAIL","value":"only@b.com"}]}]}`,
			want: Enrollment{ObjectID: "1", Email: "only@b.com"},
		},
		{
			name: "profile bare values as the v3 object API sends them",
			body: `{"id":"404","properties":{"email":"a@b.com","firstname":"Bo","hs_lastmodifieddate":null}}`,
			want: Enrollment{ObjectID: "404", Email: "a@b.com", FirstName: "Bo",
				Properties: map[string]string{"email": "a@b.com", "firstname": "Bo"}},
		},
		{
			name: "flat body with string values",
			body: `{"hs_object_id":"101","email":"agent@example.com","firstname":"Ann","agency_name":"Acme Travel",
				"country":"US","enrolled_at":"1700000000000","bridge_source":"wf-new-agents-v1"}`,
			names: FieldNames{EnrolledAt: "enrolled_at"},
			want: Enrollment{ObjectID: "101", Email: "agent@example.com", FirstName: "Ann", Country: "US",
				EnrolledAt: time.UnixMilli(1700000000000).UTC(),
				Properties: map[string]string{"hs_object_id": "101", "email": "agent@example.com", "firstname": "Ann",
					"agency_name": "Acme Travel", "country": "US", "enrolled_at": "1700000000000", "bridge_source": "wf-new-agents-v1"}},
		},
		{
			name: "flat body with typed values",
			body: `{"hs_object_id":101,"portalId":62515,"email":"a@b.com","opted_in":true,"vip":false,"score":12.50,
				"big":12345678901234567890,"createdate":1700000000000,"phone":null,"tags":["x"],"company":{"name":"Acme"}}`,
			want: Enrollment{ObjectID: "101", PortalID: 62515, Email: "a@b.com", EnrolledAt: time.UnixMilli(1700000000000).UTC(),
				Properties: map[string]string{"hs_object_id": "101", "portalId": "62515", "email": "a@b.com",
					"opted_in": "true", "vip": "false", "score": "12.50", "big": "12345678901234567890", "createdate": "1700000000000"}},
		},
		{
			name: "flat body objectId and hs_portal_id",
			body: `{"objectId":"0505","hs_portal_id":"7","email":"a@b.com"}`,
			want: Enrollment{ObjectID: "505", PortalID: 7, Email: "a@b.com"},
		},
		{
			name: "flat body without id",
			body: `{"email":"A@B.com"}`,
			want: Enrollment{Email: "A@B.com"},
		},
		{
			name: "flat body with a string named properties",
			body: `{"properties":"none","email":"a@b.com"}`,
			want: Enrollment{Email: "a@b.com", Properties: map[string]string{"properties": "none", "email": "a@b.com"}},
		},
		{
			name: "escaped non-ASCII names",
			body: `{"email":"a@b.com","firstname":" Yll\u00e4 ","lastname":"\u00d8ster"}`,
			want: Enrollment{Email: "a@b.com", FirstName: "Yllä", LastName: "Øster"},
		},
		{
			name:  "custom field names",
			body:  `{"vid":1,"properties":{"work_email":{"value":"w@b.com"},"email":{"value":"p@b.com"},"given":{"value":"Ann"},"family":{"value":"Lee"},"nation":{"value":"SE"},"joined":{"value":"2024-03-01"}}}`,
			names: FieldNames{Email: "work_email", FirstName: "given", LastName: "family", Country: "nation", EnrolledAt: "joined"},
			want: Enrollment{ObjectID: "1", Email: "w@b.com", FirstName: "Ann", LastName: "Lee", Country: "SE",
				EnrolledAt: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "date as RFC 3339 with offset",
			body: `{"email":"a@b.com","createdate":"2024-03-01T12:30:00.5+02:00"}`,
			want: Enrollment{Email: "a@b.com", EnrolledAt: time.Date(2024, 3, 1, 10, 30, 0, 500_000_000, time.UTC)},
		},
		{
			name: "date as RFC 3339 UTC",
			body: `{"email":"a@b.com","createdate":"2024-03-01T12:30:00Z"}`,
			want: Enrollment{Email: "a@b.com", EnrolledAt: time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)},
		},
		{
			name: "date unparseable",
			body: `{"email":"a@b.com","createdate":"last Tuesday"}`,
			want: Enrollment{Email: "a@b.com"},
		},
		{
			name: "date as float",
			body: `{"email":"a@b.com","createdate":1.7e12}`,
			want: Enrollment{Email: "a@b.com", Properties: map[string]string{"email": "a@b.com", "createdate": "1.7e12"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := defaults
			if tt.names != (FieldNames{}) {
				names = tt.names
			}
			got, err := ParseWorkflow([]byte(tt.body), names)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			w := tt.want
			if got.PortalID != w.PortalID || got.ObjectID != w.ObjectID || got.Email != w.Email ||
				got.FirstName != w.FirstName || got.LastName != w.LastName || got.Country != w.Country ||
				!got.EnrolledAt.Equal(w.EnrolledAt) {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if !got.EnrolledAt.IsZero() && got.EnrolledAt.Location() != time.UTC {
				t.Errorf("EnrolledAt location = %v, want UTC", got.EnrolledAt.Location())
			}
			if w.Properties != nil && !maps.Equal(got.Properties, w.Properties) {
				t.Errorf("Properties = %v\nwant %v", got.Properties, w.Properties)
			}
		})
	}
}

func TestParseWorkflowErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error
		wantMsg string // a fragment of the error text
	}{
		{"empty body", "", ErrMalformed, "empty"},
		{"blank body", " \n\t", ErrMalformed, "empty"},
		{"null", "null", ErrMalformed, "not a JSON object"},
		{"string", `"a@b.com"`, ErrMalformed, "not a JSON object"},
		{"truncated", `{"vid":101,"properties":{"email":{"value":"a@b`, ErrMalformed, ""},
		{"trailing data", `{"email":"a@b.com"} {}`, ErrMalformed, "after"},
		{"trailing brace", `{"email":"a@b.com"}}`, ErrMalformed, ""},
		{"webhooks api array", `[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]`, ErrWebhooksAPI, ""},
		{"webhooks api array after space", "\r\n [ ]", ErrWebhooksAPI, ""},
		{"empty object", `{}`, ErrNoEmail, `missing "email"`},
		{"missing email", `{"vid":1,"properties":{"firstname":{"value":"Ann"}}}`, ErrNoEmail, "missing"},
		{"null email", `{"email":null}`, ErrNoEmail, "missing"},
		{"blank email", `{"email":"   "}`, ErrNoEmail, "missing"},
		{"email is an object", `{"email":{"value":"a@b.com"}}`, ErrNoEmail, "missing"},
		{"not an email", `{"email":"not-an-email"}`, ErrNoEmail, `invalid "not-an-email"`},
		{"display name", `{"email":"Ann <a@b.com>"}`, ErrNoEmail, "invalid"},
		{"angle brackets", `{"email":"<a@b.com>"}`, ErrNoEmail, "invalid"},
		{"list", `{"email":"a@b.com, c@d.com"}`, ErrNoEmail, "invalid"},
		{"comment", `{"email":"a@b.com (Ann)"}`, ErrNoEmail, "invalid"},
		{"no local part", `{"email":"@b.com"}`, ErrNoEmail, "invalid"},
		{"no domain", `{"email":"a@"}`, ErrNoEmail, "invalid"},
		{"too long", `{"email":"` + strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + `.com"}`, ErrNoEmail, "invalid"},
		{"invalid email in profile does not fall back", `{"properties":{"email":{"value":"nope"}},"identity-profiles":[{"identities":[{"type":"EMAIL","value":"a@b.com"}]}]}`, ErrNoEmail, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWorkflow([]byte(tt.body), DefaultFieldNames())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseWorkflowNoEmailKeepsRecord(t *testing.T) {
	e, err := ParseWorkflow([]byte(`{"vid":7,"portal-id":9,"properties":{"email":{"value":"x"},"firstname":{"value":"Ann"}}}`), DefaultFieldNames())
	if !errors.Is(err, ErrNoEmail) {
		t.Fatalf("err = %v, want ErrNoEmail", err)
	}
	if e.ObjectID != "7" || e.PortalID != 9 || e.Email != "x" || e.FirstName != "Ann" {
		t.Errorf("got %+v, want the record filled so the rejection can be stored", e)
	}
}

func BenchmarkParseWorkflow(b *testing.B) {
	body := readProfile(b)
	names := DefaultFieldNames()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseWorkflow(body, names); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseWorkflow(f *testing.F) {
	f.Add(readProfile(f))
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Body))
	}
	for _, s := range []string{
		"", "null", "[]", "{}", `{"email":"a@b.com"}`, `{"properties":[]}`, `{"vid":-1,"properties":{"email":1}}`,
		`{"identity-profiles":[{"identities":[{"type":"EMAIL","value":"a@b.com"}]}],"properties":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := ParseWorkflow(body, DefaultFieldNames())
		switch {
		case err == nil:
			if e.Email == "" || e.ObjectKey() == "" || len(e.ContentHash()) != 64 {
				t.Fatalf("accepted enrollment is incomplete: %+v", e)
			}
			if !e.EnrolledAt.IsZero() && e.EnrolledAt.Location() != time.UTC {
				t.Fatalf("EnrolledAt not UTC: %v", e.EnrolledAt)
			}
			if !e.SourceUpdatedAt.IsZero() && (e.SourceUpdatedAt.Location() != time.UTC || e.SourceUpdatedAt.Year() > 9999) {
				t.Fatalf("SourceUpdatedAt %v is not a storable UTC time", e.SourceUpdatedAt)
			}
		case errors.Is(err, ErrMalformed), errors.Is(err, ErrNoEmail), errors.Is(err, ErrWebhooksAPI):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// flatBody is a customised workflow body of the size a configured "Send a
// webhook" action sends.
const flatBody = `{"hs_object_id":"101","portal_id":62515,"email":"agent@example.com","firstname":"Ann","lastname":"Lee",` +
	`"agency_name":"Acme Travel","country":"US","enrolled_at":"1700000000000","lastmodifieddate":"1700000100000",` +
	`"bridge_source":"wf-new-agents-v1"}`

func BenchmarkParseWorkflowFlat(b *testing.B) {
	body := []byte(flatBody)
	names := FieldNames{EnrolledAt: "enrolled_at"}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseWorkflow(body, names); err != nil {
			b.Fatal(err)
		}
	}
}
