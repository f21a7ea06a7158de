package ccclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

const (
	// DefaultBaseURL is CC's production API root.
	DefaultBaseURL = "https://api.cc.email/v3"

	defaultTimeout   = 30 * time.Second
	defaultUserAgent = "hs2cc-ccclient"

	// maxErrorBody caps how much of an error response is read and kept.
	maxErrorBody = 64 << 10
	// maxResponseBody caps a success body; a 500-contact page is well under 1 MB.
	maxResponseBody = 32 << 20
	// maxErrorMessage caps the server text that APIError.Error repeats, so
	// that a verbose body cannot flood a log line.
	maxErrorMessage = 512
)

// ErrNotFound reports that CC has no such resource. A 404 *APIError matches
// it with errors.Is, and ContactListByName returns it wrapped when no list
// has the name.
var ErrNotFound = errors.New("ccclient: not found")

// TokenSource supplies the bearer access token for each API call.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenInvalidator is optionally implemented by a TokenSource. After a 401
// the client calls Invalidate(ctx, badToken), then Token again, and retries
// the call once with the new token. Concurrent calls may report the same
// bad token, so Invalidate should do nothing when the source has already
// moved past it. If Token then returns the same bad token, the client does
// not retry.
type TokenInvalidator interface {
	Invalidate(ctx context.Context, token string) error
}

// StaticToken is a TokenSource that always returns itself; it is meant for
// tests and development.
type StaticToken string

// Token returns t, or an error when t is empty.
func (t StaticToken) Token(context.Context) (string, error) {
	if t == "" {
		return "", errors.New("ccclient: empty static token")
	}
	return string(t), nil
}

// Observer is told about every HTTP exchange with CC (a 401 retry counts as
// a second exchange). pathPattern names the endpoint the way the API
// reference does, relative to the base URL, e.g. "/activities/{activity_id}".
// status is 0 when no response arrived. It is called from the goroutines
// that make calls, so it must be safe for concurrent use.
type Observer func(method, pathPattern string, status int, d time.Duration)

// Client talks to the CC v3 API. It is safe for concurrent use.
type Client struct {
	baseURL    *url.URL // always ends in "/"
	httpClient *http.Client
	ts         TokenSource
	userAgent  string
	observe    Observer
	limiter    Limiter
}

// Limiter paces calls to CC. Wait returns when one more call may be made, or
// an error (for instance a spent daily budget) that the call then returns
// without being sent.
type Limiter interface {
	Wait(ctx context.Context) error
}

// WithLimiter makes every HTTP exchange, a 401 retry included, wait for l
// first; CC counts each toward its per-second and daily limits.
func WithLimiter(l Limiter) Option {
	return func(c *Client) { c.limiter = l }
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client; nil keeps the default, which has a
// 30 s timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.httpClient = hc
		}
	}
}

// WithUserAgent sets the User-Agent header; empty keeps the default.
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// WithObserver registers fn to be told about every HTTP exchange, for
// example to count CC calls per endpoint against the daily quota.
func WithObserver(fn Observer) Option {
	return func(c *Client) { c.observe = fn }
}

// New returns a client for the API rooted at baseURL, e.g.
// "https://api.cc.email/v3" (a trailing slash is optional).
func New(baseURL string, ts TokenSource, opts ...Option) (*Client, error) {
	if ts == nil {
		return nil, errors.New("ccclient: new: nil token source")
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("ccclient: new: parse base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ccclient: new: base url %q must be absolute http(s)", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("ccclient: new: base url must not contain credentials")
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	c := &Client{
		baseURL:    u,
		httpClient: &http.Client{Timeout: defaultTimeout},
		ts:         ts,
		userAgent:  defaultUserAgent,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// newRequest builds a request for ref, which is either relative to the base
// URL (no leading slash, e.g. "contact_lists?limit=1000") or an absolute URL
// from linkURL. A non-nil body is JSON-encoded, unless it is already []byte;
// either way the request body is a bytes.Reader, so GetBody can replay it.
func (c *Client) newRequest(ctx context.Context, method, ref string, body any) (*http.Request, error) {
	u, err := c.baseURL.Parse(ref)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			if b, err = json.Marshal(body); err != nil {
				return nil, err
			}
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
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// linkURL turns a paging href from CC into an absolute URL on the API host.
// CC's links are relative and include "/v3" ("/v3/contact_lists?cursor=…");
// when the base URL has a prefix before "/v3" (a proxy or the sandbox), the
// prefix is kept. A link to another host is refused so that the bearer token
// is never sent there.
func (c *Client) linkURL(href string) (string, error) {
	u, err := url.Parse(href)
	if err != nil {
		return "", fmt.Errorf("parse link: %w", err)
	}
	if u.IsAbs() || u.Host != "" {
		if !strings.EqualFold(u.Host, c.baseURL.Host) || (u.Scheme != "" && u.Scheme != c.baseURL.Scheme) {
			return "", fmt.Errorf("link to foreign host %q refused", u.Host)
		}
		return c.baseURL.ResolveReference(u).String(), nil
	}
	if strings.HasPrefix(u.Path, "/") {
		root := strings.TrimSuffix(c.baseURL.Path, "/")
		if strings.HasSuffix(root, "/v3") && (u.Path == "/v3" || strings.HasPrefix(u.Path, "/v3/")) {
			u.Path = strings.TrimSuffix(root, "/v3") + u.Path
			u.RawPath = ""
		}
	}
	return c.baseURL.ResolveReference(u).String(), nil
}

// do sends req with a bearer token and decodes a 2xx JSON body into v (when
// v is non-nil). A non-2xx response becomes an *APIError. After a 401 it
// retries once with a fresh token if the TokenSource is a TokenInvalidator.
func (c *Client) do(req *http.Request, pattern string, v any) error {
	ctx := req.Context()
	// The slot comes before the token: a wait for the rate (several tasks
	// share four calls a second) must not age a short-lived token toward
	// its expiry before it is sent.
	if err := c.wait(ctx); err != nil {
		return err
	}
	tok, err := c.ts.Token(ctx)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	err = c.send(req, pattern, tok, v)
	apiErr, ok := err.(*APIError)
	if !ok || !apiErr.Unauthorized() {
		return err
	}
	inv, ok := c.ts.(TokenInvalidator)
	if !ok {
		return err
	}
	if ierr := inv.Invalidate(ctx, tok); ierr != nil {
		return fmt.Errorf("%w (invalidate token: %w)", err, ierr)
	}
	fresh, terr := c.ts.Token(ctx)
	if terr != nil {
		return fmt.Errorf("%w (token after invalidate: %w)", err, terr)
	}
	if fresh == tok {
		// The source has nothing newer; a retry would fail the same way
		// and spend a call from the daily quota.
		return err
	}
	retry := req.Clone(ctx)
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return fmt.Errorf("replay body: %w", err)
		}
	}
	if err := c.wait(ctx); err != nil {
		return err
	}
	return c.send(retry, pattern, fresh, v)
}

// wait takes a slot from the limiter, when there is one.
func (c *Client) wait(ctx context.Context) error {
	if c.limiter == nil {
		return nil
	}
	return c.limiter.Wait(ctx)
}

func (c *Client) send(req *http.Request, pattern, token string, v any) error {
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		c.report(req.Method, pattern, 0, start)
		return err
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := newAPIError(resp)
		apiErr.redact(token)
		c.report(req.Method, pattern, resp.StatusCode, start)
		return apiErr
	}
	var derr error
	if v != nil {
		derr = json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(v)
		if errors.Is(derr, io.EOF) {
			derr = nil // empty 2xx body: leave v as it is
		}
	}
	c.report(req.Method, pattern, resp.StatusCode, start)
	if derr != nil {
		return fmt.Errorf("decode %d response: %w", resp.StatusCode, derr)
	}
	return nil
}

func (c *Client) report(method, pattern string, status int, start time.Time) {
	if c.observe != nil {
		c.observe(method, pattern, status, time.Since(start))
	}
}

// APIError is a non-2xx answer from the CC API.
type APIError struct {
	StatusCode int
	// Key and Message come from the first error in the body: error_key and
	// error_message, or the OAuth error and error_description. Message is
	// the HTTP status text when the body has neither.
	Key, Message string
	// Errors holds every entry of an array body (CC's validation errors
	// come as several), or the single object.
	Errors []ErrorDetail
	// Body is the raw response body, at most 64 KiB of it.
	Body []byte
	// RequestID is CC's (AWS API Gateway's) x-amzn-RequestId header.
	RequestID string
}

// ErrorDetail is one entry of a CC error body.
type ErrorDetail struct {
	Key     string `json:"error_key"`
	Message string `json:"error_message"`
}

func newAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{
		StatusCode: resp.StatusCode,
		Body:       body,
		RequestID:  resp.Header.Get("x-amzn-RequestId"),
	}
	e.Errors = parseErrorBody(body)
	if len(e.Errors) > 0 {
		e.Key, e.Message = e.Errors[0].Key, e.Errors[0].Message
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// redact blanks out secret wherever the server echoed it, so that neither
// Error nor a logged Body can carry the access token.
func (e *APIError) redact(secret string) {
	if secret == "" {
		return
	}
	const mask = "[redacted]"
	e.Key = strings.ReplaceAll(e.Key, secret, mask)
	e.Message = strings.ReplaceAll(e.Message, secret, mask)
	for i := range e.Errors {
		e.Errors[i].Key = strings.ReplaceAll(e.Errors[i].Key, secret, mask)
		e.Errors[i].Message = strings.ReplaceAll(e.Errors[i].Message, secret, mask)
	}
	e.Body = bytes.ReplaceAll(e.Body, []byte(secret), []byte(mask))
	e.RequestID = strings.ReplaceAll(e.RequestID, secret, mask)
}

// wireError covers every error-object spelling CC and its gateway use.
type wireError struct {
	ErrorKey         string `json:"error_key"`
	ErrorMessage     string `json:"error_message"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Message          string `json:"message"` // AWS API Gateway's own errors
}

func (w wireError) detail() ErrorDetail {
	d := ErrorDetail{Key: w.ErrorKey, Message: w.ErrorMessage}
	if d.Key == "" {
		d.Key = w.Error
	}
	if d.Message == "" {
		d.Message = w.ErrorDescription
	}
	if d.Message == "" {
		d.Message = w.Message
	}
	return d
}

func parseErrorBody(body []byte) []ErrorDetail {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	var ws []wireError
	switch body[0] {
	case '[':
		if json.Unmarshal(body, &ws) != nil {
			return nil
		}
	case '{':
		var w wireError
		if json.Unmarshal(body, &w) != nil {
			return nil
		}
		ws = []wireError{w}
	default:
		return nil
	}
	var out []ErrorDetail
	for _, w := range ws {
		if d := w.detail(); d != (ErrorDetail{}) {
			out = append(out, d)
		}
	}
	return out
}

// Error describes the failure without the body, which may echo contact data.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cc api: %d", e.StatusCode)
	if e.Key != "" {
		b.WriteString(" ")
		b.WriteString(e.Key)
	}
	msgs := []string{e.Message}
	for _, d := range e.Errors[min(1, len(e.Errors)):] {
		if d.Message != "" {
			msgs = append(msgs, d.Message)
		} else if d.Key != "" {
			msgs = append(msgs, d.Key)
		}
	}
	if m := strings.Join(msgs, "; "); m != "" {
		if len(m) > maxErrorMessage {
			m = m[:maxErrorMessage] + "…"
		}
		b.WriteString(": ")
		b.WriteString(m)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Is lets errors.Is(err, ErrNotFound) match a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Throttled reports CC's per-second rate limit (429 "throttled"); waiting
// about a second is enough.
func (e *APIError) Throttled() bool {
	return e.StatusCode == http.StatusTooManyRequests && strings.EqualFold(e.Key, "throttled")
}

// QuotaExceeded reports CC's daily quota (429 "quota_exceeded"), which
// resets at 00:00 UTC.
func (e *APIError) QuotaExceeded() bool {
	return e.StatusCode == http.StatusTooManyRequests && strings.EqualFold(e.Key, "quota_exceeded")
}

// Unauthorized reports a 401: the access token is expired or invalid.
func (e *APIError) Unauthorized() bool { return e.StatusCode == http.StatusUnauthorized }

// Conflict reports a 409, e.g. a list name that already exists.
func (e *APIError) Conflict() bool { return e.StatusCode == http.StatusConflict }

// Transient reports a CC fault that passes by itself: the per-second
// throttle, a 5xx from the API or the token endpoint, a 429 from the token
// endpoint, or no answer at all (a network error, a timeout, a connection
// cut mid-answer). Asking again a little later is the remedy; nothing about
// the request is wrong. The daily quota and the queued-activities cap are
// not transient in this sense: they last minutes to hours. A cancelled
// context is the caller's decision, not a fault.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Throttled() || apiErr.StatusCode >= 500
	}
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe.Temporary()
	}
	// http.Client wraps every failure in a *url.Error, a bad certificate
	// or an unsupported scheme too, which no wait mends; what passes is a
	// timeout or a failure of the connection itself.
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// Temporary reports a 429 or 5xx, which a later attempt may not get.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}
