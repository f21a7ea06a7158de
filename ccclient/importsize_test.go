package ccclient_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/ccclient"
)

// sizeContacts covers what changes an encoded length: escapes, multi-byte
// UTF-8, invalid UTF-8 (sent as a 6-byte \ufffd), U+2028, HTML characters,
// blank values that are left out, custom fields with awkward names, and
// birthdays that are sent only as a valid pair.
func sizeContacts() []ccclient.ImportContact {
	return []ccclient.ImportContact{
		{Email: "ann@example.com"},
		{Email: "zoë@example.com", FirstName: "Zoë", LastName: "Müller-Łukasz", City: "東京", Country: "日本", CompanyName: "Voyages 🧳 & Co"},
		{Email: "esc@example.com", FirstName: `O"Brien\`, LastName: "a<b>&c", CompanyName: "line\nbreak\ttab\x01\x1f",
			City: "bad\xffutf8", State: "sep\u2028x\u2029", Street: "\xed\xa0\x80 surrogate", Street2: "  "},
		{Email: "bday@example.com", BirthdayMonth: 12, BirthdayDay: 31, Anniversary: "2006-11-15"},
		{Email: "halfbday@example.com", BirthdayMonth: 7},
		{Email: "badbday@example.com", BirthdayMonth: 13, BirthdayDay: 40},
		{Email: "cf@example.com", CustomFields: map[string]string{
			"agency_id": "A-1001", "iata": "12345678", "agência": "São Paulo ✈", `quo"te`: `v"al\`, "lt<gt>": "a&b",
			"blank": " \t", "empty": "", "": "no name", "bad\xffname": "x",
		}},
		{
			Email: "full@example.com", FirstName: "Ann", LastName: "Lee", JobTitle: "Agent", CompanyName: "Acme Travel",
			Phone: "555-555-0000", HomePhone: "555-555-0001", WorkPhone: "555-555-0002", MobilePhone: "555-555-0003",
			Street: "1 Main St", Street2: "Suite 2", City: "Chicago", State: "Illinois", Zip: "60609", Country: "United States",
			BirthdayMonth: 1, BirthdayDay: 1, Anniversary: "2006-11-15",
			CustomFields: map[string]string{"long": strings.Repeat("ü", 400)}, // past EncodedSize's stack buffer
		},
		{}, // the empty object: "{}"
	}
}

// referenceSize encodes c with encoding/json's own map encoding, which
// shares none of the client's code; an object's length does not depend on
// the order of its members, so it must equal EncodedSize.
func referenceSize(t *testing.T, c ccclient.ImportContact) int {
	t.Helper()
	m := map[string]any{}
	for k, v := range map[string]string{
		"email": c.Email, "first_name": c.FirstName, "last_name": c.LastName, "job_title": c.JobTitle,
		"company_name": c.CompanyName, "anniversary": c.Anniversary, "phone": c.Phone, "home_phone": c.HomePhone,
		"work_phone": c.WorkPhone, "mobile_phone": c.MobilePhone, "street": c.Street, "street2": c.Street2,
		"city": c.City, "state": c.State, "zip": c.Zip, "country": c.Country,
	} {
		if strings.TrimSpace(v) != "" {
			m[k] = v
		}
	}
	if c.BirthdayMonth >= 1 && c.BirthdayMonth <= 12 && c.BirthdayDay >= 1 && c.BirthdayDay <= 31 {
		m["birthday_month"], m["birthday_day"] = c.BirthdayMonth, c.BirthdayDay
	}
	for k, v := range c.CustomFields {
		if k != "" && strings.TrimSpace(v) != "" {
			m["cf:"+k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestEncodedSizeMatchesTheBody checks the identity callers split batches
// by: a body is ImportEnvelopeSize plus every contact's EncodedSize plus a
// comma between contacts, byte for byte what json.Marshal (and so
// ImportContacts) produces.
func TestEncodedSizeMatchesTheBody(t *testing.T) {
	all := sizeContacts()
	for i, c := range all {
		if got, want := ccclient.EncodedSize(&c), referenceSize(t, c); got != want {
			t.Errorf("contact %d (%q): EncodedSize %d, encoding/json's map encoding %d", i, c.Email, got, want)
		}
		own, _ := json.Marshal(c)
		if got := ccclient.EncodedSize(&c); got != len(own) {
			t.Errorf("contact %d (%q): EncodedSize %d, json.Marshal %d bytes", i, c.Email, got, len(own))
		}
	}
	listSets := map[string][]string{
		"no lists":  nil,
		"one list":  {"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"},
		"two lists": {"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", "6a0d8a70-2f5f-11ee-8d2e-fa163e56c9b0"},
		"odd ids":   {`quo"te`, "ü<&>", ""},
	}
	for name, lists := range listSets {
		for n := 0; n <= len(all); n++ {
			t.Run(fmt.Sprintf("%s/%d contacts", name, n), func(t *testing.T) {
				contacts := all[:n]
				body, err := json.Marshal(ccclient.ImportRequest{ImportData: contacts, ListIDs: lists})
				if err != nil {
					t.Fatal(err)
				}
				if !json.Valid(body) {
					t.Fatalf("body is not valid JSON: %s", body)
				}
				want := ccclient.ImportEnvelopeSize(lists)
				for i := range contacts {
					want += ccclient.EncodedSize(&contacts[i])
				}
				if n > 0 {
					want += n - 1
				}
				if len(body) != want {
					t.Errorf("body is %d bytes, envelope + contacts + commas = %d", len(body), want)
				}
			})
		}
	}
}
