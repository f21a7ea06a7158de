package handlers

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hs2cc/hs2cc/trace"
)

// Tracer tells one contact's story for /ops/trace; *trace.Tracer is one.
// With live it also asks CC for the contact, spending one call.
type Tracer interface {
	Trace(ctx context.Context, key string, live bool) (*trace.Story, error)
}

// maxTraceQuery bounds the search box: an email is at most 254 bytes.
const maxTraceQuery = 254

// tracePage is what the trace template renders.
type tracePage struct {
	Query string
	Story *trace.Story
	// LiveRefused says a "check CC now" came from another site, so CC was
	// not asked.
	LiveRefused bool
	// LiveLine says what CC holds now, when it was asked.
	LiveLine string
	Error    string
}

var traceTemplate = template.Must(template.New("trace").Funcs(template.FuncMap{
	"stamp": trace.Stamp,
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>hs2cc trace</title>
<style>` + opsCSS + `</style>
</head>
<body>
<h1>Where is this agent?</h1>
<nav><a href="/ops">Back to ops</a></nav>
` + traceForm + `
{{- with .Error}}<p class="bad">{{.}}</p>{{end}}
{{- with .Story}}
{{- if not .Found}}
<p>The bridge has never seen <code>{{.Query}}</code>.</p>
{{- with .Closest}}<p>Closest known emails:{{range .}} <a href="/ops/trace?q={{.}}">{{.}}</a>{{end}}</p>{{end}}
{{- else}}
<h2>The contact now</h2>
<table><tr><th>enrollment</th><th>email</th><th>HubSpot id</th><th>portal</th><th>version</th><th>status</th><th>lists</th></tr>
{{- range .Contacts}}
<tr><td class="n">{{.EnrollmentID}}</td><td>{{.Email}}</td><td><code>{{.HubSpotID}}</code></td><td class="n">{{.PortalID}}</td><td class="n">{{.Version}}</td><td>{{.Status}}{{with .StatusReason}}: {{.}}{{end}}</td><td>{{range $i, $l := .Lists}}{{if $i}}, {{end}}{{$l}}{{end}}</td></tr>
{{- end}}
</table>
<form method="get" action="/ops/trace"><input type="hidden" name="q" value="{{.Query}}"><input type="hidden" name="live" value="1"><button type="submit">Check CC now</button> <span class="muted">(one CC call from the daily budget)</span></form>
<h2>What happened, oldest first</h2>
<table><tr><th>when</th><th>what</th></tr>
{{- range .Events}}
<tr><td>{{stamp .At}}</td><td>{{.Text}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- with $.LiveLine}}
<h2>Constant Contact now</h2>
<p>{{.}}</p>
{{- end}}
{{- end}}
{{- if .LiveRefused}}<p class="bad">CC was not asked: the request came from another site.</p>{{end}}
</body>
</html>
`))

// traceForm is the search box, on /ops and /ops/trace alike. A GET form,
// so that a trace is a link that can be shared and changes nothing.
const traceForm = `<form method="get" action="/ops/trace"><label>Email or HubSpot id <input name="q" value="{{.Query}}" maxlength="254" required></label> <button type="submit">Trace</button></form>`

// handleTracePage answers /ops/trace?q=EMAIL|HUBSPOT_ID[&live=1] with the
// contact's story. Viewers may read it: it changes nothing, and the live
// check spends one CC call, which only a same-site request may ask for,
// so that another site cannot make an ops browser spend the budget.
func handleTracePage(cfg Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		page := tracePage{Query: strings.TrimSpace(c.QueryParam("q"))}
		live := c.QueryParam("live") == "1"
		if live && !sameSite(r) {
			live, page.LiveRefused = false, true
		}
		switch {
		case page.Query == "":
		case len(page.Query) > maxTraceQuery:
			page.Error = "That is longer than any email or HubSpot id."
		default:
			ctx, cancel := context.WithTimeout(r.Context(), opsTimeout+liveExtra(live))
			story, err := cfg.Trace.Trace(ctx, page.Query, live)
			cancel()
			if err != nil {
				cfg.Logger.Error("ops: trace failed", "err", err)
				page.Error = "The trace could not be read; see the log."
			} else {
				page.Story = story
				if story.Live != nil {
					lines := trace.Lines(story)
					page.LiveLine = lines[len(lines)-1]
				}
			}
		}
		var b bytes.Buffer
		if err := traceTemplate.Execute(&b, page); err != nil {
			return err
		}
		addCSP(c.Response().Header(), opsCSP)
		return c.HTMLBlob(http.StatusOK, b.Bytes())
	}
}

// liveExtra is the time a live check adds to the page's reads: the CC
// call, which waits for its slot of the shared rate.
func liveExtra(live bool) time.Duration {
	if live {
		return 15 * time.Second
	}
	return 0
}

// sameSite reports whether a browser says the request came from this
// site, or from no site (typed or bookmarked); a client that sends no
// Sec-Fetch-Site, such as curl, is taken at its word.
func sameSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
