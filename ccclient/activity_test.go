package ccclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetActivity(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("/v3/activities/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" {
			t.Errorf("method %s", r.Method)
		}
		if r.URL.EscapedPath() != "/v3/activities/86b90820-cc52-11ea-9dad-fa163e3d9194" {
			t.Errorf("path %s", r.URL.EscapedPath())
		}
		writeJSON(w, 200, `{
		  "activity_id":"86b90820-cc52-11ea-9dad-fa163e3d9194","state":"completed",
		  "created_at":"2026-04-28T21:48:16Z","started_at":"2026-04-28T21:48:17.108Z",
		  "completed_at":"2026-04-28T21:50:01.5-05:00","updated_at":"2026-04-28T21:50:01",
		  "percent_done":100,"activity_errors":["Row 3: invalid email"],"source_file_name":"x",
		  "status":{"items_total_count":3,"items_completed_count":3,"person_count":3,"error_count":0,
		            "correctable_count":1,"cannot_add_to_list_count":2,"list_count":1},
		  "_links":{"self":{"href":"/v3/activities/86b90820-cc52-11ea-9dad-fa163e3d9194"}}}`)
	})
	a, err := c.GetActivity(context.Background(), "86b90820-cc52-11ea-9dad-fa163e3d9194")
	if err != nil {
		t.Fatal(err)
	}
	want := Activity{
		ActivityID:     "86b90820-cc52-11ea-9dad-fa163e3d9194",
		State:          StateCompleted,
		CreatedAt:      time.Date(2026, 4, 28, 21, 48, 16, 0, time.UTC),
		StartedAt:      time.Date(2026, 4, 28, 21, 48, 17, 108e6, time.UTC),
		CompletedAt:    time.Date(2026, 4, 29, 2, 50, 1, 5e8, time.UTC),
		UpdatedAt:      time.Date(2026, 4, 28, 21, 50, 1, 0, time.UTC),
		PercentDone:    100,
		ActivityErrors: []string{"Row 3: invalid email"},
		Status:         ActivityStatus{ItemsTotalCount: 3, ItemsCompletedCount: 3, PersonCount: 3, CorrectableCount: 1, CannotAddToListCount: 2, ListCount: 1},
		Links:          ActivityLinks{Self: Link{Href: "/v3/activities/86b90820-cc52-11ea-9dad-fa163e3d9194"}},
	}
	if !activityEqual(*a, want) {
		t.Errorf("got  %+v\nwant %+v", *a, want)
	}
	if !a.Final() || a.Clean() {
		t.Errorf("Final=%v Clean=%v, want true false", a.Final(), a.Clean())
	}
}

func activityEqual(a, b Activity) bool {
	return a.ActivityID == b.ActivityID && a.State == b.State &&
		a.CreatedAt.Equal(b.CreatedAt) && a.StartedAt.Equal(b.StartedAt) &&
		a.CompletedAt.Equal(b.CompletedAt) && a.UpdatedAt.Equal(b.UpdatedAt) &&
		a.PercentDone == b.PercentDone && strings.Join(a.ActivityErrors, "|") == strings.Join(b.ActivityErrors, "|") &&
		a.Status == b.Status && a.Links == b.Links
}

func TestGetActivityPathEscapingAndEmpty(t *testing.T) {
	c, mux, _ := setup(t, nil)
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.EscapedPath() != "/v3/activities/a%2Fb%3Fc" {
			t.Errorf("path %s", r.URL.EscapedPath())
		}
		writeJSON(w, 200, `{"activity_id":"a/b?c"}`)
	})
	if _, err := c.GetActivity(context.Background(), "a/b?c"); err != nil {
		t.Error(err)
	}
	if _, err := c.GetActivity(context.Background(), " "); err == nil {
		t.Error("empty id accepted")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

func TestGetActivityNotFound(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("GET /v3/activities/old", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, `[{"error_key":"activity.not.found","error_message":"Resource not found for the activity_id provided"}]`)
	})
	_, err := c.GetActivity(context.Background(), "old")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestActivityTimestamps(t *testing.T) {
	tests := []struct {
		in   string // JSON value of created_at, or "" for absent
		want time.Time
	}{
		{`"2016-01-23T13:48:44Z"`, time.Date(2016, 1, 23, 13, 48, 44, 0, time.UTC)},
		{`"2016-01-23T13:48:44.108Z"`, time.Date(2016, 1, 23, 13, 48, 44, 108e6, time.UTC)},
		{`"2016-01-23T13:48:44.1Z"`, time.Date(2016, 1, 23, 13, 48, 44, 1e8, time.UTC)},
		{`"2016-03-03T10:53:04-05:00"`, time.Date(2016, 3, 3, 15, 53, 4, 0, time.UTC)},
		{`"2016-03-03T10:53:04.250+0000"`, time.Date(2016, 3, 3, 10, 53, 4, 25e7, time.UTC)},
		{`"2016-03-03T10:53:04"`, time.Date(2016, 3, 3, 10, 53, 4, 0, time.UTC)},
		{`"2016-07-08"`, time.Date(2016, 7, 8, 0, 0, 0, 0, time.UTC)},
		{``, time.Time{}},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
		{`"yesterday"`, time.Time{}},
		{`12345`, time.Time{}},
	}
	for _, tt := range tests {
		js := `{"activity_id":"a1","state":"processing"}`
		if tt.in != "" {
			js = `{"activity_id":"a1","state":"processing","created_at":` + tt.in + `}`
		}
		var a Activity
		if err := json.Unmarshal([]byte(js), &a); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !a.CreatedAt.Equal(tt.want) || a.ActivityID != "a1" {
			t.Errorf("%s: CreatedAt = %v (id %q), want %v", tt.in, a.CreatedAt, a.ActivityID, tt.want)
		}
	}
}

func TestActivityTolerantDecoding(t *testing.T) {
	tests := []struct {
		name, js string
		check    func(a Activity) bool
	}{
		{"numbers as strings and floats", `{"activity_id":"a","percent_done":"75","status":{"person_count":20.0,"error_count":"1"}}`,
			func(a Activity) bool {
				return a.PercentDone == 75 && a.Status.PersonCount == 20 && a.Status.ErrorCount == 1
			}},
		{"activity_errors as objects", `{"activity_id":"a","activity_errors":[{"message":"bad row"},{"error_message":"other"},{"code":7}]}`,
			func(a Activity) bool {
				return strings.Join(a.ActivityErrors, "|") == `bad row|other|{"code":7}`
			}},
		{"activity_errors null", `{"activity_id":"a","activity_errors":null}`,
			func(a Activity) bool { return a.ActivityErrors == nil }},
		{"activity_errors empty", `{"activity_id":"a","activity_errors":[]}`,
			func(a Activity) bool { return len(a.ActivityErrors) == 0 }},
		{"numeric id", `{"activity_id":12345}`,
			func(a Activity) bool { return a.ActivityID == "12345" }},
	}
	for _, tt := range tests {
		var a Activity
		if err := json.Unmarshal([]byte(tt.js), &a); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !tt.check(a) {
			t.Errorf("%s: decoded %+v", tt.name, a)
		}
	}
	var a Activity
	if err := json.Unmarshal([]byte(`[1,2]`), &a); err == nil {
		t.Error("array decoded as an activity")
	}
}

func TestActivityMarshalRoundTrip(t *testing.T) {
	in := Activity{ActivityID: "a", State: StateCompleted, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		ActivityErrors: []string{"e"}, Status: ActivityStatus{PersonCount: 3}, Links: ActivityLinks{Self: Link{Href: "/v3/activities/a"}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "0001-01-01") {
		t.Errorf("zero times encoded: %s", b)
	}
	var out Activity
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !activityEqual(in, out) {
		t.Errorf("round trip: %+v != %+v (%s)", out, in, b)
	}
}

func TestActivityFinalClean(t *testing.T) {
	tests := []struct {
		name         string
		a            Activity
		final, clean bool
	}{
		{"initialized", Activity{State: StateInitialized}, false, false},
		{"processing", Activity{State: StateProcessing, PercentDone: 50}, false, false},
		{"completed clean", Activity{State: StateCompleted, Status: ActivityStatus{PersonCount: 5, ItemsTotalCount: 5}}, true, true},
		{"completed with error_count", Activity{State: StateCompleted, Status: ActivityStatus{ErrorCount: 1}}, true, false},
		{"completed with correctable", Activity{State: StateCompleted, Status: ActivityStatus{CorrectableCount: 1}}, true, false},
		{"completed with unsubscribed", Activity{State: StateCompleted, Status: ActivityStatus{CannotAddToListCount: 1}}, true, false},
		{"completed with activity_errors", Activity{State: StateCompleted, ActivityErrors: []string{"x"}}, true, false},
		{"cancelled", Activity{State: StateCancelled}, true, false},
		{"failed", Activity{State: StateFailed}, true, false},
		{"timed_out", Activity{State: StateTimedOut}, true, false},
		{"time_out spelling", Activity{State: "time_out"}, true, false},
		{"empty", Activity{}, false, false},
	}
	for _, tt := range tests {
		if got := tt.a.Final(); got != tt.final {
			t.Errorf("%s: Final = %v, want %v", tt.name, got, tt.final)
		}
		if got := tt.a.Clean(); got != tt.clean {
			t.Errorf("%s: Clean = %v, want %v", tt.name, got, tt.clean)
		}
	}
}

func TestActivitiesPaging(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("GET /v3/activities", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("limit") != "500" || q.Get("state") != "completed" {
			t.Errorf("query %s", r.URL.RawQuery)
		}
		switch q.Get("cursor") {
		case "":
			writeJSON(w, 200, `{"activities":[{"activity_id":"a1","state":"completed"}],"_links":{"next":{"href":"/v3/activities?cursor=c2&limit=500&state=completed"}}}`)
		case "c2":
			writeJSON(w, 200, `{"activities":[{"activity_id":"a2","state":"completed","status":{"person_count":7}}],"_links":{}}`)
		default:
			t.Errorf("cursor %q", q.Get("cursor"))
		}
	})
	acts, err := c.Activities(context.Background(), StateCompleted)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 2 || acts[0].ActivityID != "a1" || acts[1].ActivityID != "a2" || acts[1].Status.PersonCount != 7 {
		t.Errorf("activities = %+v", acts)
	}
}

// TestActivityRowErrors: the errors of an import activity that name a row
// are read whatever form CC uses (the Swagger's strings, the object form
// with a line number and an email), and errors about the whole import are
// left out of them while still kept as text.
func TestActivityRowErrors(t *testing.T) {
	tests := []struct {
		name string
		errs string // the activity_errors JSON
		want []RowError
	}{
		{"line, email and message", `["Line 12: ann@example.com: The email address is not valid."]`,
			[]RowError{{Line: 12, Email: "ann@example.com", Message: "The email address is not valid."}}},
		{"email and message", `["bob@example.com: Contact could not be added."]`,
			[]RowError{{Email: "bob@example.com", Message: "Contact could not be added."}}},
		{"a line only, an email CC could not read", `["row #7 - Email address bad@@ is not valid"]`,
			[]RowError{{Line: 7, Message: "Email address bad@@ is not valid"}}},
		{"an email inside the sentence", `["Invalid email address for cy@example.org."]`,
			[]RowError{{Email: "cy@example.org", Message: "Invalid email address for cy@example.org."}}},
		{"the object form", `[{"message":"Bad birthday","line_number":"3","email_address":"di@example.com"}]`,
			[]RowError{{Line: 3, Email: "di@example.com", Message: "Bad birthday"}}},
		{"an error about the whole import", `["The import could not be processed."]`, nil},
		{"none", `[]`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a Activity
			if err := json.Unmarshal([]byte(`{"activity_id":"a","state":"completed","activity_errors":`+tc.errs+`}`), &a); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.RowErrors, tc.want) {
				t.Errorf("RowErrors = %+v, want %+v", a.RowErrors, tc.want)
			}
			if tc.errs != "[]" && len(a.ActivityErrors) != 1 {
				t.Errorf("ActivityErrors = %q, want the error kept as text", a.ActivityErrors)
			}
		})
	}
}
