package handlers

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hs2cc/hs2cc/ccauth"

	"github.com/hs2cc/hs2cc/ccclient"
)

// Connector is the CC connection flow; *ccauth.Connector is one. Begin
// hands out a nonce for the starting browser; Complete wants it back.
type Connector interface {
	Begin(ctx context.Context) (authURL, nonce string, err error)
	Complete(ctx context.Context, state, nonce, code string) (*ccclient.Token, error)
}

// NonceCookie is the cookie that ties a started connection to the browser
// that started it.
const NonceCookie = "hs2cc_oauth_nonce"

// nonceCookie is the cookie's template for the public URL: sent back only
// to /oauth/ under the public path, never readable by script, sent on the
// top-level redirect back from CC (Lax) but not on other sites' requests,
// and over TLS only when the bridge is served over TLS.
func nonceCookie(publicURL string) http.Cookie {
	c := http.Cookie{Name: NonceCookie, Path: "/oauth/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		c.Path = strings.TrimRight(u.Path, "/") + "/oauth/"
		c.Secure = u.Scheme == "https"
	}
	return c
}

// sameSiteOnly refuses an /oauth/connect that a browser sent on behalf of
// another site (a link, an image, a redirect elsewhere): the browser adds
// the ops login to any request to this host, so a page elsewhere could
// otherwise start connections in the admin's browser and put a CC consent
// page before them that they might approve out of habit. A person typing
// the address or
// following the /ops link sends "none" or "same-origin"; a client without
// Fetch Metadata (the CLI, an old browser) sends nothing and is let in.
func sameSiteOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			return newError(http.StatusForbidden, CodeForbidden,
				"open /oauth/connect from /ops or by typing its address, not from a link on another site", nil)
		}
		return next(c)
	}
}

// noStore keeps the OAuth answers out of caches and keeps their URLs, whose
// query carries the single-use state and code, out of Referer headers.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set(echo.HeaderCacheControl, "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		return next(c)
	}
}

// handleConnect starts a connection, gives the browser the nonce the
// callback wants back, and sends it to CC's consent page. The URL is never
// logged: its state is what the callback trusts.
func handleConnect(cfg Config) echo.HandlerFunc {
	tmpl := nonceCookie(cfg.PublicURL)
	return func(c echo.Context) error {
		authURL, nonce, err := cfg.Connector.Begin(c.Request().Context())
		if err != nil {
			return unavailable("could not start the Constant Contact connection; try again", err)
		}
		cookie := tmpl
		cookie.Value = nonce
		cookie.MaxAge = int(ccauth.StateTTL / time.Second)
		c.SetCookie(&cookie)
		return c.Redirect(http.StatusFound, authURL)
	}
}

// maxShown bounds the text of an error shown on a callback page, since the
// error parameters come from whoever built the link.
const maxShown = 200

// callbackPage is what the callback's HTML page shows. Every field is
// escaped by html/template; none ever holds a token, a code or a state.
type callbackPage struct {
	Title   string
	Message string
	// ErrorCode and ErrorDescription are an OAuth error, shown verbatim.
	ErrorCode, ErrorDescription string
	// Expires is when the new access token expires; zero when unknown.
	Expires time.Time
	// Connected marks the success page, which shows Expires.
	Connected bool
	// Restart is the absolute or root-relative URL of /oauth/connect,
	// linked from every failure page.
	Restart string
}

var callbackTemplate = template.Must(template.New("callback").Funcs(template.FuncMap{
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"human":   func(t time.Time) string { return t.UTC().Format("2 January 2006 15:04:05 MST") },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} – hs2cc</title>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .ErrorCode}}
<p>Error code: <code>{{.ErrorCode}}</code>{{if .ErrorDescription}} ({{.ErrorDescription}}){{end}}</p>
{{- end}}
{{- if .Connected}}
{{- if .Expires.IsZero}}
<p>Constant Contact did not say when the access token expires; hs2cc renews it as needed.</p>
{{- else}}
<p>The access token expires at <time datetime="{{rfc3339 .Expires}}">{{human .Expires}}</time>; hs2cc renews it before then.</p>
{{- end}}
{{- else}}
<p><a href="{{.Restart}}">Start again at /oauth/connect</a>.</p>
{{- end}}
</body>
</html>
`))

// handleCallback finishes a connection when CC's redirect brings the browser
// back. It answers HTML, not JSON, because a person reads it.
func handleCallback(cfg Config) echo.HandlerFunc {
	restart := strings.TrimRight(cfg.PublicURL, "/") + "/oauth/connect"
	cookieTmpl := nonceCookie(cfg.PublicURL)
	log := cfg.Logger
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		// refuse logs why a callback was turned down, without the query's
		// state or code, which are secrets until spent.
		refuse := func(status int, reason string, page callbackPage, attrs ...slog.Attr) error {
			page.Restart = restart
			level := slog.LevelWarn
			if status >= 500 {
				level = slog.LevelError
			}
			attrs = append(attrs, slog.String("reason", reason), slog.Int("status", status),
				slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)))
			log.LogAttrs(ctx, level, "oauth callback refused", attrs...)
			return renderCallback(c, status, page)
		}

		q := c.QueryParams()
		if oerr := q.Get("error"); oerr != "" {
			code, desc := truncate(oerr), truncate(q.Get("error_description"))
			return refuse(http.StatusBadRequest, "consent refused", callbackPage{
				Title:     "Constant Contact was not connected",
				Message:   "The connection was refused on Constant Contact's side.",
				ErrorCode: code, ErrorDescription: desc,
			}, slog.String("oauth_error", code))
		}
		state, code := q.Get("state"), q.Get("code")
		if state == "" || code == "" {
			return refuse(http.StatusBadRequest, "missing code or state", callbackPage{
				Title:   "Constant Contact was not connected",
				Message: "This page is reached from Constant Contact's consent page, and this request lacked its code or state.",
			})
		}

		// A callback without the starting browser's nonce is refused before
		// the state is looked at, so it cannot spend it.
		var nonce string
		if ck, err := c.Cookie(NonceCookie); err == nil {
			nonce = ck.Value
		}
		if nonce == "" {
			return refuse(http.StatusForbidden, "no nonce cookie", wrongBrowserPage)
		}
		tok, err := cfg.Connector.Complete(ctx, state, nonce, code)
		if err != nil {
			f := completeFailure(err)
			return refuse(f.status, f.reason, f.page, f.attrs...)
		}
		// The nonce has done its work; the browser need not keep it.
		gone := cookieTmpl
		gone.MaxAge = -1
		c.SetCookie(&gone)

		page := callbackPage{Title: "Constant Contact is connected", Connected: true,
			Message: "hs2cc can now import contacts into Constant Contact."}
		// The connection itself is logged by the Connector's save; the
		// request log line records this answer.
		if tok != nil {
			page.Expires = tok.ExpiresAt
		}
		return renderCallback(c, http.StatusOK, page)
	}
}

// failure is how a callback is refused: its status, the reason logged, the
// page shown and any further log attributes.
type failure struct {
	status int
	reason string
	page   callbackPage
	attrs  []slog.Attr
}

// completeFailure maps an error of Connector.Complete to the callback's
// answer.
func completeFailure(err error) failure {
	var oe *ccclient.OAuthError
	switch {
	case errors.Is(err, ccauth.ErrWrongBrowser):
		return failure{status: http.StatusForbidden, reason: "nonce mismatch", page: wrongBrowserPage}
	case errors.Is(err, ccauth.ErrBadState):
		return failure{status: http.StatusBadRequest, reason: "bad state", page: callbackPage{
			Title:   "Constant Contact was not connected",
			Message: "This connection link expired or was already used; start again at /oauth/connect.",
		}}
	case errors.As(err, &oe) && !oe.Temporary():
		// CC turned the code down, e.g. invalid_grant for a code that
		// expired or was used; only a fresh consent can help.
		return failure{status: http.StatusBadRequest, reason: "code exchange refused", page: callbackPage{
			Title:     "Constant Contact was not connected",
			Message:   "Constant Contact refused the authorization code.",
			ErrorCode: truncate(oe.Code), ErrorDescription: truncate(oe.Description),
		}, attrs: []slog.Attr{slog.String("oauth_error", oe.Code)}}
	default:
		// Our fault or CC's momentary one (a 429 or 5xx from the token
		// endpoint), never the person's, so a 5xx. The state is spent
		// either way, so trying again means starting again.
		return failure{status: http.StatusServiceUnavailable, reason: "could not complete", page: callbackPage{
			Title:   "Constant Contact was not connected",
			Message: "Could not save the connection; try again by starting at /oauth/connect.",
		}, attrs: []slog.Attr{slog.Any("err", err)}}
	}
}

// wrongBrowserPage answers a callback from a browser that did not start the
// connection. Its most likely honest cause is a consent URL copied into
// another browser; the other is someone finishing an admin's connection
// with their own CC account, which this refusal exists to stop.
var wrongBrowserPage = callbackPage{
	Title: "Constant Contact was not connected",
	Message: "This browser did not start this connection. Finish it in the browser that opened /oauth/connect, " +
		"or start again here; a consent link copied to another browser or person does not work.",
}

// renderCallback renders into a buffer first, so that a template failure
// becomes a clean 500 instead of half a page.
func renderCallback(c echo.Context, status int, page callbackPage) error {
	var b bytes.Buffer
	if err := callbackTemplate.Execute(&b, page); err != nil {
		return err
	}
	// The page echoes text from the query; with nothing to load, a policy
	// of none means even a template slip could not run script or be framed.
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	return c.HTMLBlob(status, b.Bytes())
}

// truncate caps text shown from an OAuth error at maxShown runes.
func truncate(s string) string {
	if r := []rune(s); len(r) > maxShown {
		return string(r[:maxShown]) + "…"
	}
	return s
}
