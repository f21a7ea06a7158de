package ccsandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"gopkg.in/yaml.v3"
)

// Headers between a test and the spec recorder. They never reach the sandbox.
const (
	hdrSpecExpectInvalid = "X-Test-Spec-Expect-Invalid"
	hdrSpecRequestError  = "X-Test-Spec-Request-Error"
)

// specHost is where the converted spec is served from; the recorder rewrites
// each request to it, so the router does not depend on the test server port.
const specHost = "http://sandbox.test"

// ccSpec is CC's official spec, converted to OpenAPI 3 once per test binary.
type ccSpec struct {
	doc    *openapi3.T
	router routers.Router
}

// loadSpec loads testdata/v3-swagger.yml as the shared README describes.
// It is loaded once because the conversion of 700 KB of YAML is slow, and it
// defines the uuid format validator inside the Once, before any validation
// reads kin-openapi's format table.
var loadSpec = sync.OnceValues(func() (*ccSpec, error) {
	openapi3.DefineStringFormatValidator("uuid",
		openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`))
	raw, err := os.ReadFile("testdata/v3-swagger.yml")
	if err != nil {
		return nil, err
	}
	var y any // openapi2.T unmarshals JSON only, so go YAML -> any -> JSON.
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	js, err := json.Marshal(y)
	if err != nil {
		return nil, fmt.Errorf("to json: %w", err)
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(js, &doc2); err != nil {
		return nil, fmt.Errorf("swagger 2: %w", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	// The file has one invalid example (CustomField: "9A63BC" for an integer).
	if err := doc3.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("validate spec: %w", err)
	}
	doc3.Servers = openapi3.Servers{{URL: specHost + "/v3"}}
	router, err := gorillamux.NewRouter(doc3)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &ccSpec{doc: doc3, router: router}, nil
})

// specRecorder wraps the sandbox and validates every exchange with a /v3
// route in the spec: the request against its operation (unless the test
// marked it invalid on purpose), the response status and body against the
// operation, and error bodies against APIErrorSchema or
// AuthorizationErrorSchema, which the operations do not reference.
type specRecorder struct {
	t    *testing.T
	spec *ccSpec

	mu       sync.Mutex
	problems []string
}

// newSpecRecorder returns a recorder that fails t, at cleanup, for every
// problem it saw.
func newSpecRecorder(t *testing.T) *specRecorder {
	t.Helper()
	spec, err := loadSpec()
	if err != nil {
		t.Fatalf("load CC spec: %v", err)
	}
	rec := &specRecorder{t: t, spec: spec}
	t.Cleanup(func() {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, p := range rec.problems {
			t.Error(p)
		}
	})
	return rec
}

func (rec *specRecorder) problem(format string, args ...any) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.problems = append(rec.problems, fmt.Sprintf(format, args...))
}

// wrap returns h with every exchange checked.
func (rec *specRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			rec.problem("read request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		expectInvalid := r.Header.Get(hdrSpecExpectInvalid) != ""
		r.Header.Del(hdrSpecExpectInvalid)

		vreq := r.Clone(context.Background())
		vreq.Body = io.NopCloser(bytes.NewReader(body))
		vreq.URL, _ = vreq.URL.Parse(specHost + r.URL.RequestURI())
		vreq.Host = vreq.URL.Host
		vreq.RequestURI = ""
		route, params, findErr := rec.spec.router.FindRoute(vreq)

		var in *openapi3filter.RequestValidationInput
		var reqErr error
		opts := &openapi3filter.Options{
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			IncludeResponseStatus: true,
		}
		if findErr == nil {
			in = &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
			reqErr = openapi3filter.ValidateRequest(context.Background(), in)
			if reqErr != nil && !expectInvalid {
				rec.problem("spec rejects request %s %s: %v", r.Method, r.URL, reqErr)
			}
		} else if strings.HasPrefix(r.URL.Path, "/v3/") && !expectInvalid {
			rec.problem("request %s %s has no operation in the spec: %v", r.Method, r.URL.Path, findErr)
		}

		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, r)
		if in != nil {
			rec.checkResponse(r, in, rw.Code, rw.Header(), rw.Body.Bytes())
		}
		for k, v := range rw.Header() {
			w.Header()[k] = v
		}
		if expectInvalid {
			w.Header().Set(hdrSpecRequestError, fmt.Sprint(reqErr != nil))
		}
		w.WriteHeader(rw.Code)
		_, _ = w.Write(rw.Body.Bytes())
	})
}

// checkResponse validates one /v3 response.
func (rec *specRecorder) checkResponse(r *http.Request, in *openapi3filter.RequestValidationInput, status int, hdr http.Header, body []byte) {
	where := fmt.Sprintf("%s %s -> %d", r.Method, r.URL.Path, status)
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		rec.problem("%s: Content-Type %q, want application/json", where, ct)
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusUnsupportedMediaType:
		// The spec documents 429 only on the import (for the queue cap) and
		// 415 only on a few POSTs, but CC's rate limits answer 429 on every
		// route (fact sheet §8) and CC answers 415 to any non-JSON body (§3).
		// Only the body is checked for these, below.
	default:
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: hdr, Options: in.Options}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			rec.problem("%s: spec rejects response: %v\nbody: %.500s", where, err, body)
		}
	}
	if status < 400 {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		rec.problem("%s: error body is not JSON: %q", where, body)
		return
	}
	name := "APIErrorSchema"
	if status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests {
		name = "AuthorizationErrorSchema"
	}
	if err := rec.spec.doc.Components.Schemas[name].Value.VisitJSON(v); err != nil {
		rec.problem("%s: error body does not match %s: %v\nbody: %s", where, name, err, body)
	}
}

// TestSpecRecorderCatchesViolations proves the recorder is not vacuous: a
// handler that breaks the spec in the ways the sandbox must not is caught.
func TestSpecRecorderCatchesViolations(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		status  int
		respond string
		want    string // in the problem the recorder must report
	}{
		{"undocumented status", http.MethodPost, "/v3/activities/contacts_json_import",
			`{"import_data":[{"email":"a@example.com"}],"list_ids":["04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"]}`, http.StatusAccepted, `{}`, "status is not supported"},
		{"wrong field type", http.MethodGet, "/v3/activities/04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", "", http.StatusOK,
			`{"activity_id":"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a","percent_done":"half"}`, `"/percent_done": value must be an integer`},
		{"non-uuid id", http.MethodGet, "/v3/contact_lists", "", http.StatusOK,
			`{"lists":[{"list_id":"nope","name":"x"}]}`, `doesn't match the format "uuid"`},
		{"401 as array", http.MethodGet, "/v3/contacts", "", http.StatusUnauthorized,
			`[{"error_key":"unauthorized","error_message":"Unauthorized"}]`, "does not match AuthorizationErrorSchema"},
		{"400 as object", http.MethodGet, "/v3/contacts", "", http.StatusBadRequest,
			`{"error_key":"x","error_message":"y"}`, "does not match APIErrorSchema"},
		{"request over maxLength", http.MethodPost, "/v3/activities/contacts_json_import",
			`{"import_data":[{"email":"` + strings.Repeat("a", 60) + `@example.com"}],"list_ids":["04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"]}`,
			http.StatusCreated, `{"activity_id":"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a","state":"initialized"}`, "maximum string length is 50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := loadSpec()
			if err != nil {
				t.Fatal(err)
			}
			rec := &specRecorder{t: t, spec: spec}
			h := rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.respond)
			}))
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if !slices.ContainsFunc(rec.problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("recorder problems %q: want one containing %q", rec.problems, tt.want)
			}
		})
	}
}
