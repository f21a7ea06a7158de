package ccclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// jsonImportContactKeys are the properties of JsonImportContact in
// shared/constant-contact/v3-swagger.yml (3.0.178), without the dynamic
// "cf:custom_field_name".
var jsonImportContactKeys = map[string]bool{
	"email": true, "first_name": true, "last_name": true, "job_title": true, "company_name": true,
	"birthday_month": true, "birthday_day": true, "anniversary": true,
	"phone": true, "home_phone": true, "work_phone": true, "mobile_phone": true, "other_phone": true,
	"street": true, "street2": true, "city": true, "state": true, "zip": true, "country": true,
	"home_street": true, "home_street2": true, "home_city": true, "home_state": true, "home_zip": true, "home country": true,
	"work_street": true, "work_street2": true, "work_city": true, "work_state": true, "work_zip": true, "work_country": true,
	"other_street": true, "other_street2": true, "other_city": true, "other_state": true, "other_zip": true, "other_country": true,
	"sms_number": true, "sms_consent_date": true,
}

func fullContact() ImportContact {
	return ImportContact{
		Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", JobTitle: "Agent", CompanyName: "Acme Travel",
		Phone: "555-555-0000", HomePhone: "555-555-0001", WorkPhone: "555-555-0002", MobilePhone: "555-555-0003",
		Street: "1 Main St", Street2: "Suite 2", City: "Chicago", State: "Illinois", Zip: "60609", Country: "United States",
		BirthdayMonth: 11, BirthdayDay: 24, Anniversary: "2006-11-15",
		CustomFields: map[string]string{"agency_id": "A-1001", "iata": "12345678"},
	}
}

func TestImportContactMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		c    ImportContact
		want string
	}{
		{
			name: "every field, custom fields last and sorted",
			c:    fullContact(),
			want: `{"email":"ann@example.com","first_name":"Ann","last_name":"Lee","job_title":"Agent","company_name":"Acme Travel",` +
				`"birthday_month":11,"birthday_day":24,"anniversary":"2006-11-15",` +
				`"phone":"555-555-0000","home_phone":"555-555-0001","work_phone":"555-555-0002","mobile_phone":"555-555-0003",` +
				`"street":"1 Main St","street2":"Suite 2","city":"Chicago","state":"Illinois","zip":"60609","country":"United States",` +
				`"cf:agency_id":"A-1001","cf:iata":"12345678"}`,
		},
		{
			name: "empties omitted",
			c:    ImportContact{Email: "bo@example.com", FirstName: "", LastName: "  ", City: "Oslo", CustomFields: map[string]string{"empty": "", "blank": " \t", "": "no name", "x": "1"}},
			want: `{"email":"bo@example.com","city":"Oslo","cf:x":"1"}`,
		},
		{
			name: "many custom fields sorted by name",
			c: ImportContact{Email: "a@b.c", CustomFields: map[string]string{
				"zeta": "6", "alpha": "1", "mu": "4", "beta": "2", "omega": "5", "gamma": "3", "Upper": "0",
			}},
			want: `{"email":"a@b.c","cf:Upper":"0","cf:alpha":"1","cf:beta":"2","cf:gamma":"3","cf:mu":"4","cf:omega":"5","cf:zeta":"6"}`,
		},
		{
			name: "zero contact",
			c:    ImportContact{},
			want: `{}`,
		},
		{
			name: "birthday sent only as a valid pair",
			c:    ImportContact{Email: "a@b.c", BirthdayMonth: 3},
			want: `{"email":"a@b.c"}`,
		},
		{
			name: "birthday out of range omitted",
			c:    ImportContact{Email: "a@b.c", BirthdayMonth: 13, BirthdayDay: 1},
			want: `{"email":"a@b.c"}`,
		},
		{
			name: "non-ASCII survives as UTF-8",
			c:    ImportContact{Email: "zoë@example.com", FirstName: "Zoë", LastName: "Müller-Łukasz", City: "東京", CustomFields: map[string]string{"agência": "São Paulo ✈"}},
			want: `{"email":"zoë@example.com","first_name":"Zoë","last_name":"Müller-Łukasz","city":"東京","cf:agência":"São Paulo ✈"}`,
		},
		{
			name: "escaping like encoding/json",
			c:    ImportContact{FirstName: `O"Brien\`, LastName: "a<b>&c", CompanyName: "line\nbreak\ttab\x01", City: "bad\xffutf8", State: "sep\u2028x"},
			want: `{"first_name":"O\"Brien\\","last_name":"a\u003cb\u003e\u0026c","company_name":"line\nbreak\ttab\u0001",` +
				`"city":"bad\ufffdutf8","state":"sep\u2028x"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("json.Marshal =\n%s\nwant\n%s", got, tt.want)
			}
			// MarshalJSON's own bytes must survive json.Marshal unchanged,
			// so callers can size contacts with json.Marshal.
			own, _ := tt.c.MarshalJSON()
			if !bytes.Equal(own, got) {
				t.Errorf("MarshalJSON = %s, json.Marshal = %s", own, got)
			}
			ptr, _ := json.Marshal(&tt.c)
			if !bytes.Equal(ptr, got) {
				t.Errorf("pointer encoding differs: %s", ptr)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		"", "plain", `"quoted"`, `back\slash`, "\x00\x01\x1f\x7f", "\b\f\n\r\t", "<script>&amp;</script>",
		"é", "日本語", "emoji 🧳", "\u2028\u2029", "\xff", "a\xc3", "\xed\xa0\x80", "mixed \xe2\x82 end", strings.Repeat("ü", 300),
	}
	for _, s := range inputs {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestImportContactKeysAreInSpec(t *testing.T) {
	b, _ := json.Marshal(fullContact())
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m {
		if strings.HasPrefix(k, "cf:") {
			continue
		}
		if !jsonImportContactKeys[k] {
			t.Errorf("key %q is not a JsonImportContact property", k)
		}
	}
	if len(m) != 20 {
		t.Errorf("full contact has %d keys, want 20", len(m))
	}
}

func TestImportRequestMarshalJSON(t *testing.T) {
	r := ImportRequest{
		ImportData: []ImportContact{{Email: "a@example.com"}, {Email: "b@example.com", CustomFields: map[string]string{"k": "v"}}},
		ListIDs:    []string{"l1", "l2"},
	}
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"import_data":[{"email":"a@example.com"},{"email":"b@example.com","cf:k":"v"}],"list_ids":["l1","l2"]}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if p, _ := json.Marshal(&r); string(p) != want {
		t.Errorf("pointer: %s", p)
	}
}

func TestImportContacts(t *testing.T) {
	c, mux, _ := setup(t, nil)
	listA, listB := "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", "6a0d8a70-2f5f-11ee-8d2e-fa163e56c9b0"
	mux.HandleFunc("/v3/activities/contacts_json_import", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" {
			t.Errorf("method %s, want POST", r.Method)
		}
		testHeader(t, r, "Content-Type", "application/json")
		testHeader(t, r, "Accept", "application/json")
		testHeader(t, r, "Authorization", "Bearer "+testToken)
		raw, _ := io.ReadAll(r.Body)
		if r.ContentLength != int64(len(raw)) {
			t.Errorf("Content-Length %d, body %d bytes", r.ContentLength, len(raw))
		}
		var body struct {
			ImportData []map[string]any `json:"import_data"`
			ListIDs    []string         `json:"list_ids"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, raw)
		}
		var top map[string]json.RawMessage
		json.Unmarshal(raw, &top)
		if len(top) != 2 {
			t.Errorf("top-level keys %v, want import_data and list_ids only", keys(top))
		}
		if strings.Join(body.ListIDs, ",") != listA+","+listB {
			t.Errorf("list_ids = %v", body.ListIDs)
		}
		if len(body.ImportData) != 2 {
			t.Fatalf("import_data has %d contacts", len(body.ImportData))
		}
		first, second := body.ImportData[0], body.ImportData[1]
		if first["email"] != "ann@example.com" || first["cf:agency_id"] != "A-1001" || first["birthday_month"] != json.Number("11") {
			t.Errorf("first contact = %v", first)
		}
		want := map[string]any{"email": "zoë@example.com", "first_name": "Zoë", "city": "Kraków", "cf:agency_name": "Biuro Podróży Łódź"}
		if fmt.Sprint(second) != fmt.Sprint(want) {
			t.Errorf("second contact = %v, want %v", second, want)
		}
		if !bytes.Contains(raw, []byte("Biuro Podróży Łódź")) {
			t.Error("non-ASCII was escaped or mangled on the wire")
		}
		for _, ct := range body.ImportData {
			for k, v := range ct {
				if v == "" {
					t.Errorf("empty value sent for %q", k)
				}
			}
		}
		writeJSON(w, 201, `{"activity_id":"86b90820-cc52-11ea-9dad-fa163e3d9194","state":"initialized","created_at":"2026-04-28T21:48:16Z",`+
			`"percent_done":0,"activity_errors":[],"status":{"items_total_count":0,"person_count":0,"error_count":0,`+
			`"correctable_count":0,"cannot_add_to_list_count":0},`+
			`"_links":{"self":{"href":"/v3/activities/86b90820-cc52-11ea-9dad-fa163e3d9194"}}}`)
	})
	a, err := c.ImportContacts(context.Background(), &ImportRequest{
		ImportData: []ImportContact{
			fullContact(),
			{Email: "zoë@example.com", FirstName: "Zoë", LastName: "", City: "Kraków", CustomFields: map[string]string{"agency_name": "Biuro Podróży Łódź", "unused": ""}},
		},
		ListIDs: []string{listA, listB},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.ActivityID != "86b90820-cc52-11ea-9dad-fa163e3d9194" || a.State != StateInitialized ||
		a.Links.Self.Href != "/v3/activities/86b90820-cc52-11ea-9dad-fa163e3d9194" ||
		a.CreatedAt.Format("2006-01-02T15:04:05Z07:00") != "2026-04-28T21:48:16Z" || a.Final() {
		t.Errorf("activity = %+v", a)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestImportContactsAnySuccessStatus(t *testing.T) {
	for _, status := range []int{200, 201, 202} {
		c, mux, _ := setup(t, nil)
		mux.HandleFunc("POST /v3/activities/contacts_json_import", func(w http.ResponseWriter, r *http.Request) {
			// Minimal real response: only activity_id, state and _links.
			writeJSON(w, status, `{"activity_id":"a-`+fmt.Sprint(status)+`","state":"initialized","_links":{"self":{"href":"/v3/activities/a"}}}`)
		})
		a, err := c.ImportContacts(context.Background(), &ImportRequest{ImportData: []ImportContact{{Email: "a@b.c"}}, ListIDs: []string{"l"}})
		if err != nil || a.ActivityID != fmt.Sprint("a-", status) {
			t.Errorf("status %d: %+v, %v", status, a, err)
		}
		if !a.CreatedAt.IsZero() {
			t.Errorf("status %d: CreatedAt %v, want zero when absent", status, a.CreatedAt)
		}
	}
}

func TestImportContactsRefusedBeforeSending(t *testing.T) {
	small := make([]ImportContact, MaxImportContacts+1)
	for i := range small {
		small[i] = ImportContact{Email: fmt.Sprintf("a%d@b.co", i)}
	}
	// 20,000 contacts of ~220 bytes: under the count limit, over 4,000,000 bytes.
	big := make([]ImportContact, 20000)
	for i := range big {
		big[i] = ImportContact{Email: fmt.Sprintf("agent%06d@example.com", i), CompanyName: strings.Repeat("x", 50), Street: strings.Repeat("y", 120)}
	}
	lists51 := make([]string, MaxImportListIDs+1)
	for i := range lists51 {
		lists51[i] = fmt.Sprint("list-", i)
	}
	one := []ImportContact{{Email: "a@b.c"}}
	tests := []struct {
		name string
		req  *ImportRequest
		want error
	}{
		{"nil request", nil, ErrInvalidImport},
		{"no contacts", &ImportRequest{ListIDs: []string{"l"}}, ErrInvalidImport},
		{"no lists", &ImportRequest{ImportData: one}, ErrInvalidImport},
		{"blank list id", &ImportRequest{ImportData: one, ListIDs: []string{"l", " "}}, ErrInvalidImport},
		{"51 lists", &ImportRequest{ImportData: one, ListIDs: lists51}, ErrInvalidImport},
		{"40,001 contacts", &ImportRequest{ImportData: small, ListIDs: []string{"l"}}, ErrImportTooLarge},
		{"over 4,000,000 bytes", &ImportRequest{ImportData: big, ListIDs: []string{"l"}}, ErrImportTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, _ := setup(t, nil)
			var calls atomic.Int32
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
			_, err := c.ImportContacts(context.Background(), tt.req)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestImportContactsAtLimits(t *testing.T) {
	c, mux, _ := setup(t, nil)
	var got atomic.Int64
	mux.HandleFunc("POST /v3/activities/contacts_json_import", func(w http.ResponseWriter, r *http.Request) {
		var body ImportRequestProbe
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		got.Store(int64(len(body.ImportData)))
		writeJSON(w, 201, `{"activity_id":"a","state":"initialized"}`)
	})
	data := make([]ImportContact, MaxImportContacts)
	for i := range data {
		data[i] = ImportContact{Email: fmt.Sprintf("a%d@b.co", i)}
	}
	lists := make([]string, MaxImportListIDs)
	for i := range lists {
		lists[i] = fmt.Sprint("l", i)
	}
	if _, err := c.ImportContacts(context.Background(), &ImportRequest{ImportData: data, ListIDs: lists}); err != nil {
		t.Fatal(err)
	}
	if got.Load() != MaxImportContacts {
		t.Errorf("server got %d contacts", got.Load())
	}
}

// ImportRequestProbe decodes only the length of import_data.
type ImportRequestProbe struct {
	ImportData []json.RawMessage `json:"import_data"`
}

// realisticContacts builds travel-agent enrollments as the bridge sends them.
func realisticContacts(n int) []ImportContact {
	cities := []struct{ city, state, zip string }{
		{"Chicago", "Illinois", "60609"}, {"San José", "California", "95112"}, {"Miami", "Florida", "33101"}, {"Austin", "Texas", "73301"},
	}
	out := make([]ImportContact, n)
	for i := range out {
		loc := cities[i%len(cities)]
		out[i] = ImportContact{
			Email:       fmt.Sprintf("agent.%06d@sunshine-travel-agency.example.com", i),
			FirstName:   "Maria-José",
			LastName:    fmt.Sprintf("Gonzalez%d", i%997),
			JobTitle:    "Senior Travel Advisor",
			CompanyName: "Sunshine Travel & Tours LLC",
			Phone:       fmt.Sprintf("312-555-%04d", i%10000),
			Street:      fmt.Sprintf("%d W Jackson Blvd", 100+i%9000),
			City:        loc.city, State: loc.state, Zip: loc.zip, Country: "United States",
			CustomFields: map[string]string{
				"agency_id":      fmt.Sprintf("AG-%07d", i),
				"iata_number":    fmt.Sprintf("%08d", 10000000+i),
				"hubspot_id":     fmt.Sprintf("%d", 51000000000+i),
				"enrollment_src": "hubspot_workflow",
			},
		}
	}
	return out
}

func BenchmarkImportRequestEncode(b *testing.B) {
	req := &ImportRequest{
		ImportData: realisticContacts(MaxImportContacts),
		ListIDs:    []string{"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", "6a0d8a70-2f5f-11ee-8d2e-fa163e56c9b0"},
	}
	b.Run("append", func(b *testing.B) {
		// What ImportContacts sends.
		var n int
		b.ReportAllocs()
		for b.Loop() {
			n = len(req.appendJSON(nil))
		}
		b.SetBytes(int64(n))
		b.ReportMetric(float64(n), "body-bytes")
		b.ReportMetric(float64(n)/MaxImportContacts, "bytes/contact")
	})
	b.Run("json.Marshal", func(b *testing.B) {
		var n int
		b.ReportAllocs()
		for b.Loop() {
			out, err := json.Marshal(req)
			if err != nil {
				b.Fatal(err)
			}
			n = len(out)
		}
		b.SetBytes(int64(n))
		b.ReportMetric(float64(n), "body-bytes")
	})
}
