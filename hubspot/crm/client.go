package crm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultBaseURL is HubSpot's production API root.
	DefaultBaseURL = "https://api.hubapi.com"

	defaultTimeout = 30 * time.Second
	userAgent      = "hs2cc-crm"

	// maxErrorBody caps how much of an error response is read and kept.
	maxErrorBody = 64 << 10
	// maxResponseBody caps a success body; 100 updated contacts are far
	// below it.
	maxResponseBody = 8 << 20
	// maxErrorMessage caps the server text that APIError.Error repeats.
	maxErrorMessage = 512
)

// Client talks to HubSpot's CRM v3 API with a private app token. It is safe
// for concurrent use.
type Client struct {
	base    *url.URL // always ends in "/"; nil when baseURL did not parse
	baseErr error
	token   string
	hc      *http.Client
	limiter Limiter
	observe Observer
}

// Limiter paces calls to HubSpot across every process of the bridge.
// Wait returns when one more call may be made, or an error that says why
// not; Pause is told when HubSpot answers 429, for every caller to wait d.
type Limiter interface {
	Wait(ctx context.Context) error
	Pause(ctx context.Context, d time.Duration, daily bool) error
}

// Observer is told about every HTTP exchange with HubSpot: the method, the
// endpoint as HubSpot's reference names it, the status (0 when no answer
// came) and how long it took.
type Observer func(method, endpoint string, status int, d time.Duration)

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithLimiter makes every call wait for l, and tells l of every 429.
func WithLimiter(l Limiter) ClientOption { return func(c *Client) { c.limiter = l } }

// WithObserver tells fn about every HTTP exchange, for metrics.
func WithObserver(fn Observer) ClientOption { return func(c *Client) { c.observe = fn } }

// New returns a client for the API rooted at baseURL (DefaultBaseURL in
// production). A nil hc gets a client with a 30 s timeout. A base URL that
// is not absolute http(s) makes every call fail with the reason, so that
// New keeps the plain signature callers share.
func New(baseURL, token string, hc *http.Client, opts ...ClientOption) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	c := &Client{token: token, hc: hc}
	for _, o := range opts {
		o(c)
	}
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		c.baseErr = fmt.Errorf("crm: parse base url: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		c.baseErr = fmt.Errorf("crm: base url %q must be absolute http(s)", u.Redacted())
	default:
		u.RawQuery, u.Fragment = "", ""
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		c.base = u
	}
	return c
}

// newRequest builds a request for ref, relative to the base URL without a
// leading slash. A non-nil body is JSON-encoded into a bytes.Reader.
func (c *Client) newRequest(ctx context.Context, method, ref string, body any) (*http.Request, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	u, err := c.base.Parse(ref)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Authorization", "Bearer "+c.token)
	return req, nil
}

// do sends req and decodes a 2xx JSON body into v (when v is non-nil). A
// non-2xx response becomes an *APIError. The status code is returned so
// that a caller can tell 200 from 207.
func (c *Client) do(req *http.Request, v any) (int, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(req.Context()); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if c.observe != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		c.observe(req.Method, endpointOf(req.URL.Path), status, time.Since(start))
	}
	if err != nil {
		return 0, redactErr(err, c.token)
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := newAPIError(resp, time.Now())
		if resp.StatusCode == http.StatusTooManyRequests && c.limiter != nil {
			// Every process waits, not only this caller: HubSpot counts
			// the app's calls together. A pause that cannot be recorded
			// still leaves this caller the error to wait on.
			_ = c.limiter.Pause(req.Context(), apiErr.RetryAfter, apiErr.daily())
		}
		return resp.StatusCode, apiErr
	}
	if v != nil {
		err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(v)
		if err != nil && !errors.Is(err, io.EOF) {
			return resp.StatusCode, fmt.Errorf("crm: decode %d response: %w", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// redactErr keeps the token out of a transport error's text; url.Error
// never holds headers, but a proxy error may echo them.
func redactErr(err error, token string) error {
	if token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "[redacted]"))
}

// APIError is a non-2xx answer from HubSpot.
type APIError struct {
	StatusCode int
	// Status, Message, CorrelationID and Category come from HubSpot's error
	// body; Message is the HTTP status text when the body has none.
	Status, Message, CorrelationID, Category string
	// PolicyName is the rate limit a 429 hit: TEN_SECONDLY_ROLLING or DAILY.
	PolicyName string
	// RetryAfter is how long a 429 asks the caller to wait (see
	// IsRateLimited); zero for other statuses.
	RetryAfter time.Duration
	// IDs are the object ids the body names in context.ids, its own or its
	// errors' (a missing contact, for instance).
	IDs []string
	// Errors are the entries of the body's errors array.
	Errors []ErrorDetail
}

// ErrorDetail is one entry of an error body's errors array, or of a 207's.
type ErrorDetail struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context"`
}

// errorBody is HubSpot's error shape.
type errorBody struct {
	Status        string              `json:"status"`
	Message       string              `json:"message"`
	CorrelationID string              `json:"correlationId"`
	Category      string              `json:"category"`
	PolicyName    string              `json:"policyName"`
	Errors        []ErrorDetail       `json:"errors"`
	Context       map[string][]string `json:"context"`
}

func newAPIError(resp *http.Response, now time.Time) *APIError {
	e := &APIError{StatusCode: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var b errorBody
	if json.Unmarshal(raw, &b) == nil {
		e.Status, e.Message, e.CorrelationID = b.Status, b.Message, b.CorrelationID
		e.Category, e.PolicyName, e.Errors = b.Category, b.PolicyName, b.Errors
		e.IDs = append(e.IDs, b.Context["ids"]...)
		for _, d := range b.Errors {
			e.IDs = append(e.IDs, d.Context["ids"]...)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		e.RetryAfter = retryAfter(resp.Header, e.daily(), now)
	}
	return e
}

// daily reports whether a 429 is for the daily limit.
func (e *APIError) daily() bool {
	return e.PolicyName == "DAILY" || strings.Contains(strings.ToUpper(e.Message), "DAILY")
}

func (e *APIError) Error() string {
	msg := e.Message
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage] + "…"
	}
	s := fmt.Sprintf("crm: %d", e.StatusCode)
	if e.Category != "" {
		s += " " + e.Category
	}
	s += ": " + msg
	if e.CorrelationID != "" {
		s += " (correlationId " + e.CorrelationID + ")"
	}
	return s
}

// retryAfter is how long a 429 asks the caller to wait. HubSpot may leave
// Retry-After out (unconfirmed); then a secondly limit is waited out for its
// whole interval (X-HubSpot-RateLimit-Interval-Milliseconds, 10 s by
// default), since the rolling window's end is not given, and a daily limit
// until the next midnight. The account's time zone is not known to the
// client, so midnight UTC stands in; callers say "tomorrow" either way.
func retryAfter(h http.Header, daily bool, now time.Time) time.Duration {
	if s := strings.TrimSpace(h.Get("Retry-After")); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(s); err == nil {
			return max(0, t.Sub(now))
		}
	}
	if daily {
		u := now.UTC()
		return time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC).Sub(u)
	}
	if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 10 * time.Second
}

// IsRateLimited reports whether err is a 429 from HubSpot, how long it asks
// the caller to wait and whether the daily limit was hit.
func IsRateLimited(err error) (retryAfter time.Duration, daily bool, ok bool) {
	var e *APIError
	if !errors.As(err, &e) || e.StatusCode != http.StatusTooManyRequests {
		return 0, false, false
	}
	return e.RetryAfter, e.daily(), true
}

// endpointOf names the endpoint of a request path as HubSpot's reference
// does, with a property's name or a contact's id replaced, so that metrics
// have few label values.
func endpointOf(path string) string {
	for _, prefix := range []string{"/crm/v3/properties/contacts/", "/crm/v3/objects/contacts/"} {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok || rest == "" || strings.Contains(rest, "/") || rest == "groups" {
			continue
		}
		return prefix + "{id}"
	}
	return path
}
