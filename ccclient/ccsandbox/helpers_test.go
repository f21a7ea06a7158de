package ccsandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox/ccspec"
)

// epoch is where every test clock starts: a weekday noon in UTC.
var epoch = time.Date(2026, 4, 28, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is one sandbox behind a real HTTP server, with a token and a clock.
type env struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	client *http.Client
	clock  *fakeClock
	token  string
}

// newEnv starts a sandbox whose every exchange is checked against CC's spec.
// The clock is frozen at epoch. Unless the test sets them, the API and token
// rate limits are off, because a frozen clock never refills a bucket; the
// limit tests turn them on explicitly.
func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	return startEnv(t, opts, true)
}

// newEnvNoSpec is newEnv without the spec check, for the throughput test,
// where validating a 4 MB body would measure kin-openapi instead.
func newEnvNoSpec(t *testing.T, opts Options) *env {
	t.Helper()
	return startEnv(t, opts, false)
}

func startEnv(t *testing.T, opts Options, spec bool) *env {
	t.Helper()
	clock := &fakeClock{t: epoch}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	if opts.TokenRateLimit == 0 {
		opts.TokenRateLimit = -1
	}
	srv := New(opts)
	var h http.Handler = srv
	if spec {
		h = ccspec.New(t).Wrap(srv)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	access, _ := srv.IssueToken("contact_data offline_access")
	// Each env has its own transport: httptest.Server.Close closes the idle
	// connections of http.DefaultTransport, which would break requests that
	// parallel tests have in flight on it.
	client := &http.Client{
		Transport:     ts.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &env{t: t, srv: srv, ts: ts, client: client, clock: clock, token: access}
}

// resp is a finished exchange.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v, failing the test if it is not JSON.
func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d body %q: %v", r.status, r.body, err)
	}
}

// specRejected reports what the spec recorder thought of a request sent
// with expectInvalid.
func (r resp) specRejected() bool {
	return r.header.Get(ccspec.HeaderRequestError) == "true"
}

// reqOption adjusts a request before it is sent.
type reqOption func(*http.Request)

// withToken replaces the bearer token; "" sends no Authorization header.
func withToken(tok string) reqOption {
	return func(r *http.Request) {
		if tok == "" {
			r.Header.Del("Authorization")
			return
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
}

// withContentType replaces the Content-Type.
func withContentType(ct string) reqOption {
	return func(r *http.Request) { r.Header.Set("Content-Type", ct) }
}

// expectInvalid tells the spec recorder that this request breaks the spec on
// purpose; it reports its verdict instead of failing the test.
func expectInvalid(r *http.Request) { r.Header.Set(ccspec.HeaderExpectInvalid, "1") }

// call sends an API request with the env's token. A string or []byte body is
// sent as is, anything else as JSON; either way as application/json.
func (e *env) call(method, path string, body any, opts ...reqOption) resp {
	e.t.Helper()
	return e.send(e.request(method, path, body, opts...))
}

// request builds the request call sends, for tests that send it themselves.
func (e *env) request(method, path string, body any, opts ...reqOption) *http.Request {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	for _, o := range opts {
		o(req)
	}
	return req
}

// send performs req without following redirects.
func (e *env) send(req *http.Request) resp {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// form posts form values to an OAuth endpoint, with Basic auth when user is
// not empty.
func (e *env) form(path string, v url.Values, user, pass string) resp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return e.send(req)
}

// refresh runs a refresh grant with Basic auth.
func (e *env) refresh(rt string) resp {
	e.t.Helper()
	return e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, DefaultClientID, DefaultClientSecret)
}

// wantStatus fails the test unless r has status want.
func wantStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body %s", r.status, want, r.body)
	}
}

// wantAPIError checks CC's array error body and returns its first key.
func wantAPIError(t *testing.T, r resp, status int) string {
	t.Helper()
	wantStatus(t, r, status)
	var errs []apiError
	r.decode(t, &errs)
	if len(errs) == 0 || errs[0].ErrorKey == "" || errs[0].ErrorMessage == "" {
		t.Fatalf("error body %s: want a non-empty array of {error_key, error_message}", r.body)
	}
	return errs[0].ErrorKey
}

// importBody builds a ContactsJsonImport.
func importBody(listIDs []string, rows ...map[string]any) map[string]any {
	if rows == nil {
		rows = []map[string]any{}
	}
	return map[string]any{"import_data": rows, "list_ids": listIDs}
}

// activityView is the part of an Activity the tests read.
type activityView struct {
	ActivityID     string         `json:"activity_id"`
	State          string         `json:"state"`
	CreatedAt      string         `json:"created_at"`
	StartedAt      string         `json:"started_at"`
	CompletedAt    string         `json:"completed_at"`
	PercentDone    int            `json:"percent_done"`
	ActivityErrors []string       `json:"activity_errors"`
	Status         map[string]int `json:"status"`
	Links          struct {
		Self struct {
			Href string `json:"href"`
		} `json:"self"`
	} `json:"_links"`
}

// postImport posts an import that must be accepted and returns its activity.
func (e *env) postImport(body any) activityView {
	e.t.Helper()
	r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", body)
	wantStatus(e.t, r, http.StatusCreated)
	var a activityView
	r.decode(e.t, &a)
	return a
}

// activity polls one activity.
func (e *env) activity(id string) activityView {
	e.t.Helper()
	r := e.call(http.MethodGet, "/v3/activities/"+id, nil)
	wantStatus(e.t, r, http.StatusOK)
	var a activityView
	r.decode(e.t, &a)
	return a
}

// importNow posts an import, moves the clock past ActivityDelay, and returns
// the completed activity.
func (e *env) importNow(body any) activityView {
	e.t.Helper()
	a := e.postImport(body)
	e.clock.Advance(e.srv.opts.ActivityDelay)
	got := e.activity(a.ActivityID)
	if got.State != stateCompleted {
		e.t.Fatalf("activity %s state %q after the delay, want completed", a.ActivityID, got.State)
	}
	return got
}

// contactByEmail returns the sandbox's view of one contact.
func (e *env) contactByEmail(email string) (SandboxContact, bool) {
	for _, c := range e.srv.Contacts() {
		if c.Email == email {
			return c, true
		}
	}
	return SandboxContact{}, false
}

// row is shorthand for one import row.
func row(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}
