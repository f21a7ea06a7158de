package hssandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// call sends one request straight to the handler and returns the status,
// the decoded body and the headers.
func call(t *testing.T, s *Server, method, path, token, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, rec.Body, err)
		}
	}
	return rec.Code, out, rec.Header()
}

const batchPath = "/crm/v3/objects/contacts/batch/update"

func batch(ids []string, props string) string {
	var in []string
	for _, id := range ids {
		in = append(in, fmt.Sprintf(`{"id":%q,"properties":%s}`, id, props))
	}
	return `{"inputs":[` + strings.Join(in, ",") + `]}`
}

func newServer(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLimits(t *testing.T) {
	start := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	cases := []struct {
		name       string
		o          Options
		steps      []time.Duration // clock offset of each call from start
		wantStatus []int
		wantPolicy string // of the last call
		wantRetry  string // Retry-After of the last call
	}{
		{"secondly window refuses the third", Options{Rate: 2, Daily: -1}, []time.Duration{0, 4 * time.Second, 5 * time.Second}, []int{200, 200, 429}, "TEN_SECONDLY_ROLLING", "5"},
		{"window rolls", Options{Rate: 2, Daily: -1}, []time.Duration{0, 4 * time.Second, 10 * time.Second}, []int{200, 200, 200}, "", ""},
		{"daily refuses until midnight", Options{Rate: -1, Daily: 2}, []time.Duration{0, 0, 30 * time.Second}, []int{200, 200, 429}, "DAILY", "30"},
		{"daily resets at midnight", Options{Rate: -1, Daily: 2}, []time.Duration{0, 0, 60 * time.Second}, []int{200, 200, 200}, "", ""},
		{"throttle fault", Options{Rate: -1, Daily: -1, ThrottleRate: 1}, []time.Duration{0}, []int{429}, "TEN_SECONDLY_ROLLING", "10"},
		{"no Retry-After", Options{Rate: 1, Daily: -1, OmitRetryAfter: true}, []time.Duration{0, 0}, []int{200, 429}, "TEN_SECONDLY_ROLLING", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var now time.Time
			tc.o.Now = func() time.Time { return now }
			s := newServer(t, tc.o)
			var body map[string]any
			var h http.Header
			for i, d := range tc.steps {
				now = start.Add(d)
				var status int
				status, body, h = call(t, s, "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"firstname":"a"}`))
				if status != tc.wantStatus[i] {
					t.Fatalf("call %d: status %d, want %d (%v)", i, status, tc.wantStatus[i], body)
				}
			}
			if tc.wantPolicy != "" && (body["policyName"] != tc.wantPolicy || body["category"] != "RATE_LIMITS") {
				t.Errorf("429 body %v, want policy %s", body, tc.wantPolicy)
			}
			if got := h.Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
		})
	}
}

func TestFaultsHook(t *testing.T) {
	cases := []struct {
		body       string
		wantStatus int
		wantBatch  int // status of a batch update after the hook
	}{
		{`{"fail_rate":1}`, 200, 500},
		{`{"throttle_rate":1}`, 200, 429},
		{`{"fail_rate":0,"throttle_rate":0}`, 200, 200},
		{`{"fail_rate":1.5}`, 400, 200},
		{`{"fail_rate":`, 400, 200},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			s := newServer(t, Options{})
			if st, b, _ := call(t, s, "POST", "/sandbox/faults", "", tc.body); st != tc.wantStatus {
				t.Fatalf("hook: %d %v, want %d", st, b, tc.wantStatus)
			}
			st, b, _ := call(t, s, "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"firstname":"a"}`))
			if st == 502 {
				st = 500 // an injected failure is a 500 or a 502
			}
			if st != tc.wantBatch {
				t.Errorf("batch after hook: %d %v, want %d", st, b, tc.wantBatch)
			}
		})
	}
}

func TestFailFault(t *testing.T) {
	s := newServer(t, Options{FailRate: 1})
	status, _, _ := call(t, s, "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"firstname":"a"}`))
	if status != 500 && status != 502 {
		t.Fatalf("status %d, want a 5xx", status)
	}
	if err := s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := call(t, s, "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"firstname":"a"}`)); status != 200 {
		t.Errorf("faults off: status %d", status)
	}
	if err := s.SetFaults(Faults{FailRate: 2}); err == nil {
		t.Error("FailRate 2 accepted")
	}
}

func TestValidation(t *testing.T) {
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	const props = "/crm/v3/properties/contacts"
	prop := func(name, typ, field, opts string) string {
		return fmt.Sprintf(`{"name":%q,"label":"L","type":%q,"fieldType":%q,"groupName":"hs2cc","options":%s}`, name, typ, field, opts)
	}
	cases := []struct {
		name, method, path, token, body string
		wantStatus                      int
		wantCategory                    string
	}{
		{"no token", "POST", batchPath, "", batch([]string{"1"}, `{}`), 401, "INVALID_AUTHENTICATION"},
		{"wrong token", "GET", props + "/groups", "nope", "", 401, "INVALID_AUTHENTICATION"},
		{"101 inputs", "POST", batchPath, DefaultToken, batch(ids, `{"firstname":"a"}`), 400, "VALIDATION_ERROR"},
		{"100 inputs", "POST", batchPath, DefaultToken, batch(ids[:100], `{"firstname":"a"}`), 200, ""},
		{"unknown property", "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"nosuch":"a"}`), 400, "VALIDATION_ERROR"},
		{"enumeration value not an option", "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"s":"maybe"}`), 400, "VALIDATION_ERROR"},
		{"enumeration option", "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"s":"yes"}`), 200, ""},
		{"datetime ISO", "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"d":"2026-03-01T10:00:00.5Z"}`), 200, ""},
		{"datetime epoch ms", "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"d":"1772359200000"}`), 200, ""},
		{"datetime bad", "POST", batchPath, DefaultToken, batch([]string{"1"}, `{"d":"yesterday"}`), 400, "VALIDATION_ERROR"},
		{"duplicate ids", "POST", batchPath, DefaultToken, batch([]string{"1", "1"}, `{}`), 400, "VALIDATION_ERROR"},
		{"malformed JSON", "POST", batchPath, DefaultToken, `{"inputs":`, 400, "VALIDATION_ERROR"},
		{"property exists", "POST", props, DefaultToken, prop("s", "enumeration", "select", `[{"label":"y","value":"yes"}]`), 409, "OBJECT_ALREADY_EXISTS"},
		{"group exists", "POST", props + "/groups", DefaultToken, `{"name":"hs2cc","label":"x"}`, 409, "OBJECT_ALREADY_EXISTS"},
		{"bad type", "POST", props, DefaultToken, prop("p", "text", "text", `[]`), 400, "VALIDATION_ERROR"},
		{"field type not for type", "POST", props, DefaultToken, prop("p", "datetime", "text", `[]`), 400, "VALIDATION_ERROR"},
		{"enumeration without options", "POST", props, DefaultToken, prop("p", "enumeration", "select", `[]`), 400, "VALIDATION_ERROR"},
		{"duplicate option values", "POST", props, DefaultToken, prop("p", "enumeration", "select", `[{"label":"a","value":"v"},{"label":"b","value":"v"}]`), 400, "VALIDATION_ERROR"},
		{"options on a string", "POST", props, DefaultToken, prop("p", "string", "text", `[{"label":"a","value":"v"}]`), 400, "VALIDATION_ERROR"},
		{"unknown group", "POST", props, DefaultToken, `{"name":"p","label":"L","type":"string","fieldType":"text","groupName":"nogroup"}`, 400, "VALIDATION_ERROR"},
		{"valid property", "POST", props, DefaultToken, prop("p", "string", "text", `[]`), 201, ""},
		{"missing property", "GET", props + "/nosuch", DefaultToken, "", 404, "OBJECT_NOT_FOUND"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, Options{})
			for _, setup := range []struct{ path, body string }{
				{props + "/groups", `{"name":"hs2cc","label":"hs2cc"}`},
				{props, prop("s", "enumeration", "select", `[{"label":"y","value":"yes"}]`)},
				{props, prop("d", "datetime", "date", `[]`)},
			} {
				if st, b, _ := call(t, s, "POST", setup.path, DefaultToken, setup.body); st != 201 {
					t.Fatalf("setup %s: %d %v", setup.body, st, b)
				}
			}
			status, body, _ := call(t, s, tc.method, tc.path, tc.token, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d (%v)", status, tc.wantStatus, body)
			}
			if tc.wantCategory != "" && (body["category"] != tc.wantCategory || body["status"] != "error" || body["correlationId"] == "") {
				t.Errorf("body %v, want category %s", body, tc.wantCategory)
			}
			if status >= 400 && tc.path == batchPath && len(s.Contacts()) != 0 {
				t.Errorf("a refused batch wrote %v", s.Contacts())
			}
		})
	}
}

// TestHooks checks the /sandbox views: only written contacts, no deleted
// ones, and request counts per endpoint and status.
func TestHooks(t *testing.T) {
	s := newServer(t, Options{})
	call(t, s, "POST", batchPath, DefaultToken, batch([]string{"1", "2"}, `{"firstname":"a"}`))
	call(t, s, "DELETE", "/crm/v3/objects/contacts/2", DefaultToken, "")
	status, body, _ := call(t, s, "POST", batchPath, DefaultToken, batch([]string{"1", "2"}, `{"lastname":"b"}`))
	if status != http.StatusMultiStatus {
		t.Fatalf("update after delete: %d %v", status, body)
	}
	_, got, _ := call(t, s, "GET", "/sandbox/contacts", "", "")
	b, _ := json.Marshal(got)
	if want := `{"contacts":[{"id":"1","properties":{"firstname":"a","lastname":"b"}}]}`; string(b) != want {
		t.Errorf("contacts %s, want %s", b, want)
	}
	_, got, _ = call(t, s, "GET", "/sandbox/stats", "", "")
	b, _ = json.Marshal(got)
	want := `{"requests":{"DELETE /crm/v3/objects/contacts/{id}":{"204":1},"POST /crm/v3/objects/contacts/batch/update":{"200":1,"207":1}}}`
	if string(b) != want {
		t.Errorf("stats %s, want %s", b, want)
	}
}
