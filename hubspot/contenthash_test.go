package hubspot

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

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
