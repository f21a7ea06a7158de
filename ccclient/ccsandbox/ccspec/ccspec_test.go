package ccspec

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// swaggerSHA256 is the hash shared/constant-contact/README.md gives for CC's
// spec; the embedded copy must be that file byte for byte.
const swaggerSHA256 = "4b4a534c818d018c4c5fa0c4ce0de9e6803fe984e951b98ad22dd3622c7e72cc"

func TestEmbeddedSpecIsTheOfficialFile(t *testing.T) {
	sum := sha256.Sum256(swaggerYAML)
	if got := hex.EncodeToString(sum[:]); got != swaggerSHA256 {
		t.Errorf("v3-swagger.yml sha256 = %s, want %s (the file must not be edited)", got, swaggerSHA256)
	}
}

// fixed answers every request with one status and body.
func fixed(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

const (
	uuid1     = "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"
	goodQueue = `{"activity_id":"` + uuid1 + `","state":"initialized"}`
)

// TestRecorderCatchesViolations proves the recorder is not vacuous: a
// handler that breaks the spec in the ways the sandbox must not is caught,
// and the spec's known flaws are worked around rather than reported.
func TestRecorderCatchesViolations(t *testing.T) {
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		status  int
		ctype   string // response Content-Type; "" means application/json
		respond string
		want    string // in a problem the recorder must report; "" means none at all
	}{
		{"undocumented status", http.MethodPost, "/v3/activities/contacts_json_import",
			`{"import_data":[{"email":"a@example.com"}],"list_ids":["` + uuid1 + `"]}`, http.StatusAccepted, "", `{}`, "status is not supported"},
		{"wrong field type", http.MethodGet, "/v3/activities/" + uuid1, "", http.StatusOK, "",
			`{"activity_id":"` + uuid1 + `","percent_done":"half"}`, `"/percent_done": value must be an integer`},
		{"non-uuid id", http.MethodGet, "/v3/contact_lists", "", http.StatusOK, "",
			`{"lists":[{"list_id":"nope","name":"x"}]}`, `doesn't match the format "uuid"`},
		{"401 as array", http.MethodGet, "/v3/contacts", "", http.StatusUnauthorized, "",
			`[{"error_key":"unauthorized","error_message":"Unauthorized"}]`, "does not match AuthorizationErrorSchema"},
		{"400 as object", http.MethodGet, "/v3/contacts", "", http.StatusBadRequest, "",
			`{"error_key":"x","error_message":"y"}`, "does not match APIErrorSchema"},
		{"error body not JSON", http.MethodGet, "/v3/contacts", "", http.StatusInternalServerError, "",
			`oops`, "error body is not JSON"},
		{"wrong content type", http.MethodGet, "/v3/contact_lists", "", http.StatusOK, "text/plain",
			`{"lists":[]}`, `Content-Type "text/plain"`},
		{"request over maxLength", http.MethodPost, "/v3/activities/contacts_json_import",
			`{"import_data":[{"email":"` + strings.Repeat("a", 60) + `@example.com"}],"list_ids":["` + uuid1 + `"]}`,
			http.StatusCreated, "", goodQueue, "maximum string length is 50"},
		{"request without list_ids", http.MethodPost, "/v3/activities/contacts_json_import",
			`{"import_data":[{"email":"a@example.com"}]}`, http.StatusCreated, "", goodQueue, `property "list_ids" is missing`},
		{"no operation", http.MethodGet, "/v3/nowhere", "", http.StatusNotFound, "",
			`[{"error_key":"not_found","error_message":"no"}]`, "has no operation in the spec"},
		{"valid exchange", http.MethodPost, "/v3/activities/contacts_json_import",
			`{"import_data":[{"email":"a@example.com","cf:iata":"1"}],"list_ids":["` + uuid1 + `"]}`, http.StatusCreated, "", goodQueue, ""},
		// CC answers 429 on every route although the spec documents it only
		// on the import; only the body shape is checked.
		{"429 on an undocumented route", http.MethodGet, "/v3/contact_lists", "", http.StatusTooManyRequests, "",
			`{"error_key":"throttled","error_message":"Too Many Requests"}`, ""},
		{"429 as array", http.MethodGet, "/v3/contact_lists", "", http.StatusTooManyRequests, "",
			`[{"error_key":"throttled","error_message":"Too Many Requests"}]`, "does not match AuthorizationErrorSchema"},
		{"OAuth is not in the spec", http.MethodPost, "/oauth2/default/v1/token", "grant_type=x", http.StatusBadRequest, "",
			`{"error":"unsupported_grant_type"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &Recorder{spec: spec}
			h := rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ct := tt.ctype
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.respond)
			}))
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			got := rec.takeProblems()
			if tt.want == "" {
				if len(got) != 0 {
					t.Errorf("recorder problems %q, want none", got)
				}
				return
			}
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("recorder problems %q: want one containing %q", got, tt.want)
			}
		})
	}
}

// TestExpectInvalid covers the opt-out: a request marked invalid on purpose
// is not a problem, the verdict comes back in HeaderRequestError, the
// wrapped handler never sees the marker, and the response is still checked.
func TestExpectInvalid(t *testing.T) {
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, respond string
		status              int
		wantVerdict         string
		wantProblem         string
	}{
		{"rejected request", "/v3/contact_lists?limit=1001", `[{"error_key":"x","error_message":"y"}]`, 400, "true", ""},
		{"accepted request", "/v3/contact_lists?limit=1000", `{"lists":[]}`, 200, "false", ""},
		{"no operation", "/v3/nowhere", `[{"error_key":"x","error_message":"y"}]`, 404, "true", ""},
		// The spec puts its enum on the whole comma-separated string, so it
		// wrongly rejects two valid includes; tests mark such requests.
		{"comma list", "/v3/contacts?include=list_memberships,custom_fields", `{"contacts":[]}`, 200, "true", ""},
		{"bad response still caught", "/v3/contact_lists?limit=1001", `{"error_key":"x"}`, 400, "true", "does not match APIErrorSchema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &Recorder{spec: spec}
			var sawMarker bool
			h := rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawMarker = r.Header.Get(HeaderExpectInvalid) != ""
				fixed(tt.status, tt.respond).ServeHTTP(w, r)
			}))
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.Header.Set(HeaderExpectInvalid, "1")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if got := w.Header().Get(HeaderRequestError); got != tt.wantVerdict {
				t.Errorf("%s = %q, want %q", HeaderRequestError, got, tt.wantVerdict)
			}
			if sawMarker {
				t.Errorf("the wrapped handler saw %s", HeaderExpectInvalid)
			}
			if w.Code != tt.status || w.Body.String() != tt.respond {
				t.Errorf("passed on %d %q, want %d %q", w.Code, w.Body, tt.status, tt.respond)
			}
			got := rec.takeProblems()
			switch {
			case tt.wantProblem == "" && len(got) != 0:
				t.Errorf("recorder problems %q, want none", got)
			case tt.wantProblem != "" && !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tt.wantProblem) }):
				t.Errorf("recorder problems %q: want one containing %q", got, tt.wantProblem)
			}
		})
	}
}

// reportTB records what New reports instead of failing the real test.
type reportTB struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (r *reportTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *reportTB) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range args {
		r.errors = append(r.errors, a.(string))
	}
}

// TestNewReportsAtCleanup checks the wiring of New: nothing is reported
// while the test runs, and every problem is reported once at cleanup.
func TestNewReportsAtCleanup(t *testing.T) {
	tb := &reportTB{TB: t}
	rec := New(tb)
	ts := httptest.NewServer(rec.Wrap(fixed(http.StatusUnauthorized, `[{"error_key":"unauthorized","error_message":"no"}]`)))
	defer ts.Close()
	for range 2 {
		res, err := ts.Client().Get(ts.URL + "/v3/contact_lists")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d passed on, want 401", res.StatusCode)
		}
	}
	if len(tb.errors) != 0 {
		t.Fatalf("reported before cleanup: %q", tb.errors)
	}
	if len(tb.cleanups) != 1 {
		t.Fatalf("New registered %d cleanups, want 1", len(tb.cleanups))
	}
	tb.cleanups[0]()
	if len(tb.errors) != 2 || !strings.Contains(tb.errors[0], "does not match AuthorizationErrorSchema") {
		t.Errorf("reported %q, want two AuthorizationErrorSchema problems", tb.errors)
	}
}
