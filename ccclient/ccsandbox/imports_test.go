package ccsandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const unknownList = "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"

// manyRows returns n minimal rows with distinct emails.
func manyRows(n int) []map[string]any {
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = row("email", fmt.Sprintf("c%d@example.com", i))
	}
	return rows
}

// cfRow returns a row with n custom fields.
func cfRow(n int) map[string]any {
	m := row("email", "cf@example.com")
	for i := range n {
		m[fmt.Sprintf("cf:field_%d", i)] = "v"
	}
	return m
}

// importCase is one request to the import endpoint and what must happen.
type importCase struct {
	name        string
	body        func(list string) any
	contentType string
	status      int
	specRejects bool
}

// lengthCases checks every field with a maxLength at and just over it.
func lengthCases() []importCase {
	var cases []importCase
	fields := map[string]int{
		"first_name": 50, "last_name": 50, "job_title": 50, "company_name": 50,
		"phone": 50, "home_phone": 50, "work_phone": 50, "mobile_phone": 50, "other_phone": 50,
		"city": 50, "state": 50, "zip": 50, "country": 50,
		"home_city": 50, "home_state": 50, "home_zip": 50, "home country": 50, "home_country": 50,
		"work_city": 50, "work_state": 50, "work_zip": 50, "work_country": 50,
		"other_city": 50, "other_state": 50, "other_zip": 50, "other_country": 50,
		"street": 255, "street2": 255, "home_street": 255, "home_street2": 255,
		"work_street": 255, "work_street2": 255, "other_street": 255, "other_street2": 255,
		"cf:agency_id": 255,
	}
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	}) {
		n := fields[key]
		// The spec declares these keys with their maxLength; home_country
		// and cf: keys are extras it lets through.
		declared := key != "home_country" && !strings.HasPrefix(key, "cf:")
		for _, over := range []bool{false, true} {
			size := n
			status := http.StatusCreated
			if over {
				size, status = n+1, http.StatusBadRequest
			}
			cases = append(cases, importCase{
				name: fmt.Sprintf("%s of %d", key, size),
				body: func(list string) any {
					return importBody([]string{list}, row("email", "len@example.com", key, strings.Repeat("ü", size)))
				},
				status:      status,
				specRejects: over && declared,
			})
		}
	}
	for _, over := range []bool{false, true} {
		local := strings.Repeat("a", 38+map[bool]int{false: 0, true: 1}[over]) // + "@example.com" = 50 or 51
		status := map[bool]int{false: 201, true: 400}[over]
		cases = append(cases, importCase{
			name:        fmt.Sprintf("email of %d", len(local)+12),
			body:        func(list string) any { return importBody([]string{list}, row("email", local+"@example.com")) },
			status:      status,
			specRejects: over,
		})
	}
	return cases
}

func TestImportValidation(t *testing.T) {
	fiftyOne := make([]string, 51)
	for i := range fiftyOne {
		fiftyOne[i] = fmt.Sprintf("04fe9a97-a579-43c5-bb1a-%012d", i)
	}
	ok := func(list string) any { return importBody([]string{list}, row("email", "ann@example.com")) }
	raw := func(s string) func(string) any {
		return func(list string) any { return strings.ReplaceAll(s, "LIST", list) }
	}
	tests := []importCase{
		{name: "valid", body: ok, status: 201},
		{name: "CSV content type", body: ok, contentType: "text/csv", status: 415, specRejects: true},
		{name: "JSON with charset", body: ok, contentType: "application/json; charset=utf-8", status: 201},
		{name: "malformed JSON", body: raw(`{"import_data":[{"email":"a@example.com"}`), status: 400, specRejects: true},
		// kin-openapi decodes the first JSON value and ignores the rest.
		{name: "trailing data", body: raw(`{"import_data":[{"email":"a@example.com"}],"list_ids":["LIST"]} x`), status: 400},
		{name: "array body", body: raw(`[{"email":"a@example.com"}]`), status: 400, specRejects: true},
		{name: "missing list_ids", body: raw(`{"import_data":[{"email":"a@example.com"}]}`), status: 400, specRejects: true},
		{name: "empty list_ids", body: func(string) any { return importBody([]string{}, row("email", "a@example.com")) }, status: 400, specRejects: true},
		{name: "51 list_ids", body: func(string) any { return importBody(fiftyOne, row("email", "a@example.com")) }, status: 400, specRejects: true},
		{name: "list id not a UUID", body: func(string) any { return importBody([]string{"list-1"}, row("email", "a@example.com")) }, status: 400, specRejects: true},
		{name: "list_ids not an array", body: raw(`{"import_data":[{"email":"a@example.com"}],"list_ids":"LIST"}`), status: 400, specRejects: true},
		{name: "unknown list id", body: func(string) any { return importBody([]string{unknownList}, row("email", "a@example.com")) }, status: 400},
		{name: "one unknown among known", body: func(l string) any { return importBody([]string{l, unknownList}, row("email", "a@example.com")) }, status: 400},
		{name: "missing import_data", body: raw(`{"list_ids":["LIST"]}`), status: 400, specRejects: true},
		{name: "import_data not an array", body: raw(`{"import_data":{"email":"a@example.com"},"list_ids":["LIST"]}`), status: 400, specRejects: true},
		{name: "empty import_data", body: func(l string) any { return importBody([]string{l}) }, status: 400},
		{name: "40,000 contacts", body: func(l string) any { return importBody([]string{l}, manyRows(40_000)...) }, status: 201},
		{name: "40,001 contacts", body: func(l string) any { return importBody([]string{l}, manyRows(40_001)...) }, status: 400},
		{name: "contact not an object", body: raw(`{"import_data":["a@example.com"],"list_ids":["LIST"]}`), status: 400, specRejects: true},
		{name: "neither email nor sms_number", body: func(l string) any { return importBody([]string{l}, row("first_name", "Ann")) }, status: 400},
		{name: "empty email", body: func(l string) any { return importBody([]string{l}, row("email", "")) }, status: 400},
		{name: "null email", body: func(l string) any { return importBody([]string{l}, row("email", nil, "first_name", "Ann")) }, status: 400, specRejects: true},
		{name: "sms_number only", body: func(l string) any { return importBody([]string{l}, row("sms_number", "312-555-0100")) }, status: 201},
		{name: "25 custom fields", body: func(l string) any { return importBody([]string{l}, cfRow(25)) }, status: 201},
		{name: "26 custom fields", body: func(l string) any { return importBody([]string{l}, cfRow(26)) }, status: 400},
		{name: "custom field not a string", body: func(l string) any { return importBody([]string{l}, row("email", "a@example.com", "cf:x", 5)) }, status: 400},
		{name: "string field as a number", body: func(l string) any { return importBody([]string{l}, row("email", "a@example.com", "zip", 60609)) }, status: 400, specRejects: true},
		{name: "birthday as a string", body: func(l string) any {
			return importBody([]string{l}, row("email", "a@example.com", "birthday_month", "11", "birthday_day", 24))
		}, status: 400, specRejects: true},
		{name: "bad sms_permission_to_send", body: raw(`{"import_data":[{"email":"a@example.com"}],"list_ids":["LIST"],"sms_permission_to_send":"maybe"}`), status: 400},
		{name: "unknown keys are ignored", body: func(l string) any {
			return importBody([]string{l}, row("email", "a@example.com", "favourite_colour", "teal"))
		}, status: 201},
	}
	tests = append(tests, lengthCases()...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			list := e.srv.CreateList("Agents").ListID
			opts := []reqOption{expectInvalid}
			if tt.contentType != "" {
				opts = append(opts, withContentType(tt.contentType))
			}
			r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", tt.body(list), opts...)
			if r.specRejected() != tt.specRejects {
				t.Errorf("spec rejects the request: %v, want %v", r.specRejected(), tt.specRejects)
			}
			if tt.status != http.StatusCreated {
				wantAPIError(t, r, tt.status)
				if n := e.srv.Stats().Imports; n != 0 {
					t.Errorf("%d imports queued by a refused request", n)
				}
				return
			}
			wantStatus(t, r, http.StatusCreated)
		})
	}
}

func TestImportResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	list := e.srv.CreateList("Agents").ListID
	r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", importBody([]string{list}, row("email", "ann@example.com")))
	wantStatus(t, r, http.StatusCreated)
	var a activityView
	r.decode(t, &a)
	if !isUUID(a.ActivityID) || a.State != "initialized" || a.PercentDone != 0 || a.ActivityErrors == nil || len(a.ActivityErrors) != 0 {
		t.Errorf("201 body %s: want a new initialized activity", r.body)
	}
	if a.Links.Self.Href != "/v3/activities/"+a.ActivityID {
		t.Errorf("_links.self.href = %q, want the relative /v3 link", a.Links.Self.Href)
	}
	if ts, err := time.Parse(time.RFC3339, a.CreatedAt); err != nil || !ts.Equal(epoch) {
		t.Errorf("created_at %q, want %v", a.CreatedAt, epoch)
	}
	for _, k := range []string{"items_total_count", "person_count", "error_count", "correctable_count", "cannot_add_to_list_count"} {
		if v, ok := a.Status[k]; !ok || v != 0 {
			t.Errorf("status.%s = %v (present %v), want 0", k, v, ok)
		}
	}
	if !strings.Contains(string(r.body), `"activity_errors":[]`) {
		t.Errorf("201 body %s: activity_errors must be [] not null", r.body)
	}
}

func TestImportTruncation(t *testing.T) {
	// body lays out 10 rows, then tail, and reports where each row ends, so
	// the test can cut the body inside the fifth row.
	body := func(list string, listsFirst bool, tail string) ([]byte, []int) {
		var b bytes.Buffer
		lists := fmt.Sprintf(`"list_ids":[%q]`, list)
		b.WriteString("{")
		if listsFirst {
			b.WriteString(lists + ",")
		}
		b.WriteString(`"import_data":[`)
		var ends []int
		for i := range 10 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"email":"c%d@example.com","first_name":"Name %d"}`, i, i)
			ends = append(ends, b.Len())
		}
		b.WriteString(tail)
		b.WriteString("]")
		if !listsFirst {
			b.WriteString("," + lists)
		}
		b.WriteString("}")
		return b.Bytes(), ends
	}
	tests := []struct {
		name       string
		listsFirst bool
		tail       string // more import_data elements after the ten rows
		cut        func(ends []int) int
		mode       string
		wantRows   int
	}{
		{"cut inside the fifth row", true, "", func(ends []int) int { return ends[3] + 5 }, "", 4},
		{"cut right after the fourth row", true, "", func(ends []int) int { return ends[3] }, "", 4},
		{"list_ids after the cut still count", false, "", func(ends []int) int { return ends[5] + 1 }, "", 6},
		{"body within the limit", true, "", func(ends []int) int { return ends[9] + 100 }, "", 10},
		// CC never reads what lies past the cut, so it cannot be invalid.
		{"non-object past the cut", true, `,"junk",{"email":5}`, func(ends []int) int { return ends[9] }, "", 10},
		{"reject mode", true, "", func(ends []int) int { return ends[3] + 5 }, OversizeReject, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The limit depends on the list id's length only, which is fixed.
			full, ends := body(unknownList, tt.listsFirst, tt.tail)
			e := newEnv(t, Options{MaxImportBytes: tt.cut(ends), OversizeMode: tt.mode, ActivityDelay: time.Second})
			list := e.srv.CreateList("Agents").ListID
			b, _ := body(list, tt.listsFirst, tt.tail)
			var opts []reqOption
			if tt.tail != "" {
				opts = append(opts, expectInvalid) // the spec sees the whole body
			}
			r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", b, opts...)
			if tt.mode == OversizeReject {
				wantAPIError(t, r, http.StatusBadRequest)
				return
			}
			wantStatus(t, r, http.StatusCreated)
			var a activityView
			r.decode(t, &a)
			e.clock.Advance(time.Second)
			done := e.activity(a.ActivityID)
			if done.State != stateCompleted || done.Status["items_total_count"] != tt.wantRows || done.Status["person_count"] != tt.wantRows {
				t.Errorf("activity %+v: want %d rows imported", done, tt.wantRows)
			}
			contacts := e.srv.Contacts()
			if len(contacts) != tt.wantRows {
				t.Fatalf("%d contacts, want %d", len(contacts), tt.wantRows)
			}
			for _, c := range contacts {
				var i int
				fmt.Sscanf(c.Email, "c%d@", &i)
				if i >= tt.wantRows || len(c.ListIDs) != 1 || c.ListIDs[0] != list {
					t.Errorf("contact %+v should not have been imported like this", c)
				}
			}
			wantDropped := 10 - tt.wantRows + strings.Count(tt.tail, ",")
			if tt.cut(ends) >= len(full) {
				wantDropped = 0
			}
			if st := e.srv.Stats(); st.ImportRows != tt.wantRows || st.ImportRowsDropped != wantDropped {
				t.Errorf("Stats.ImportRows %d, ImportRowsDropped %d; want %d and %d", st.ImportRows, st.ImportRowsDropped, tt.wantRows, wantDropped)
			}
		})
	}
}

// TestImportContactCapAfterTruncation checks that the 40,000-contact cap
// applies to the contacts CC reads: rows past the 4 MB cut are dropped
// before they are counted.
func TestImportContactCapAfterTruncation(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"list_ids":["LIST_ID_PLACEHOLDER_0000000000000000"],"import_data":[`)
	var ends []int
	for i := range maxImportContacts + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"email":"c%05d@example.com"}`, i)
		ends = append(ends, b.Len())
	}
	b.WriteString("]}")
	tests := []struct {
		name     string
		maxBytes int
		status   int
	}{
		{"40,001 rows all read", 0, http.StatusBadRequest},
		{"the 40,001st row past the cut", ends[maxImportContacts-1], http.StatusCreated},
		{"the cut a byte into the 40,001st row", ends[maxImportContacts-1] + 1, http.StatusCreated},
		{"the cut at the end of the 40,001st row", ends[maxImportContacts], http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvNoSpec(t, Options{MaxImportBytes: tt.maxBytes, ActivityDelay: -1})
			list := e.srv.CreateList("Agents").ListID
			body := bytes.Replace(b.Bytes(), []byte("LIST_ID_PLACEHOLDER_0000000000000000"), []byte(list), 1)
			r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", body)
			if tt.status != http.StatusCreated {
				wantAPIError(t, r, tt.status)
				return
			}
			wantStatus(t, r, http.StatusCreated)
			var a activityView
			r.decode(t, &a)
			done := e.activity(a.ActivityID)
			if done.Status["items_total_count"] != maxImportContacts || done.Status["person_count"] != maxImportContacts {
				t.Errorf("status %v: want the first 40,000 contacts", done.Status)
			}
			if _, ok := e.contactByEmail(fmt.Sprintf("c%05d@example.com", maxImportContacts)); ok {
				t.Error("the row past the cut was imported")
			}
			if st := e.srv.Stats(); st.ImportRows != maxImportContacts || st.ImportRowsDropped != 1 {
				t.Errorf("stats %+v: want 40,000 rows received and 1 dropped", st)
			}
		})
	}
}

func TestImportRowsStat(t *testing.T) {
	tests := []struct {
		name        string
		run         func(t *testing.T, e *env, list string)
		wantRows    int
		wantDropped int
	}{
		{"one import", func(t *testing.T, e *env, list string) {
			e.importNow(importBody([]string{list}, manyRows(3)...))
		}, 3, 0},
		{"a contact sent twice counts twice", func(t *testing.T, e *env, list string) {
			e.importNow(importBody([]string{list}, row("email", "ann@example.com")))
			e.importNow(importBody([]string{list}, row("email", "ANN@example.com"), row("email", "bob@example.com")))
			if n := len(e.srv.Contacts()); n != 2 {
				t.Errorf("%d contacts, want 2", n)
			}
		}, 3, 0},
		{"correctable and unsubscribed rows were received", func(t *testing.T, e *env, list string) {
			e.srv.Unsubscribe("gone@example.com")
			e.importNow(importBody([]string{list}, row("email", "not-an-email"), row("email", "gone@example.com"), row("email", "ok@example.com")))
		}, 3, 0},
		{"failed, timed out and cancelled imports are not counted", func(t *testing.T, e *env, list string) {
			for _, outcome := range []string{stateFailed, stateTimedOut, stateCancelled} {
				if err := e.srv.SetFaults(Faults{ImportOutcome: outcome}); err != nil {
					t.Fatal(err)
				}
				e.postImport(importBody([]string{list}, manyRows(5)...))
			}
			if err := e.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			e.importNow(importBody([]string{list}, manyRows(2)...))
		}, 2, 0},
		{"an import counts once it completes, polled or not", func(t *testing.T, e *env, list string) {
			e.postImport(importBody([]string{list}, manyRows(4)...))
			if st := e.srv.Stats(); st.ImportRows != 0 {
				t.Errorf("ImportRows %d before the import completed", st.ImportRows)
			}
			e.clock.Advance(e.srv.opts.ActivityDelay)
		}, 4, 0},
		{"a stuck import never counts", func(t *testing.T, e *env, list string) {
			if err := e.srv.SetFaults(Faults{ImportOutcome: outcomeStuck}); err != nil {
				t.Fatal(err)
			}
			e.postImport(importBody([]string{list}, manyRows(4)...))
			e.clock.Advance(24 * time.Hour)
		}, 0, 0},
		{"a refused import does not count", func(t *testing.T, e *env, list string) {
			wantAPIError(t, e.call(http.MethodPost, "/v3/activities/contacts_json_import", importBody([]string{unknownList}, manyRows(2)...)), http.StatusBadRequest)
		}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: time.Second})
			list := e.srv.CreateList("Agents").ListID
			tt.run(t, e, list)
			st := e.srv.Stats()
			if st.ImportRows != tt.wantRows || st.ImportRowsDropped != tt.wantDropped {
				t.Errorf("ImportRows %d, ImportRowsDropped %d; want %d and %d", st.ImportRows, st.ImportRowsDropped, tt.wantRows, tt.wantDropped)
			}
			r := e.call(http.MethodGet, "/sandbox/stats", nil, withToken(""))
			var raw map[string]any
			r.decode(t, &raw)
			if raw["import_rows"] != float64(tt.wantRows) {
				t.Errorf("/sandbox/stats import_rows = %v, want %d", raw["import_rows"], tt.wantRows)
			}
		})
	}
}

func TestImportUpsertByLowerCasedEmail(t *testing.T) {
	tests := []struct {
		name    string
		imports [][]string // emails per import, each import onto its own list
		want    []string   // the contacts' emails afterwards
	}{
		{"two imports, two spellings", [][]string{{"Ann@x.example"}, {"ann@x.example"}}, []string{"ann@x.example"}},
		{"two imports, upper case second", [][]string{{"ann@x.example"}, {"ANN@X.EXAMPLE"}}, []string{"ann@x.example"}},
		{"one import, two spellings", [][]string{{"Ann@x.example", "ann@X.example"}}, []string{"ann@x.example"}},
		{"surrounding spaces", [][]string{{" ann@x.example "}, {"ann@x.example"}}, []string{"ann@x.example"}},
		{"different people", [][]string{{"ann@x.example"}, {"anne@x.example"}}, []string{"ann@x.example", "anne@x.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1})
			var lists []string
			for i, emails := range tt.imports {
				list := e.srv.CreateList(fmt.Sprintf("L%d", i)).ListID
				lists = append(lists, list)
				var rows []map[string]any
				for _, em := range emails {
					rows = append(rows, row("email", em, "first_name", fmt.Sprintf("Import %d", i)))
				}
				e.importNow(importBody([]string{list}, rows...))
			}
			var got []string
			for _, c := range e.srv.Contacts() {
				got = append(got, c.Email)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("contacts %q, want %q", got, tt.want)
			}
			if len(tt.want) == 1 {
				c, _ := e.contactByEmail(tt.want[0])
				if !slices.Equal(c.ListIDs, lists) || c.FirstName != fmt.Sprintf("Import %d", len(tt.imports)-1) {
					t.Errorf("contact %+v: want one contact on every list, updated by the last import", c)
				}
				r := e.call(http.MethodGet, "/v3/contacts?email="+url.QueryEscape(strings.ToUpper(tt.want[0])), nil)
				var p contactsPage
				r.decode(t, &p)
				if len(p.Contacts) != 1 {
					t.Errorf("GET /v3/contacts?email= found %d contacts, want 1", len(p.Contacts))
				}
			}
		})
	}
}

func TestImportUpsert(t *testing.T) {
	for _, clears := range []bool{false, true} {
		t.Run(fmt.Sprintf("EmptyStringClears=%v", clears), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{EmptyStringClears: clears})
			l1, l2 := e.srv.CreateList("L1").ListID, e.srv.CreateList("L2").ListID
			e.srv.CreateCustomField("agency id")
			e.srv.Unsubscribe("Carol@Example.com")

			first := e.importNow(importBody([]string{l1},
				row("email", "ann@example.com", "first_name", "Ann", "last_name", "Lee", "company_name", "Acme Travel", "cf:agency_id", "A-1001"),
				row("email", "BOB@Example.com", "first_name", "Bob"),
			))
			if first.Status["person_count"] != 2 || first.Status["items_total_count"] != 2 {
				t.Errorf("first import status %v", first.Status)
			}

			second := e.importNow(importBody([]string{l2, l1},
				row("email", "ANN@example.com", "last_name", "Smith", "job_title", ""),
				row("email", "carol@example.com", "first_name", "Carol"),
				row("email", "not-an-email"),
				row("email", "dave@example.com", "cf:no_such_field", "x", "birthday_month", 11, "birthday_day", 24),
				row("email", "erin@example.com", "birthday_month", 13, "birthday_day", 1),
				row("email", "bob@example.com", "first_name", ""),
			))
			want := map[string]int{
				"items_total_count": 6, "items_completed_count": 6, "person_count": 4,
				"correctable_count": 2, "cannot_add_to_list_count": 1, "error_count": 0,
			}
			for k, v := range want {
				if second.Status[k] != v {
					t.Errorf("status.%s = %d, want %d (%v)", k, second.Status[k], v, second.Status)
				}
			}

			ann, _ := e.contactByEmail("ann@example.com")
			if ann.FirstName != "Ann" || ann.LastName != "Smith" || ann.Fields["company_name"] != "Acme Travel" {
				t.Errorf("ann %+v: want a partial update (last name only)", ann)
			}
			if ann.CustomFields["agency_id"] != "A-1001" || ann.Permission != "implicit" {
				t.Errorf("ann %+v: custom field or permission lost", ann)
			}
			if !slices.Equal(ann.ListIDs, []string{l1, l2}) || !slices.Equal(ann.ListNames, []string{"L1", "L2"}) {
				t.Errorf("ann lists %v %v: want L1 then L2, each once", ann.ListIDs, ann.ListNames)
			}
			carol, _ := e.contactByEmail("carol@example.com")
			if carol.Permission != "unsubscribed" || len(carol.ListIDs) != 0 || carol.FirstName != "Carol" {
				t.Errorf("carol %+v: want unsubscribed, on no list, but updated", carol)
			}
			dave, _ := e.contactByEmail("dave@example.com")
			if len(dave.CustomFields) != 0 || dave.BirthdayMonth != 11 || dave.BirthdayDay != 24 || !slices.Equal(dave.ListIDs, []string{l2, l1}) {
				t.Errorf("dave %+v: unknown cf: must be dropped, the rest imported", dave)
			}
			if _, ok := e.contactByEmail("not-an-email"); ok {
				t.Error("a correctable row was imported")
			}
			if _, ok := e.contactByEmail("erin@example.com"); ok {
				t.Error("a row with an impossible birthday was imported")
			}
			bob, ok := e.contactByEmail("bob@example.com")
			wantBob := "Bob"
			if clears {
				wantBob = ""
			}
			if !ok || bob.FirstName != wantBob {
				t.Errorf("bob %+v: first_name %q, want %q", bob, bob.FirstName, wantBob)
			}
			if n := len(e.srv.Contacts()); n != 4 {
				t.Errorf("%d contacts, want ann, bob, carol, dave", n)
			}
		})
	}
}

func TestImportListCapPerContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	var ids []string
	for i := range maxListsPerRow + 2 {
		ids = append(ids, e.srv.CreateList(fmt.Sprintf("L%02d", i)).ListID)
	}
	e.importNow(importBody(ids[:maxListsPerRow], row("email", "many@example.com")))
	a := e.importNow(importBody(ids[maxListsPerRow:], row("email", "many@example.com")))
	c, _ := e.contactByEmail("many@example.com")
	if len(c.ListIDs) != maxListsPerRow {
		t.Errorf("contact on %d lists, want the cap of %d", len(c.ListIDs), maxListsPerRow)
	}
	if a.Status["error_count"] != 1 || len(a.ActivityErrors) != 1 {
		t.Errorf("activity %+v: want the dropped memberships reported", a)
	}
}

func TestActivityProgression(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: 10 * time.Second})
	list := e.srv.CreateList("Agents").ListID
	a := e.postImport(importBody([]string{list}, manyRows(4)...))
	steps := []struct {
		advance     time.Duration
		state       string
		percent     int
		completed   int
		hasContacts bool
	}{
		{0, "initialized", 0, 0, false},
		{4999 * time.Millisecond, "initialized", 0, 0, false},
		{time.Millisecond, "processing", 0, 0, false},
		{2500 * time.Millisecond, "processing", 50, 2, false},
		{2499 * time.Millisecond, "processing", 99, 3, false},
		{time.Millisecond, "completed", 100, 4, true},
		{time.Hour, "completed", 100, 4, true},
	}
	for i, st := range steps {
		e.clock.Advance(st.advance)
		got := e.activity(a.ActivityID)
		if got.State != st.state || got.PercentDone != st.percent || got.Status["items_completed_count"] != st.completed {
			t.Errorf("step %d: state %q %d%% %d done, want %q %d%% %d done", i, got.State, got.PercentDone,
				got.Status["items_completed_count"], st.state, st.percent, st.completed)
		}
		if (len(e.srv.Contacts()) == 4) != st.hasContacts {
			t.Errorf("step %d: %d contacts, want them only once completed", i, len(e.srv.Contacts()))
		}
		if st.state != "initialized" && got.StartedAt == "" {
			t.Errorf("step %d: no started_at", i)
		}
		if (got.CompletedAt != "") != (st.state == "completed") {
			t.Errorf("step %d: completed_at %q in state %s", i, got.CompletedAt, got.State)
		}
	}

	// The collection filters by state, newest first.
	b := e.postImport(importBody([]string{list}, manyRows(1)...))
	listIDs := func(query string) []string {
		r := e.call(http.MethodGet, "/v3/activities"+query, nil)
		wantStatus(t, r, http.StatusOK)
		var out struct {
			Activities []activityView `json:"activities"`
		}
		r.decode(t, &out)
		var ids []string
		for _, x := range out.Activities {
			ids = append(ids, x.ActivityID)
		}
		return ids
	}
	if got := listIDs(""); !slices.Equal(got, []string{b.ActivityID, a.ActivityID}) {
		t.Errorf("activities %v, want newest first", got)
	}
	if got := listIDs("?state=completed"); !slices.Equal(got, []string{a.ActivityID}) {
		t.Errorf("completed activities %v, want only the first", got)
	}
	if got := listIDs("?state=processing&limit=1"); len(got) != 0 {
		t.Errorf("processing activities %v, want none", got)
	}
	if got := listIDs("?limit=1"); !slices.Equal(got, []string{b.ActivityID}) {
		t.Errorf("limit=1 gave %v", got)
	}

	// After 10 days CC forgets an activity.
	e.clock.Advance(activityRetention)
	e.token, _ = e.srv.IssueToken("")
	wantAPIError(t, e.call(http.MethodGet, "/v3/activities/"+a.ActivityID, nil), http.StatusNotFound)
	if got := listIDs(""); len(got) != 0 {
		t.Errorf("activities %v after 10 days, want none", got)
	}
}

func TestActivityQueries(t *testing.T) {
	tests := []struct {
		path        string
		status      int
		specRejects bool
	}{
		{"/v3/activities/" + unknownList, 404, false},
		{"/v3/activities/not-a-uuid", 404, false},
		{"/v3/activities?state=initialized", 400, true},
		{"/v3/activities?state=timed_out", 200, false},
		{"/v3/activities?limit=0", 400, true},
		{"/v3/activities?limit=501", 400, true},
		{"/v3/activities?limit=500", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			r := e.call(http.MethodGet, tt.path, nil, expectInvalid)
			if r.specRejected() != tt.specRejects {
				t.Errorf("spec rejects the request: %v, want %v", r.specRejected(), tt.specRejects)
			}
			if tt.status != http.StatusOK {
				wantAPIError(t, r, tt.status)
				return
			}
			wantStatus(t, r, tt.status)
		})
	}
}

func TestImportOutcomeFaults(t *testing.T) {
	for _, outcome := range []string{stateFailed, stateTimedOut, stateCancelled, outcomeStuck} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: time.Second})
			list := e.srv.CreateList("Agents").ListID
			if err := e.srv.SetFaults(Faults{ImportOutcome: outcome}); err != nil {
				t.Fatal(err)
			}
			a := e.postImport(importBody([]string{list}, manyRows(3)...))
			e.clock.Advance(time.Hour)
			got := e.activity(a.ActivityID)
			want := outcome
			if outcome == outcomeStuck {
				want = stateProcessing
			}
			if got.State != want {
				t.Errorf("state %q, want %q", got.State, want)
			}
			if outcome != outcomeStuck && len(got.ActivityErrors) == 0 {
				t.Error("a failed activity without activity_errors")
			}
			if n := len(e.srv.Contacts()); n != 0 {
				t.Errorf("%d contacts imported by a %s activity", n, outcome)
			}
			// Faults apply to imports queued while they are set.
			if err := e.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			e.importNow(importBody([]string{list}, manyRows(3)...))
			if n := len(e.srv.Contacts()); n != 3 {
				t.Errorf("%d contacts after a normal import, want 3", n)
			}
		})
	}
}

func TestImportQueueCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: time.Hour})
	list := e.srv.CreateList("Agents").ListID
	body, err := json.Marshal(importBody([]string{list}, row("email", "q@example.com")))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 16 {
		wg.Go(func() {
			for range maxQueued / 16 {
				r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", body)
				mu.Lock()
				codes[r.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for range maxQueued % 16 {
		wantStatus(t, e.call(http.MethodPost, "/v3/activities/contacts_json_import", body), http.StatusCreated)
	}
	if codes[http.StatusCreated] != maxQueued/16*16 {
		t.Fatalf("status counts %v: want every one of the first 1,000 queued", codes)
	}
	r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", body)
	wantStatus(t, r, http.StatusTooManyRequests)
	var obj apiError
	r.decode(t, &obj)
	if obj.ErrorKey != keyQueueFull || obj.ErrorMessage == "" {
		t.Errorf("queue-full body %s", r.body)
	}
	e.clock.Advance(time.Hour) // everything completes
	wantStatus(t, e.call(http.MethodPost, "/v3/activities/contacts_json_import", body), http.StatusCreated)
	if st := e.srv.Stats(); st.QueueFull != 1 || st.Imports != maxQueued+1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLargeImport(t *testing.T) {
	t.Parallel()
	e := newEnvNoSpec(t, Options{ActivityDelay: -1})
	list := e.srv.CreateList("Agents").ListID
	e.srv.CreateCustomField("agency id")
	rows := make([]map[string]any, maxImportContacts)
	for i := range rows {
		rows[i] = row("email", fmt.Sprintf("ag%05d@example.com", i), "first_name", "Al",
			"last_name", fmt.Sprintf("Lee%05d", i), "cf:agency_id", fmt.Sprintf("A-%05d", i))
	}
	body, err := json.Marshal(importBody([]string{list}, rows...))
	if err != nil {
		t.Fatal(err)
	}
	if len(body) < 3_500_000 || len(body) >= DefaultMaxImportBytes {
		t.Fatalf("body is %d bytes; the test wants a near-4 MB import", len(body))
	}
	start := time.Now()
	a := e.postImport(body)
	done := e.activity(a.ActivityID)
	elapsed := time.Since(start)
	if done.State != stateCompleted || done.Status["person_count"] != maxImportContacts {
		t.Fatalf("activity %+v: want all %d contacts imported", done, maxImportContacts)
	}
	t.Logf("%d contacts, %d bytes: accepted and applied in %v", maxImportContacts, len(body), elapsed)
	// Well under a second without the race detector; allow for its 5-10x.
	if elapsed > 10*time.Second {
		t.Errorf("import took %v", elapsed)
	}
	c, _ := e.contactByEmail("ag39999@example.com")
	if c.LastName != "Lee39999" || c.CustomFields["agency_id"] != "A-39999" {
		t.Errorf("last contact %+v", c)
	}
}
