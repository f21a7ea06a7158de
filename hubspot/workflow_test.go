package hubspot

import (
	"errors"
	"fmt"
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

func TestParseWorkflowLongestEmail(t *testing.T) {
	email := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	if len(email) != maxEmailLen {
		t.Fatalf("test email is %d bytes", len(email))
	}
	if _, err := ParseWorkflow([]byte(`{"email":"`+email+`"}`), DefaultFieldNames()); err != nil {
		t.Errorf("254-byte email: %v", err)
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

func TestContentHash(t *testing.T) {
	base := `{"vid":101,"portal-id":1,"properties":{"email":{"value":"a@b.com"},"firstname":{"value":"Ann"},` +
		`"lastmodifieddate":{"value":"1700000000000"},"hs_lastmodifieddate":{"value":"1700000000000"},` +
		`"hs_analytics_num_page_views":{"value":"3"}}}`
	hash := func(t *testing.T, body string) string {
		t.Helper()
		e, err := ParseWorkflow([]byte(body), DefaultFieldNames())
		if err != nil {
			t.Fatal(err)
		}
		return e.ContentHash()
	}
	h0 := hash(t, base)
	if len(h0) != 64 || strings.ToLower(h0) != h0 {
		t.Fatalf("ContentHash = %q, want 64 lower-case hex digits", h0)
	}
	tests := []struct {
		name      string
		body      string
		wantEqual bool
	}{
		{"same body", base, true},
		{"reordered keys and versions", `{"portal-id":1,"properties":{"firstname":{"value":"Ann","versions":[{"value":"An"}]},` +
			`"email":{"value":"a@b.com"},"hs_lastmodifieddate":{"value":"1700000000000"},"lastmodifieddate":{"value":"1700000000000"},` +
			`"hs_analytics_num_page_views":{"value":"3"}},"vid":101}`, true},
		{"different lastmodifieddate", strings.ReplaceAll(base, "1700000000000", "1700009999999"), true},
		{"different page views", strings.Replace(base, `"3"`, `"4"`, 1), true},
		{"changed firstname", strings.Replace(base, "Ann", "Anna", 1), false},
		{"changed email case", strings.Replace(base, "a@b.com", "A@b.com", 1), false},
		{"added property", strings.Replace(base, `"firstname"`, `"lastname":{"value":"Lee"},"firstname"`, 1), false},
		{"other object", strings.Replace(base, "101", "102", 1), false},
		{"other portal", strings.Replace(base, `"portal-id":1`, `"portal-id":2`, 1), false},
		{"value moved between names", strings.Replace(base, `"firstname":{"value":"Ann"}`, `"firstnam":{"value":"eAnn"}`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hash(t, tt.body) == h0; got != tt.wantEqual {
				t.Errorf("hash equal = %v, want %v", got, tt.wantEqual)
			}
		})
	}
}

// TestContentHashGolden pins ContentHash to the values that the store
// already holds: each was computed by the original map-based parser, and a
// change of encoding would make every stored enrollment look changed.
func TestContentHashGolden(t *testing.T) {
	parse := func(body []byte, names FieldNames) Enrollment {
		t.Helper()
		e, err := ParseWorkflow(body, names)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	big := Enrollment{PortalID: -1, ObjectID: "9007199254740993", Email: "a@b.com", EnrolledAt: time.UnixMilli(-1),
		Properties: map[string]string{"": "", "long": strings.Repeat("x", 3000)}}
	for i := range 100 {
		big.Properties[fmt.Sprintf("p%03d", i)] = strings.Repeat("é", i)
	}
	for _, tt := range []struct {
		name string
		e    Enrollment
		want string
	}{
		{"contact profile", parse(readProfile(t), DefaultFieldNames()), "7499f1e15d2fdbf7bdff3b2da9de771ba88ca5a89eeea93218c164f4603ba51b"},
		{"flat body", parse([]byte(flatBody), FieldNames{EnrolledAt: "enrolled_at"}), "4720f0f1bc6353526b0b9a54c82c6a68676880d8946c3b7d9662919be3820a08"},
		{"zero", Enrollment{}, "d2240b9050007249ff5d76f9a162134abea1aaa83f044d5f6e351fa68f872bca"},
		{"many long properties", big, "ca97a2168ea1f3aa2e5b578b3c4b215b93468ec2d4cc5c5aac47fb12aa7f9ecb"},
	} {
		if got := tt.e.ContentHash(); got != tt.want {
			t.Errorf("%s: ContentHash = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestContentHashFields covers fields that need not come from a property,
// such as an email taken from the identity profiles.
func TestContentHashFields(t *testing.T) {
	base := Enrollment{PortalID: 1, ObjectID: "2", Email: "a@b.com", FirstName: "Ann", LastName: "Lee",
		Country: "SE", EnrolledAt: time.UnixMilli(1700000000000), Properties: map[string]string{"k": "v"}}
	h0 := base.ContentHash()
	for name, change := range map[string]func(*Enrollment){
		"email":       func(e *Enrollment) { e.Email = "c@d.com" },
		"first name":  func(e *Enrollment) { e.FirstName = "Bo" },
		"last name":   func(e *Enrollment) { e.LastName = "Li" },
		"country":     func(e *Enrollment) { e.Country = "FI" },
		"enrolled at": func(e *Enrollment) { e.EnrolledAt = time.Time{} },
		"portal":      func(e *Enrollment) { e.PortalID = 3 },
	} {
		e := base
		change(&e)
		if e.ContentHash() == h0 {
			t.Errorf("changing the %s left ContentHash unchanged", name)
		}
	}
	loc := base
	loc.EnrolledAt = base.EnrolledAt.In(time.FixedZone("x", 3600))
	if loc.ContentHash() != h0 {
		t.Error("ContentHash depends on the time zone of EnrolledAt")
	}
}

func TestObjectKey(t *testing.T) {
	tests := []struct {
		e    Enrollment
		want string
	}{
		{Enrollment{ObjectID: "101", Email: "A@B.com"}, "101"},
		{Enrollment{Email: "Agent@Example.COM"}, "email:agent@example.com"},
		{Enrollment{Email: strings.Repeat("a", 240) + "@x.co"}, "sha256:"},
		{Enrollment{ObjectID: strings.Repeat("9", 300)}, "sha256:"},
	}
	for _, tt := range tests {
		got := tt.e.ObjectKey()
		if len(got) > MaxObjectKey {
			t.Errorf("ObjectKey is %d bytes, over %d", len(got), MaxObjectKey)
		}
		if tt.want == "sha256:" {
			if !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 {
				t.Errorf("long key %q, want a sha256 key", got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ObjectKey(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestFieldNamesDefaults(t *testing.T) {
	got := FieldNames{Email: "work_email"}.withDefaults()
	want := DefaultFieldNames()
	want.Email = "work_email"
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
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

func BenchmarkContentHash(b *testing.B) {
	e, err := ParseWorkflow(readProfile(b), DefaultFieldNames())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.ContentHash()
	}
}
