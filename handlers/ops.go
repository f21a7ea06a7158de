package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hs2cc/hs2cc/store"
)

// OpsData is what /ops and /ops/status.json read. *store.DB has every
// method but OldestUnimported, which cmd adds.
type OpsData interface {
	// CountEnrollments returns how many enrollments are in each status.
	CountEnrollments(ctx context.Context) (map[string]int, error)
	// OldestUnimported returns the enrollment that has waited longest to
	// reach CC (pending, importing or failed), or nil when none waits.
	OldestUnimported(ctx context.Context) (*OldestEnrollment, error)
	// RecentImports returns the newest CC imports first.
	RecentImports(ctx context.Context, limit int) ([]*store.Import, error)
	// TokenState returns the CC token's state, store.ErrNotFound before the
	// first connection. It never holds a token.
	TokenState(ctx context.Context) (*store.TokenState, error)
	// ListAttention returns the states that stop work until a person acts,
	// such as a CC list the rules name that does not exist.
	ListAttention(ctx context.Context) ([]*store.Attention, error)
	// CountWaitingFor counts the enrollments not yet imported that are
	// bound for the CC list named list.
	CountWaitingFor(ctx context.Context, list string) (int, error)
	// TooLargeSince counts the webhook bodies refused for their size since
	// a time and names the newest.
	TooLargeSince(ctx context.Context, since time.Time) (store.TooLargeSummary, error)
	// ReceivedByHour and ImportedByHour count the enrollments received
	// (their current version) and imported in each of hours UTC hours from
	// the hour of from, zeros included; ImportedByHour's buckets also hold
	// the earliest receipt among each hour's imports.
	ReceivedByHour(ctx context.Context, from time.Time, hours int) ([]store.HourBucket, error)
	ImportedByHour(ctx context.Context, from time.Time, hours int) ([]store.HourBucket, error)
}

// OldestEnrollment names the enrollment that has waited longest.
type OldestEnrollment struct {
	ID     int64
	Status string
	// Since is when the version that waits was received.
	Since time.Time
}

// CCBudget is today's count of CC calls against the daily budget;
// *store.CCLimits is one.
type CCBudget interface {
	Used(ctx context.Context) (int, error)
	Budget() int
	// CallsByHour counts the CC calls made in each of hours UTC hours from
	// the hour of from.
	CallsByHour(ctx context.Context, from time.Time, hours int) ([]int, error)
}

// QuarantineSizer reports how much the quarantine holds, and how many
// refused requests it did not keep for not being shaped like HubSpot's.
type QuarantineSizer interface {
	QuarantineSize(ctx context.Context) (rows int, bytes int64, err error)
	UnshapedCounts(ctx context.Context) ([]store.UnshapedCount, error)
}

// recentImports is how many imports /ops lists.
const recentImports = 20

// tooLargeWindow is how far back /ops counts the webhook bodies refused for
// their size: HubSpot never sends them again, so each one is a contact to
// have sent again once the limit is raised, and a week spans a weekend.
const tooLargeWindow = 7 * 24 * time.Hour

// opsTimeout bounds the reads of one /ops answer, so that a database that
// hangs gives a page of "unavailable" rather than no page.
const opsTimeout = 5 * time.Second

// opsReport is what /ops shows and /ops/status.json returns. A section that
// could not be read is left out and named in Errors; the cause goes to the
// log, not to the page.
type opsReport struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Attention lists what stops work until a person acts, first on the
	// page: CC not connected, a missing list. Empty when all is well.
	Attention        []attentionReport `json:"attention"`
	Enrollments      map[string]int    `json:"enrollments,omitempty"`
	OldestUnimported *oldestReport     `json:"oldest_unimported"`
	Imports          []importReport    `json:"recent_imports"`
	CCCalls          *ccCallsReport    `json:"cc_calls"`
	Token            *tokenReport      `json:"cc_token"`
	Quarantine       *quarantineReport `json:"quarantine"`
	TooLarge         *tooLargeReport   `json:"too_large"`
	Hourly           *hourlyReport     `json:"hourly"`
	Reconcile        *reconcileReport  `json:"reconcile"`
	Writeback        *writebackReport  `json:"hubspot_writeback"`
	// Readiness is each check of /readyz with the detail of a failure,
	// which /readyz itself does not show.
	Readiness []checkResult     `json:"readiness"`
	Errors    map[string]string `json:"errors,omitempty"`
}

// attentionReport is one state that stops work: its kind (missing_list,
// cc_not_connected, cc_needs_reconnect), its subject, what to do, since
// when, and how many enrollments wait on it where that is known.
type attentionReport struct {
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail"`
	Since   time.Time `json:"since,omitzero"`
	Waiting *int      `json:"waiting,omitempty"`
}

// Attention kinds /ops adds from the token's state to the stored ones.
const (
	attentionNotConnected   = "cc_not_connected"
	attentionNeedsReconnect = "cc_needs_reconnect"
)

type oldestReport struct {
	ID         int64     `json:"id"`
	Status     string    `json:"status"`
	Since      time.Time `json:"since"`
	AgeSeconds int64     `json:"age_seconds"`
}

type importReport struct {
	ID                   int64     `json:"id"`
	CreatedAt            time.Time `json:"created_at"`
	ActivityID           string    `json:"activity_id"`
	State                string    `json:"state"`
	ContactCount         int       `json:"contact_count"`
	PersonCount          int       `json:"person_count"`
	ErrorCount           int       `json:"error_count"`
	CannotAddToListCount int       `json:"cannot_add_to_list_count"`
	FirstError           string    `json:"first_activity_error,omitempty"`
}

type ccCallsReport struct {
	Used   int `json:"used"`
	Budget int `json:"budget"`
}

// tokenReport is the token's state; Status is "not_connected" before the
// first connection, when the times are absent.
type tokenReport struct {
	Status           string     `json:"status"`
	Reason           string     `json:"reason,omitempty"`
	StatusAt         *time.Time `json:"status_at,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds,omitempty"`
	ConnectedAt      *time.Time `json:"connected_at,omitempty"`
	RefreshedAt      *time.Time `json:"refreshed_at,omitempty"`
}

// quarantineReport is what the quarantine holds, and, by reason, the
// refused requests counted instead of kept (at most one entry per reason
// CheckShape gives).
type quarantineReport struct {
	Rows     int              `json:"rows"`
	Bytes    int64            `json:"bytes"`
	Unshaped []unshapedReport `json:"unshaped"`
}

type unshapedReport struct {
	Reason    string    `json:"reason"`
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// tooLargeReport counts the webhook bodies answered 413 since Since and
// describes the newest of them; Newest is null when there was none.
type tooLargeReport struct {
	Since  time.Time       `json:"since"`
	Count  int             `json:"count"`
	Newest *tooLargeNewest `json:"newest"`
}

// tooLargeNewest is one body refused for its size: when, the bytes that
// arrived (a lower bound when AtLeast) and the Content-Length it declared,
// null when it declared none.
type tooLargeNewest struct {
	DeliveryID    int64     `json:"delivery_id"`
	ReceivedAt    time.Time `json:"received_at"`
	BodyBytes     int64     `json:"body_bytes"`
	AtLeast       bool      `json:"at_least"`
	DeclaredBytes *int64    `json:"declared_bytes"`
}

// enrollmentStatuses orders the statuses as a row moves through them.
var enrollmentStatuses = []string{store.StatusPending, store.StatusImporting, store.StatusImported,
	store.StatusFailed, store.StatusRejected}

// collectOps reads every figure. Each section fails on its own, so that a
// Redis outage still leaves the MySQL figures on the page.
func collectOps(ctx context.Context, cfg Config) opsReport {
	ctx, cancel := context.WithTimeout(ctx, opsTimeout)
	defer cancel()
	now := cfg.now()
	c := &opsCollector{ctx: ctx, cfg: cfg, now: now, r: opsReport{GeneratedAt: now.UTC(), Attention: []attentionReport{}}}
	for _, section := range []func(){c.enrollments, c.imports, c.ccCalls, c.token, c.attention, c.quarantine, c.tooLarge, c.hourly, c.reconcile, c.writeback, c.readiness} {
		section()
	}
	return c.r
}

// opsCollector reads the figures of one /ops answer, section by section.
type opsCollector struct {
	ctx context.Context
	cfg Config
	now time.Time
	r   opsReport
}

// fail leaves a section out and names it; the cause goes to the log only.
func (c *opsCollector) fail(section string, err error) {
	if c.r.Errors == nil {
		c.r.Errors = map[string]string{}
	}
	c.r.Errors[section] = "unavailable"
	c.cfg.Logger.Error("ops: could not read a figure", "section", section, "err", err)
}

func (c *opsCollector) enrollments() {
	if counts, err := c.cfg.Ops.CountEnrollments(c.ctx); err != nil {
		c.fail("enrollments", err)
	} else {
		c.r.Enrollments = map[string]int{}
		for _, s := range enrollmentStatuses {
			c.r.Enrollments[s] = 0
		}
		for s, n := range counts {
			c.r.Enrollments[s] = n
		}
	}
	if o, err := c.cfg.Ops.OldestUnimported(c.ctx); err != nil {
		c.fail("oldest_unimported", err)
	} else if o != nil {
		c.r.OldestUnimported = &oldestReport{ID: o.ID, Status: o.Status, Since: o.Since.UTC(),
			AgeSeconds: int64(c.now.Sub(o.Since).Seconds())}
	}
}

func (c *opsCollector) imports() {
	c.r.Imports = []importReport{}
	imps, err := c.cfg.Ops.RecentImports(c.ctx, recentImports)
	if err != nil {
		c.fail("recent_imports", err)
		return
	}
	for _, imp := range imps {
		ir := importReport{ID: imp.ID, CreatedAt: imp.CreatedAt.UTC(), ActivityID: imp.ActivityID, State: imp.State,
			ContactCount: imp.ContactCount, PersonCount: imp.PersonCount, ErrorCount: imp.ErrorCount,
			CannotAddToListCount: imp.CannotAddToListCount}
		if len(imp.ActivityErrors) > 0 {
			ir.FirstError = truncate(imp.ActivityErrors[0])
		}
		c.r.Imports = append(c.r.Imports, ir)
	}
}

func (c *opsCollector) ccCalls() {
	if c.cfg.CCBudget == nil {
		return
	}
	if used, err := c.cfg.CCBudget.Used(c.ctx); err != nil {
		c.fail("cc_calls", err)
	} else {
		c.r.CCCalls = &ccCallsReport{Used: used, Budget: c.cfg.CCBudget.Budget()}
	}
}

// token reports the CC connection, and puts a connection that stops work
// (none yet, or one CC refused) first among what needs attention.
func (c *opsCollector) token() {
	st, err := c.cfg.Ops.TokenState(c.ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.r.Token = &tokenReport{Status: "not_connected"}
		c.r.Attention = append(c.r.Attention, attentionReport{Kind: attentionNotConnected, Subject: "Constant Contact",
			Detail: "not connected: connect it at /oauth/connect or with `hs2cc connect`; enrollments wait until then"})
		return
	case err != nil:
		c.fail("cc_token", err)
		return
	}
	if st.Status == store.TokenNeedsReconnect {
		c.r.Attention = append(c.r.Attention, attentionReport{Kind: attentionNeedsReconnect, Subject: "Constant Contact",
			Detail: "CC refused the refresh token (" + st.StatusReason + "): connect it again at /oauth/connect or with `hs2cc connect`",
			Since:  st.StatusAt.UTC()})
	}
	in := int64(st.ExpiresAt.Sub(c.now).Seconds())
	c.r.Token = &tokenReport{Status: st.Status, Reason: st.StatusReason, StatusAt: timePtr(st.StatusAt),
		ExpiresAt: timePtr(st.ExpiresAt), ExpiresInSeconds: &in,
		ConnectedAt: timePtr(st.ConnectedAt), RefreshedAt: timePtr(st.RefreshedAt)}
}

// attention reports the recorded states that stop work, with how many
// enrollments wait on a missing list.
func (c *opsCollector) attention() {
	items, err := c.cfg.Ops.ListAttention(c.ctx)
	if err != nil {
		c.fail("attention", err)
		return
	}
	for _, a := range items {
		ar := attentionReport{Kind: a.Kind, Subject: a.Subject, Detail: a.Detail, Since: a.Since.UTC()}
		if a.Kind == store.AttentionMissingList {
			if n, err := c.cfg.Ops.CountWaitingFor(c.ctx, a.Subject); err != nil {
				c.fail("attention_waiting", err)
			} else {
				ar.Waiting = &n
			}
		}
		c.r.Attention = append(c.r.Attention, ar)
	}
}

func (c *opsCollector) quarantine() {
	if c.cfg.Quarantine == nil {
		return
	}
	rows, n, err := c.cfg.Quarantine.QuarantineSize(c.ctx)
	if err != nil {
		c.fail("quarantine", err)
		return
	}
	c.r.Quarantine = &quarantineReport{Rows: rows, Bytes: n, Unshaped: []unshapedReport{}}
	counts, err := c.cfg.Quarantine.UnshapedCounts(c.ctx)
	if err != nil {
		c.fail("quarantine_unshaped", err)
		return
	}
	for _, u := range counts {
		c.r.Quarantine.Unshaped = append(c.r.Quarantine.Unshaped,
			unshapedReport{Reason: u.Reason, Count: u.Count, FirstSeen: u.FirstSeen.UTC(), LastSeen: u.LastSeen.UTC()})
	}
}

func (c *opsCollector) tooLarge() {
	since := c.now.Add(-tooLargeWindow).UTC()
	sum, err := c.cfg.Ops.TooLargeSince(c.ctx, since)
	if err != nil {
		c.fail("too_large", err)
		return
	}
	c.r.TooLarge = &tooLargeReport{Since: since, Count: sum.Count}
	if d := sum.Newest; d != nil {
		n := &tooLargeNewest{DeliveryID: d.ID, ReceivedAt: d.ReceivedAt.UTC(), BodyBytes: d.BodyLength, AtLeast: d.BodyLengthAtLeast}
		if d.DeclaredLength > 0 {
			n.DeclaredBytes = &d.DeclaredLength
		}
		c.r.TooLarge.Newest = n
	}
}

// readiness runs the checks of /readyz, keeping their details.
func (c *opsCollector) readiness() {
	c.r.Readiness = []checkResult{}
	if c.cfg.readiness != nil {
		c.r.Readiness = c.cfg.readiness.run(c.ctx)
	}
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// timePtr is nil for the zero time, so that JSON leaves out what never
// happened instead of saying year 1.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// handleOpsStatus answers /ops/status.json: the figures of /ops for
// scripts. A section that failed is named in "errors" and the answer is
// still a 200, since the other figures are good.
func handleOpsStatus(cfg Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, collectOps(c.Request().Context(), cfg))
	}
}

// opsPage is what the template renders.
type opsPage struct {
	opsReport
	User string
	Role Role
	// Queues links Asynqmon; ReadOnlyQueues says the viewer's copy.
	Queues, ReadOnlyQueues bool
	// Connect links /oauth/connect, which only admins may open.
	Connect bool
	// Statuses lists the enrollment statuses in order, unknown ones last.
	Statuses []string
	// Trace shows the search box of /ops/trace; Query is its empty value.
	Trace bool
	Query string
}

// opsCSS is the page's only style. The Content-Security-Policy allows
// exactly this text by its hash, so no other style or any script can run;
// opsHeaders adds the rule against framing to it.
const opsCSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#a00;font-weight:bold}.muted{color:#777}
nav a{margin-right:1em}code{font-size:.95em}
.attention{border:2px solid #a00;background:#fff4f4;padding:.2em 1em;margin:1em 0}.attention h2{color:#a00;margin-top:.4em}
figure.chart{display:inline-block;vertical-align:top;width:580px;margin:0 1.2em .6em 0}figure.chart figcaption{font-weight:600}`

var opsCSP = func() string {
	sum := sha256.Sum256([]byte(opsCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'self'"
}()

var opsTemplate = template.Must(template.New("ops").Funcs(template.FuncMap{
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
	"tstamp": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 MST")
	},
	"age":     func(s int64) string { return humanDuration(time.Duration(s) * time.Second) },
	"bytes":   humanBytes,
	"percent": func(used, budget int) string { return fmt.Sprintf("%.0f%%", 100*float64(used)/float64(max(budget, 1))) },
	"deref":   func(p *int64) int64 { return *p },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>hs2cc ops</title>
<style>` + opsCSS + `</style>
</head>
<body>
<h1>hs2cc ops</h1>
<p class="muted">As of {{stamp .GeneratedAt}}; signed in as <code>{{.User}}</code> ({{.Role}}).</p>
<nav>
{{- if .Queues}}<a href="/ops/queues/">Queues (Asynqmon{{if .ReadOnlyQueues}}, read-only{{end}})</a>{{end}}
<a href="/ops/status.json">status.json</a>
{{- if .Connect}}<a href="/oauth/connect">Connect Constant Contact</a>{{end}}
</nav>
{{- if .Trace}}
` + traceForm + `
{{- end}}
{{- with .Errors}}
<p class="bad">Could not read: {{range $k, $v := .}}{{$k}} ({{$v}}) {{end}}— see the log.</p>
{{- end}}
{{- with .Attention}}
<section class="attention">
<h2>Needs attention</h2>
<ul>
{{- range .}}
<li><strong>{{.Subject}}</strong>: {{.Detail}}{{if not .Since.IsZero}} (since {{stamp .Since}}){{end}}{{with .Waiting}}. {{.}} enrollments wait for it{{end}}.</li>
{{- end}}
</ul>
</section>
{{- end}}

<h2>Enrollments</h2>
{{- if .Enrollments}}
<table><tr>{{range .Statuses}}<th>{{.}}</th>{{end}}</tr>
<tr>{{range .Statuses}}<td class="n">{{index $.Enrollments .}}</td>{{end}}</tr></table>
{{- end}}
{{- with .OldestUnimported}}
<p>Oldest waiting for CC: enrollment <code>{{.ID}}</code>, {{.Status}}, received {{stamp .Since}} (<span{{if gt .AgeSeconds 3600}} class="bad"{{end}}>{{age .AgeSeconds}} ago</span>).</p>
{{- else}}
<p>No enrollment is waiting for CC.</p>
{{- end}}
{{- with .Figures}}

<section id="charts">
<h2>Last 48 hours</h2>
{{- range .}}
<figure class="chart"><figcaption>{{.Caption}}{{with .Note}} <span class="muted">— {{.}}</span>{{end}}</figcaption>
{{if .SVG}}{{.SVG}}{{else}}<p class="bad">n/a: could not be read (see the log)</p>{{end}}</figure>
{{- end}}
</section>
{{- end}}

<h2>Constant Contact</h2>
{{- with .Token}}
{{- if eq .Status "not_connected"}}
<p class="bad">Not connected.{{if $.Connect}} <a href="/oauth/connect">Connect Constant Contact</a>.{{end}}</p>
{{- else if eq .Status "needs_reconnect"}}
<p class="bad">Needs reconnecting since {{tstamp .StatusAt}}: {{.Reason}}.{{if $.Connect}} <a href="/oauth/connect">Connect again</a>.{{end}}</p>
{{- else}}
<p>Connected{{with .ExpiresAt}}; the access token expires {{tstamp .}}{{end}}{{with .ExpiresInSeconds}} ({{if lt (deref .) 0}}<span class="bad">expired {{age (deref .)}} ago</span>{{else}}in {{age (deref .)}}{{end}}){{end}}.
Connected {{tstamp .ConnectedAt}}, last refreshed {{tstamp .RefreshedAt}}.</p>
{{- end}}
{{- end}}
{{- with .CCCalls}}
<p>CC calls today (UTC): {{.Used}} of the daily budget of {{.Budget}} ({{percent .Used .Budget}}).</p>
{{- else}}
<p>CC calls today: n/a</p>
{{- end}}

<h2>Reconcile with CC</h2>
{{- with .Reconcile}}
<p{{if ne .Outcome "done"}} class="bad"{{end}}>Last run {{stamp .FinishedAt}} ({{.Source}}): {{.Outcome}}{{with .Detail}}: {{.}}{{end}}. Lists: {{range $i, $l := .Lists}}{{if $i}}, {{end}}{{$l}}{{end}}{{with .Since}}; imports since {{tstamp .}}{{end}}.</p>
<table><tr><th>missing from CC</th><th>unsubscribed in CC</th><th>unknown to the bridge</th><th>queued again</th><th>CC calls (announced)</th></tr>
<tr><td class="n{{if .Missing}} bad{{end}}">{{.Missing}}</td><td class="n">{{.Unsubscribed}}</td><td class="n">{{.Unknown}}</td><td class="n">{{.Repaired}}</td><td class="n">{{.CCCalls}} ({{.AnnouncedCalls}})</td></tr></table>
{{- else}}
<p>No run yet: <code>hs2cc reconcile</code>, or set <code>HS2CC_RECONCILE_INTERVAL</code>.</p>
{{- end}}

<h2>HubSpot write-back</h2>
{{- with .Writeback}}
{{- if not .Enabled}}
<p>Off: {{.OffReason}}.</p>
{{- else}}
<table><tr><th>pending</th><th>written</th><th>missing in HubSpot (skipped)</th><th>no object id</th><th>failed</th></tr>
<tr><td class="n">{{index .Outbox "pending"}}</td><td class="n">{{index .Outbox "written"}}</td><td class="n">{{index .Outbox "missing"}}</td><td class="n">{{index .Outbox "no_id"}}</td><td class="n{{if index .Outbox "failed"}} bad{{end}}">{{index .Outbox "failed"}}</td></tr></table>
<p>{{with .OldestPendingAgeSeconds}}Oldest pending for {{age (deref .)}}. {{end}}Last written {{tstamp .LastWritten}}.{{with .CallsToday}} HubSpot calls today (UTC): {{deref .}} of {{$.Writeback.DailyLimit}}.{{end}}</p>
{{- with .PausedUntil}}
<p class="bad">HubSpot asked to wait until {{tstamp .}}{{if $.Writeback.PausedDaily}} (its daily limit){{end}}.</p>
{{- end}}
{{- with .LastError}}
<p class="bad">Last error: {{.}}</p>
{{- end}}
{{- with .Unsubscribes}}
<p{{if and (ne .Outcome "done") (ne .Outcome "partial")}} class="bad"{{end}}>Unsubscribes read from CC {{stamp .RanAt}}: {{.Outcome}}{{with .Detail}}: {{.}}{{end}}; {{.Found}} found, {{.Marked}} enrollments marked, {{.CCPages}} CC calls.</p>
{{- else}}
<p>Unsubscribes: not read from CC yet.</p>
{{- end}}
{{- end}}
{{- else}}
<p>n/a</p>
{{- end}}

<h2>Quarantine</h2>
{{- with .Quarantine}}
<p>{{.Rows}} deliveries, {{bytes .Bytes}}.</p>
{{- if .Unshaped}}
<p>Refused and counted, not kept (not shaped like HubSpot's):</p>
<table>
<tr><th>reason</th><th>requests</th><th>first</th><th>last</th></tr>
{{- range .Unshaped}}
<tr><td>{{.Reason}}</td><td class="n">{{.Count}}</td><td>{{stamp .FirstSeen}}</td><td>{{stamp .LastSeen}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- else}}
<p>n/a</p>
{{- end}}

<h2>Bodies over the size limit</h2>
{{- with .TooLarge}}
<p{{if .Count}} class="bad"{{end}}>{{.Count}} too large (last 7 days){{with .Newest}}; the newest {{stamp .ReceivedAt}}, {{if .AtLeast}}at least {{end}}{{bytes .BodyBytes}}{{with .DeclaredBytes}} (declared {{bytes (deref .)}}){{end}}, delivery <code>{{.DeliveryID}}</code>{{end}}.</p>
{{- else}}
<p>n/a</p>
{{- end}}

<h2>Readiness</h2>
{{- if .Readiness}}
<table>
<tr><th>check</th><th>state</th><th>detail</th></tr>
{{- range .Readiness}}
<tr><td><code>{{.Name}}</code></td>{{if .OK}}<td>ok</td><td></td>{{else}}<td class="bad">fail</td><td>{{.Detail}}</td>{{end}}</tr>
{{- end}}
</table>
{{- else}}
<p>No checks configured.</p>
{{- end}}

<h2>Recent CC imports</h2>
{{- if .Imports}}
<table>
<tr><th>id</th><th>created</th><th>activity</th><th>state</th><th>contacts</th><th>persons</th><th>errors</th><th>cannot add to list</th><th>first activity error</th></tr>
{{- range .Imports}}
<tr><td class="n">{{.ID}}</td><td>{{stamp .CreatedAt}}</td><td><code>{{.ActivityID}}</code></td><td>{{.State}}</td><td class="n">{{.ContactCount}}</td><td class="n">{{.PersonCount}}</td><td class="n">{{.ErrorCount}}</td><td class="n">{{.CannotAddToListCount}}</td><td>{{.FirstError}}</td></tr>
{{- end}}
</table>
{{- else}}
<p>None yet.</p>
{{- end}}
</body>
</html>
`))

// handleOpsPage renders /ops for a person.
func handleOpsPage(cfg Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		role := roleOf(c)
		user, _, _ := c.Request().BasicAuth()
		page := opsPage{
			opsReport:      collectOps(c.Request().Context(), cfg),
			User:           user,
			Role:           role,
			Queues:         cfg.Queues != nil && (role == RoleAdmin || (role == RoleViewer && cfg.QueuesReadOnly != nil)),
			ReadOnlyQueues: role == RoleViewer,
			Connect:        role == RoleAdmin && cfg.Connector != nil,
			Trace:          cfg.Trace != nil,
		}
		page.Statuses = slices.Clone(enrollmentStatuses)
		var extra []string
		for s := range page.Enrollments {
			if !slices.Contains(page.Statuses, s) {
				extra = append(extra, s)
			}
		}
		slices.Sort(extra)
		page.Statuses = append(page.Statuses, extra...)

		var b bytes.Buffer
		if err := opsTemplate.Execute(&b, page); err != nil {
			return err
		}
		addCSP(c.Response().Header(), opsCSP)
		return c.HTMLBlob(http.StatusOK, b.Bytes())
	}
}

// humanDuration writes a duration the way a person reads an age: its two
// largest units, rounded, e.g. "3d 4h", "1h 30m", "42s".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, d := d/time.Hour, d%time.Hour
	mins, secs := d/time.Minute, (d%time.Minute)/time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, secs)
	}
	return fmt.Sprintf("%ds", secs)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
