package ccclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const testToken = "tok-SECRET-abc123"

// setup starts a server whose mux the test fills and a client rooted at
// its /v3, the way CC's base URL is.
func setup(t *testing.T, ts TokenSource, opts ...Option) (*Client, *http.ServeMux, string) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if ts == nil {
		ts = StaticToken(testToken)
	}
	c, err := New(srv.URL+"/v3", ts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, mux, srv.URL
}

func testHeader(t *testing.T, r *http.Request, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Errorf("header %s = %q, want %q", name, got, want)
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// swapSource hands out tokens[0], then tokens[1] after an Invalidate, and
// records what it was asked.
type swapSource struct {
	mu          sync.Mutex
	tokens      []string
	i           int
	invalidated []string
	invErr      error
	tokenErr    error
}

func (s *swapSource) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokenErr != nil {
		return "", s.tokenErr
	}
	return s.tokens[s.i], nil
}

func (s *swapSource) Invalidate(_ context.Context, tok string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, tok)
	if s.invErr != nil {
		return s.invErr
	}
	if s.i < len(s.tokens)-1 {
		s.i++
	}
	return nil
}

func TestNewBaseURL(t *testing.T) {
	tests := []struct {
		base, want string
	}{
		{"https://api.cc.email/v3", "https://api.cc.email/v3/contact_lists?limit=1000"},
		{"https://api.cc.email/v3/", "https://api.cc.email/v3/contact_lists?limit=1000"},
		{"http://127.0.0.1:8080/cc/v3", "http://127.0.0.1:8080/cc/v3/contact_lists?limit=1000"},
		{"https://api.cc.email/v3?x=1#frag", "https://api.cc.email/v3/contact_lists?limit=1000"},
	}
	for _, tt := range tests {
		c, err := New(tt.base, StaticToken("t"))
		if err != nil {
			t.Fatalf("New(%q): %v", tt.base, err)
		}
		req, err := c.newRequest(context.Background(), "GET", "contact_lists?limit=1000", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.URL.String(); got != tt.want {
			t.Errorf("New(%q): request URL %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, base := range []string{"", "api.cc.email/v3", "ftp://api.cc.email/v3", "https:///v3", "://bad", "https://user:pw@api.cc.email/v3"} {
		if _, err := New(base, StaticToken("t")); err == nil {
			t.Errorf("New(%q) succeeded, want error", base)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q) error leaks the password: %v", base, err)
		}
	}
	if _, err := New(DefaultBaseURL, nil); err == nil {
		t.Error("New with nil token source succeeded")
	}
}

func TestNewDefaultsAndOptions(t *testing.T) {
	c, err := New(DefaultBaseURL, StaticToken("t"))
	if err != nil {
		t.Fatal(err)
	}
	if c.httpClient == nil || c.httpClient.Timeout != 30*time.Second {
		t.Errorf("default http client timeout = %v, want 30s", c.httpClient.Timeout)
	}
	if c.httpClient == http.DefaultClient {
		t.Error("default client is http.DefaultClient, which has no timeout")
	}
	hc := &http.Client{Timeout: time.Second}
	c, err = New(DefaultBaseURL, StaticToken("t"), WithHTTPClient(hc), WithUserAgent("hs2cc-test/1"), WithHTTPClient(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.httpClient != hc {
		t.Error("WithHTTPClient not applied (or nil overrode it)")
	}
	if c.userAgent != "hs2cc-test/1" {
		t.Errorf("user agent %q", c.userAgent)
	}
}

func TestStaticTokenEmpty(t *testing.T) {
	if _, err := StaticToken("").Token(context.Background()); err == nil {
		t.Error("empty StaticToken gave no error")
	}
}

func TestRequestHeaders(t *testing.T) {
	c, mux, _ := setup(t, nil, WithUserAgent("hs2cc/test"))
	mux.HandleFunc("/v3/", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Authorization", "Bearer "+testToken)
		testHeader(t, r, "Accept", "application/json")
		testHeader(t, r, "User-Agent", "hs2cc/test")
		if r.Method == "GET" {
			testHeader(t, r, "Content-Type", "")
		} else {
			testHeader(t, r, "Content-Type", "application/json")
		}
		switch r.URL.Path {
		case "/v3/contact_lists":
			if r.Method == "POST" {
				writeJSON(w, 201, `{"list_id":"l1","name":"n"}`)
				return
			}
			writeJSON(w, 200, `{"lists":[]}`)
		case "/v3/activities/a1":
			writeJSON(w, 200, `{"activity_id":"a1"}`)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(500)
		}
	})
	ctx := context.Background()
	if _, err := c.GetActivity(ctx, "a1"); err != nil {
		t.Error(err)
	}
	if _, err := c.ContactLists(ctx); err != nil {
		t.Error(err)
	}
	if _, err := c.CreateContactList(ctx, "n", ""); err != nil {
		t.Error(err)
	}
}

func TestAPIErrorParsing(t *testing.T) {
	huge := `[{"error_key":"x","error_message":"` + strings.Repeat("a", 100<<10) + `"}]`
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantKey     string
		wantMessage string
		wantErrs    int
		wantBodyLen int // -1: len(body)
		unauth      bool
		throttled   bool
		quota       bool
		conflict    bool
		temporary   bool
		notFound    bool
		wantInError []string
	}{
		{
			name:   "array 400",
			status: 400,
			body: `[{"error_key":"contacts.api.validation.error","error_message":"list_ids must not be empty"},` +
				`{"error_key":"contacts.api.validation.error","error_message":"import_data must not be empty"}]`,
			wantKey: "contacts.api.validation.error", wantMessage: "list_ids must not be empty", wantErrs: 2, wantBodyLen: -1,
			wantInError: []string{"400", "contacts.api.validation.error", "list_ids must not be empty", "import_data must not be empty"},
		},
		{
			name:    "object 401 with WWW-Authenticate",
			status:  401,
			header:  map[string]string{"WWW-Authenticate": "Bearer realm=api.cc.email", "x-amzn-ErrorType": "UnauthorizedException", "x-amzn-RequestId": "req-401"},
			body:    `{"error_key":"unauthorized","error_message":"Unauthorized"}`,
			wantKey: "unauthorized", wantMessage: "Unauthorized", wantErrs: 1, wantBodyLen: 59, unauth: true,
			wantInError: []string{"401", "unauthorized", "req-401"},
		},
		{
			name: "429 throttled", status: 429,
			body:    `{"error_key":"throttled","error_message":"Too Many Requests"}`,
			wantKey: "throttled", wantMessage: "Too Many Requests", wantErrs: 1, wantBodyLen: -1, throttled: true, temporary: true,
		},
		{
			name: "429 quota_exceeded", status: 429,
			body:    `{"error_key":"quota_exceeded","error_message":"Limit Exceeded"}`,
			wantKey: "quota_exceeded", wantMessage: "Limit Exceeded", wantErrs: 1, wantBodyLen: -1, quota: true, temporary: true,
		},
		{
			name: "429 other key is neither", status: 429,
			body:    `{"error_key":"too_many_activities","error_message":"queue full"}`,
			wantKey: "too_many_activities", wantMessage: "queue full", wantErrs: 1, wantBodyLen: -1, temporary: true,
		},
		{
			name: "oauth shape", status: 400,
			body:    `{"error":"invalid_request","error_description":"bad"}`,
			wantKey: "invalid_request", wantMessage: "bad", wantErrs: 1, wantBodyLen: -1,
		},
		{
			name: "gateway message", status: 403,
			body:        `{"message":"Forbidden"}`,
			wantMessage: "Forbidden", wantErrs: 1, wantBodyLen: -1,
		},
		{
			name: "409 array", status: 409,
			body:    `[{"error_key":"contacts.api.conflict","error_message":"List name already exists"}]`,
			wantKey: "contacts.api.conflict", wantMessage: "List name already exists", wantErrs: 1, wantBodyLen: -1, conflict: true,
		},
		{
			name: "404 array", status: 404,
			body:    `[{"error_key":"not.found","error_message":"Resource not found for the activity_id provided"}]`,
			wantKey: "not.found", wantMessage: "Resource not found for the activity_id provided", wantErrs: 1, wantBodyLen: -1, notFound: true,
		},
		{
			name: "500 HTML", status: 500,
			header:      map[string]string{"Content-Type": "text/html"},
			body:        "<html><body><h1>502 Bad Gateway</h1></body></html>",
			wantMessage: "Internal Server Error", wantBodyLen: -1, temporary: true,
			wantInError: []string{"500", "Internal Server Error"},
		},
		{
			name: "503 empty", status: 503,
			wantMessage: "Service Unavailable", wantBodyLen: 0, temporary: true,
		},
		{
			name: "empty array", status: 400, body: `[]`,
			wantMessage: "Bad Request", wantBodyLen: -1,
		},
		{
			name: "huge body truncated", status: 400, body: huge,
			wantMessage: "Bad Request", wantBodyLen: 64 << 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, _ := setup(t, nil)
			mux.HandleFunc("GET /v3/activities/a1", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if w.Header().Get("Content-Type") == "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := c.GetActivity(context.Background(), "a1")
			var e *APIError
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if e.StatusCode != tt.status || e.Key != tt.wantKey || e.Message != tt.wantMessage {
				t.Errorf("got status %d key %q message %q; want %d %q %q", e.StatusCode, e.Key, e.Message, tt.status, tt.wantKey, tt.wantMessage)
			}
			if len(e.Errors) != tt.wantErrs {
				t.Errorf("len(Errors) = %d, want %d", len(e.Errors), tt.wantErrs)
			}
			wantLen := tt.wantBodyLen
			if wantLen == -1 {
				wantLen = len(tt.body)
			}
			if len(e.Body) != wantLen {
				t.Errorf("len(Body) = %d, want %d", len(e.Body), wantLen)
			}
			if want := tt.header["x-amzn-RequestId"]; e.RequestID != want {
				t.Errorf("RequestID = %q, want %q", e.RequestID, want)
			}
			if e.Unauthorized() != tt.unauth || e.Throttled() != tt.throttled || e.QuotaExceeded() != tt.quota ||
				e.Conflict() != tt.conflict || e.Temporary() != tt.temporary {
				t.Errorf("predicates unauth=%v throttled=%v quota=%v conflict=%v temporary=%v",
					e.Unauthorized(), e.Throttled(), e.QuotaExceeded(), e.Conflict(), e.Temporary())
			}
			if got := errors.Is(err, ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v", got, tt.notFound)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ccclient: get activity: cc api: ") {
				t.Errorf("error %q lacks the operation prefix", msg)
			}
			for _, s := range tt.wantInError {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q lacks %q", msg, s)
				}
			}
			if len(msg) > 1024 {
				t.Errorf("error string is %d bytes; the body leaked into it", len(msg))
			}
		})
	}
}

func TestUnauthorizedRetry(t *testing.T) {
	tests := []struct {
		name            string
		source          *swapSource
		statuses        []int // per call
		wantCalls       int
		wantErr         bool
		wantInvalidated []string
		wantTokens      []string // Authorization per call
	}{
		{
			name:            "401 then success",
			source:          &swapSource{tokens: []string{"old-token", "new-token"}},
			statuses:        []int{401, 201},
			wantCalls:       2,
			wantInvalidated: []string{"old-token"},
			wantTokens:      []string{"old-token", "new-token"},
		},
		{
			name:            "second 401 is returned",
			source:          &swapSource{tokens: []string{"old-token", "new-token"}},
			statuses:        []int{401, 401, 201},
			wantCalls:       2,
			wantErr:         true,
			wantInvalidated: []string{"old-token"},
			wantTokens:      []string{"old-token", "new-token"},
		},
		{
			name:            "same token after invalidate: no retry",
			source:          &swapSource{tokens: []string{"only-token"}},
			statuses:        []int{401, 201},
			wantCalls:       1,
			wantErr:         true,
			wantInvalidated: []string{"only-token"},
			wantTokens:      []string{"only-token"},
		},
		{
			name:            "invalidate fails: no retry",
			source:          &swapSource{tokens: []string{"old-token", "new-token"}, invErr: errors.New("redis down")},
			statuses:        []int{401, 201},
			wantCalls:       1,
			wantErr:         true,
			wantInvalidated: []string{"old-token"},
			wantTokens:      []string{"old-token"},
		},
		{
			name:       "500 is not retried",
			source:     &swapSource{tokens: []string{"old-token", "new-token"}},
			statuses:   []int{500, 201},
			wantCalls:  1,
			wantErr:    true,
			wantTokens: []string{"old-token"},
		},
		{
			name:       "429 is not retried",
			source:     &swapSource{tokens: []string{"old-token", "new-token"}},
			statuses:   []int{429, 201},
			wantCalls:  1,
			wantErr:    true,
			wantTokens: []string{"old-token"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, _ := setup(t, tt.source)
			var (
				mu     sync.Mutex
				calls  int
				tokens []string
				bodies []string
			)
			mux.HandleFunc("POST /v3/activities/contacts_json_import", func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				st := tt.statuses[calls]
				calls++
				tokens = append(tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				bodies = append(bodies, string(b))
				mu.Unlock()
				switch st {
				case 401:
					w.Header().Set("WWW-Authenticate", "Bearer realm=api.cc.email")
					writeJSON(w, 401, `{"error_key":"unauthorized","error_message":"Unauthorized"}`)
				case 201:
					writeJSON(w, 201, `{"activity_id":"act-1","state":"initialized"}`)
				default:
					writeJSON(w, st, `{"error_key":"x","error_message":"y"}`)
				}
			})
			req := &ImportRequest{
				ImportData: []ImportContact{{Email: "ann@example.com", FirstName: "Ann"}},
				ListIDs:    []string{"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"},
			}
			a, err := c.ImportContacts(context.Background(), req)
			mu.Lock()
			defer mu.Unlock()
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				var e *APIError
				if !errors.As(err, &e) || e.StatusCode != tt.statuses[tt.wantCalls-1] {
					t.Errorf("err = %v, want *APIError %d", err, tt.statuses[tt.wantCalls-1])
				}
				if tt.source.invErr != nil && !errors.Is(err, tt.source.invErr) {
					t.Errorf("err = %v does not wrap the invalidate error", err)
				}
			} else if err != nil || a.ActivityID != "act-1" {
				t.Fatalf("ImportContacts = %+v, %v", a, err)
			}
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if strings.Join(tokens, ",") != strings.Join(tt.wantTokens, ",") {
				t.Errorf("tokens sent = %v, want %v", tokens, tt.wantTokens)
			}
			if strings.Join(tt.source.invalidated, ",") != strings.Join(tt.wantInvalidated, ",") {
				t.Errorf("invalidated = %v, want %v", tt.source.invalidated, tt.wantInvalidated)
			}
			for i, b := range bodies {
				if b != bodies[0] || !strings.Contains(b, "ann@example.com") {
					t.Errorf("body of call %d = %q, want the same body replayed (%q)", i, b, bodies[0])
				}
			}
		})
	}
}

func TestUnauthorizedWithoutInvalidator(t *testing.T) {
	c, mux, _ := setup(t, nil)
	var calls atomic.Int32
	mux.HandleFunc("GET /v3/activities/a1", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeJSON(w, 401, `{"error_key":"unauthorized","error_message":"Unauthorized"}`)
	})
	_, err := c.GetActivity(context.Background(), "a1")
	var e *APIError
	if !errors.As(err, &e) || !e.Unauthorized() {
		t.Fatalf("err = %v, want 401 *APIError", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

func TestTokenSourceError(t *testing.T) {
	src := &swapSource{tokens: []string{"x"}, tokenErr: errors.New("no token stored")}
	c, mux, _ := setup(t, src)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s", r.URL)
	})
	_, err := c.GetActivity(context.Background(), "a1")
	if !errors.Is(err, src.tokenErr) {
		t.Fatalf("err = %v, want wrapped token error", err)
	}
	if !strings.HasPrefix(err.Error(), "ccclient: get activity: token: ") {
		t.Errorf("err = %q", err)
	}
}

func TestNoTokenInErrors(t *testing.T) {
	c, mux, base := setup(t, &swapSource{tokens: []string{testToken, testToken + "-2"}})
	echo := func(w http.ResponseWriter, r *http.Request, status int) {
		// A hostile or buggy server echoing the request headers.
		writeJSON(w, status, `[{"error_key":"echo","error_message":"`+r.Header.Get("Authorization")+`"}]`)
	}
	mux.HandleFunc("GET /v3/activities/a401", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
	})
	mux.HandleFunc("GET /v3/activities/a400", func(w http.ResponseWriter, r *http.Request) { echo(w, r, 400) })
	mux.HandleFunc("GET /v3/activities/bad-json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"activity_id":`+r.Header.Get("Authorization"))
	})
	ctx := context.Background()
	var errs []error
	for _, id := range []string{"a401", "a400", "bad-json"} {
		_, err := c.GetActivity(ctx, id)
		errs = append(errs, err)
	}
	// Transport failure: the server is gone.
	dead, err := New(base+"/nowhere/v3", StaticToken(testToken), WithHTTPClient(&http.Client{
		Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") }),
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = dead.ImportContacts(ctx, &ImportRequest{ImportData: []ImportContact{{Email: "a@b.c"}}, ListIDs: []string{"l"}})
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("case %d: error string contains the token: %q", i, err)
		}
		var e *APIError
		if errors.As(err, &e) && bytes.Contains(e.Body, []byte("SECRET")) {
			t.Errorf("case %d: APIError.Body contains the token: %q", i, e.Body)
		}
	}
	// The echo case must still carry the server's message, masked.
	if !strings.Contains(errs[1].Error(), "Bearer [redacted]") {
		t.Errorf("echo error = %q, want the masked message", errs[1])
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestObserver(t *testing.T) {
	type obs struct {
		method, pattern string
		status          int
	}
	var (
		mu  sync.Mutex
		got []obs
	)
	src := &swapSource{tokens: []string{"t1", "t2"}}
	c, mux, _ := setup(t, src, WithObserver(func(method, pattern string, status int, d time.Duration) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		mu.Lock()
		got = append(got, obs{method, pattern, status})
		mu.Unlock()
	}))
	var first atomic.Bool
	first.Store(true)
	mux.HandleFunc("GET /v3/activities/{id}", func(w http.ResponseWriter, r *http.Request) {
		if first.Swap(false) {
			writeJSON(w, 401, `{"error_key":"unauthorized","error_message":"Unauthorized"}`)
			return
		}
		writeJSON(w, 200, `{"activity_id":"`+r.PathValue("id")+`"}`)
	})
	mux.HandleFunc("GET /v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"lists":[]}`)
	})
	ctx := context.Background()
	if _, err := c.GetActivity(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContactLists(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []obs{
		{"GET", "/activities/{activity_id}", 401},
		{"GET", "/activities/{activity_id}", 200},
		{"GET", "/contact_lists", 200},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("observation %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestContextCancel(t *testing.T) {
	c, mux, _ := setup(t, nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux.HandleFunc("GET /v3/activities/a1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetActivity(ctx, "a1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestLinkURL(t *testing.T) {
	tests := []struct {
		base, href, want string
		wantErr          bool
	}{
		{"https://api.cc.email/v3", "/v3/contact_lists?cursor=abc", "https://api.cc.email/v3/contact_lists?cursor=abc", false},
		{"http://127.0.0.1:9/sandbox/v3/", "/v3/contacts?cursor=x%3D", "http://127.0.0.1:9/sandbox/v3/contacts?cursor=x%3D", false},
		{"http://127.0.0.1:9/", "/v3/contacts?cursor=1", "http://127.0.0.1:9/v3/contacts?cursor=1", false},
		{"https://api.cc.email/v3", "contact_lists?cursor=2", "https://api.cc.email/v3/contact_lists?cursor=2", false},
		{"https://api.cc.email/v3", "https://api.cc.email/v3/contacts?cursor=3", "https://api.cc.email/v3/contacts?cursor=3", false},
		{"https://api.cc.email/v3", "https://evil.example/v3/contacts", "", true},
		{"https://api.cc.email/v3", "//evil.example/v3/contacts", "", true},
		{"https://api.cc.email/v3", "http://api.cc.email/v3/contacts", "", true},
	}
	for _, tt := range tests {
		c, err := New(tt.base, StaticToken("t"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.linkURL(tt.href)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("linkURL(%q) on %q = %q, %v; want %q, err %v", tt.href, tt.base, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEmptySuccessBody(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("POST /v3/activities/contacts_json_import", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
	})
	_, err := c.ImportContacts(context.Background(), &ImportRequest{ImportData: []ImportContact{{Email: "a@b.c"}}, ListIDs: []string{"l"}})
	if err == nil || !strings.Contains(err.Error(), "no activity_id") {
		t.Errorf("err = %v, want a missing activity_id error", err)
	}
}

// TestTransient: the faults worth asking again about a little later are
// CC's throttle, its 5xx, the token endpoint's 429 and 5xx, and no answer
// at all; a request CC refuses for what it is, the daily quota, and a
// cancelled context are not, however they are wrapped on the way up.
func TestTransient(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("ccclient: get activity: %w", err) }
	dial := &url.Error{Op: "Post", URL: "https://api.cc.email/v3/activities/contacts_json_import",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"throttled 429", &APIError{StatusCode: 429, Key: "throttled"}, true},
		{"throttled 429, wrapped", wrap(&APIError{StatusCode: 429, Key: "throttled"}), true},
		{"quota_exceeded 429", &APIError{StatusCode: 429, Key: "quota_exceeded"}, false},
		{"quota_exceeded 429, wrapped", wrap(&APIError{StatusCode: 429, Key: "quota_exceeded"}), false},
		{"500", &APIError{StatusCode: 500}, true},
		{"503, wrapped", wrap(&APIError{StatusCode: 503, Message: "Service Unavailable"}), true},
		{"400", &APIError{StatusCode: 400, Key: "contacts.api.validation.error"}, false},
		{"401", wrap(&APIError{StatusCode: 401, Key: "unauthorized"}), false},
		{"404", wrap(&APIError{StatusCode: 404, Key: "not.found"}), false},
		{"oauth 429", fmt.Errorf("ccclient: oauth refresh: %w", &OAuthError{StatusCode: 429}), true},
		{"oauth 503", fmt.Errorf("ccclient: oauth refresh: %w", &OAuthError{StatusCode: 503}), true},
		{"oauth invalid_grant 400", fmt.Errorf("ccclient: oauth refresh: %w", &OAuthError{StatusCode: 400, Code: "invalid_grant"}), false},
		{"a dial error", dial, true},
		{"a dial error, wrapped", wrap(dial), true},
		{"a connection cut mid-answer", wrap(fmt.Errorf("decode 200 response: %w", io.ErrUnexpectedEOF)), true},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF, true},
		{"context.Canceled", context.Canceled, false},
		{"context.Canceled in a *url.Error", wrap(&url.Error{Op: "Get", URL: "https://api.cc.email/v3/contact_lists", Err: context.Canceled}), false},
		{"a timeout", wrap(&url.Error{Op: "Get", URL: "https://api.cc.email/v3/contact_lists", Err: context.DeadlineExceeded}), true},
		{"a connection reset", wrap(&url.Error{Op: "Post", URL: "https://api.cc.email/v3/x", Err: syscall.ECONNRESET}), true},
		// No wait mends a certificate the bridge does not trust or a bad
		// URL, so they are failures a person must see, not waits.
		{"an untrusted certificate", wrap(&url.Error{Op: "Get", URL: "https://api.cc.email/v3/contact_lists",
			Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}), false},
		{"an unsupported scheme", &url.Error{Op: "Get", URL: "ftp2://x/", Err: errors.New(`unsupported protocol scheme "ftp2"`)}, false},
		{"nil", nil, false},
		{"a plain error", errors.New("something else"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Transient(tt.err); got != tt.want {
				t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// Compile-time checks of the public shapes other packages rely on.
var (
	_ TokenSource = StaticToken("")
	_ error       = (*APIError)(nil)
	_ error       = (*OAuthError)(nil)
	_             = json.Marshaler(ImportContact{})
)
