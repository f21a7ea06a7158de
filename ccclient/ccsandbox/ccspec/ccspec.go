// Package ccspec checks HTTP traffic against Constant Contact's official v3
// API spec. It is for tests only: it imports testing and kin-openapi, and no
// production code may import it.
//
// It is a package, rather than a helper in one _test.go file, so that the
// sandbox's own tests, the client's tests against the sandbox and the
// end-to-end tests all validate against one spec loader and one set of
// workarounds for the spec's known flaws (shared/constant-contact/README.md).
//
// The spec, v3-swagger.yml, is CC's Swagger 2.0 file copied byte for byte
// and embedded here, so that it lives in one place and a test finds it from
// any working directory. It is converted to OpenAPI 3 once per test binary.
//
// Typical use wraps the sandbox:
//
//	sb := ccsandbox.New(ccsandbox.Options{})
//	ts := httptest.NewServer(ccspec.New(t).Wrap(sb))
//	t.Cleanup(ts.Close)
//
// Every exchange whose path starts with /v3/ is then checked: the request
// against its operation, the response status and body against the
// operation, and error bodies against APIErrorSchema or
// AuthorizationErrorSchema. Each violation fails the test when it ends.
// Other paths (the OAuth server, the sandbox's hooks) pass through
// unchecked, because the spec does not describe them. A handler may hijack
// the connection to answer nothing at all (the sandbox's dropped answers);
// only the request of such an exchange is checked.
//
// The spec's known flaws (shared/constant-contact/README.md) are handled
// here once: the uuid format, which kin-openapi ignores by default, is
// checked; security is not (bearer handling is tested on its own); 429 and
// 415, which CC sends on routes whose operations do not list them, are
// checked for their body only; error bodies, which the operations give no
// schema, are checked against CC's error schemas. The enum the spec puts on
// the whole of a comma-separated include, status or sms_status parameter
// rejects valid lists such as include=list_memberships,custom_fields; a
// test that sends one marks it with HeaderExpectInvalid.
package ccspec

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// Headers between a test and the recorder. Neither reaches the wrapped
// handler.
const (
	// HeaderExpectInvalid on a request tells the recorder that the request
	// breaks the spec on purpose (any non-empty value): a rejected request,
	// or one with no operation in the spec, is then not a problem. The
	// response is still checked.
	HeaderExpectInvalid = "X-Test-Spec-Expect-Invalid"
	// HeaderRequestError is set on the response to a request that carried
	// HeaderExpectInvalid: "true" if the spec rejected the request, "false"
	// if it accepted it, so the test can assert which.
	HeaderRequestError = "X-Test-Spec-Request-Error"
)

//go:embed v3-swagger.yml
var swaggerYAML []byte

// specHost is where the converted spec is served from; the recorder rewrites
// each request to it, so the router does not depend on the test server port.
const specHost = "http://sandbox.test"

// spec is CC's official spec, converted to OpenAPI 3.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

// loadSpec converts the embedded spec as the shared README describes. It
// runs once per process because converting 700 KB of YAML is slow, and it
// defines the uuid format validator inside the Once, before any validation
// reads kin-openapi's global format table (kin-openapi checks no format
// unless told to).
var loadSpec = sync.OnceValues(func() (*spec, error) {
	openapi3.DefineStringFormatValidator("uuid",
		openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`))
	var y any // openapi2.T unmarshals JSON only, so go YAML -> any -> JSON.
	if err := yaml.Unmarshal(swaggerYAML, &y); err != nil {
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
	dropZeroMaxItems(doc3)
	// The file has one invalid example (CustomField: "9A63BC" for an integer).
	if err := doc3.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("validate spec: %w", err)
	}
	doc3.Servers = openapi3.Servers{{URL: specHost + "/v3"}} // was https://api.cc.email/v3
	router, err := gorillamux.NewRouter(doc3)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &spec{doc: doc3, router: router}, nil
})

// Recorder validates the exchanges of the handlers it wraps and fails its
// test, when the test ends, with one error per violation. It is safe for
// concurrent use.
//
// Problems are reported in a t.Cleanup registered by New, so close any
// server that uses the wrapped handler before the test ends (httptest's
// Close waits for requests in flight; t.Cleanup(ts.Close) after New runs
// first, as does a defer). An exchange that finishes after the report is
// not reported.
type Recorder struct {
	spec *spec

	mu       sync.Mutex
	problems []string
}

// New returns a recorder that reports every violation it sees to t, at
// cleanup, with t.Error. It fails t at once if the spec cannot be loaded.
func New(t testing.TB) *Recorder {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatalf("ccspec: load CC spec: %v", err)
	}
	r := &Recorder{spec: s}
	t.Cleanup(func() {
		for _, p := range r.takeProblems() {
			t.Error("ccspec: " + p)
		}
	})
	return r
}

// takeProblems returns the problems seen so far and forgets them.
func (r *Recorder) takeProblems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.problems
	r.problems = nil
	return p
}

func (r *Recorder) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// Wrap returns h with every exchange checked. The response is buffered
// whole before it is passed on.
func (r *Recorder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			r.problem("read request body: %v", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		expectInvalid := req.Header.Get(HeaderExpectInvalid) != ""
		req.Header.Del(HeaderExpectInvalid)

		vreq := req.Clone(context.Background())
		vreq.Body = io.NopCloser(bytes.NewReader(body))
		vreq.URL, _ = vreq.URL.Parse(specHost + req.URL.RequestURI())
		vreq.Host = vreq.URL.Host
		vreq.RequestURI = ""
		route, params, findErr := r.spec.router.FindRoute(vreq)

		var in *openapi3filter.RequestValidationInput
		var reqErr error
		opts := &openapi3filter.Options{
			// The security schemes are OAuth2; bearer handling is tested
			// on its own.
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			IncludeResponseStatus: true,
		}
		if findErr == nil {
			in = &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
			reqErr = openapi3filter.ValidateRequest(context.Background(), in)
			if reqErr != nil && !expectInvalid {
				r.problem("spec rejects request %s %s: %v", req.Method, req.URL, reqErr)
			}
		} else if strings.HasPrefix(req.URL.Path, "/v3/") {
			reqErr = findErr
			if !expectInvalid {
				r.problem("request %s %s has no operation in the spec: %v", req.Method, req.URL.Path, findErr)
			}
		}

		rw := &hijackRecorder{ResponseRecorder: httptest.NewRecorder(), w: w}
		h.ServeHTTP(rw, req)
		if rw.hijacked {
			// The handler took the connection and answered nothing (the
			// sandbox's dropped answers), so there is no response to check
			// and none may be written.
			return
		}
		if in != nil {
			r.checkResponse(req, in, rw.Code, rw.Header(), rw.Body.Bytes())
		}
		for k, v := range rw.Header() {
			w.Header()[k] = v
		}
		if expectInvalid {
			w.Header().Set(HeaderRequestError, fmt.Sprint(reqErr != nil))
		}
		w.WriteHeader(rw.Code)
		_, _ = w.Write(rw.Body.Bytes())
	})
}

// hijackRecorder buffers a response like httptest.ResponseRecorder, and lets
// the handler take over the real connection, which the sandbox does to drop
// an answer, so that a test sees a dropped answer exactly as a client of
// `hs2cc dev` does.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	w        http.ResponseWriter
	hijacked bool
}

// Hijack hands over the connection of the real ResponseWriter.
func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.w).Hijack()
	if err == nil {
		h.hijacked = true
	}
	return conn, brw, err
}

// checkResponse validates one /v3 response.
func (r *Recorder) checkResponse(req *http.Request, in *openapi3filter.RequestValidationInput, status int, hdr http.Header, body []byte) {
	where := fmt.Sprintf("%s %s -> %d", req.Method, req.URL.Path, status)
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		r.problem("%s: Content-Type %q, want application/json", where, ct)
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
			r.problem("%s: spec rejects response: %v\nbody: %.500s", where, err, body)
		}
	}
	if status < 400 {
		return
	}
	// The operations give their error responses no schema, so they would
	// always pass; check them against CC's two error shapes directly.
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		r.problem("%s: error body is not JSON: %q", where, body)
		return
	}
	name := "APIErrorSchema"
	if status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests {
		name = "AuthorizationErrorSchema"
	}
	if err := r.spec.doc.Components.Schemas[name].Value.VisitJSON(v); err != nil {
		r.problem("%s: error body does not match %s: %v\nbody: %s", where, name, err, body)
	}
}

// dropZeroMaxItems removes every "maxItems: 0" from the spec. The file puts
// it on arrays whose descriptions allow up to 50 or 500 values (the
// ListActivityRemoveContacts ids among them), so taken literally it would
// refuse every valid request; no array in CC's API is meant to be empty.
// Only the bound 0 is dropped: every real bound is still checked.
func dropZeroMaxItems(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.MaxItems != nil && *s.MaxItems == 0 {
			s.MaxItems = nil
		}
		walk(s.Items)
		walk(s.Not)
		for _, p := range s.Properties {
			walk(p)
		}
		if s.AdditionalProperties.Schema != nil {
			walk(s.AdditionalProperties.Schema)
		}
		for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
			for _, r := range list {
				walk(r)
			}
		}
	}
	for _, ref := range doc.Components.Schemas {
		walk(ref)
	}
	for _, body := range doc.Components.RequestBodies {
		if body.Value != nil {
			for _, mt := range body.Value.Content {
				walk(mt.Schema)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for _, mt := range op.RequestBody.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}
