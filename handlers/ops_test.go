package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"golang.org/x/crypto/bcrypt"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// The store and the CC limits must fit the ops interfaces that cmd wires
// them into.
var (
	_ handlers.CCBudget = (*store.CCLimits)(nil)
	_ interface {
		CountEnrollments(context.Context) (map[string]int, error)
		RecentImports(context.Context, int) ([]*store.Import, error)
		TokenState(context.Context) (*store.TokenState, error)
	} = (*store.DB)(nil)
)

// Named ops logins of the tests. Their hashes are of bcrypt's least cost,
// which the handlers accept (cmd refuses it), so that the tests stay fast.
const (
	adminName, adminPass   = "alice", "alice's long passphrase"
	viewerName, viewerPass = "bob", "bob's other passphrase"
)

func hash(t testing.TB, password string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func accounts(t testing.TB) []handlers.OpsAccount {
	return []handlers.OpsAccount{
		{Name: adminName, Role: handlers.RoleAdmin, Hash: hash(t, adminPass)},
		{Name: viewerName, Role: handlers.RoleViewer, Hash: hash(t, viewerPass)},
	}
}

// fakeOps answers /ops's reads as configured.
type fakeOps struct {
	counts     map[string]int
	countsErr  error
	oldest     *handlers.OldestEnrollment
	oldestErr  error
	imports    []*store.Import
	importsErr error
	token      *store.TokenState
	tokenErr   error
	attention  []*store.Attention
	waiting    map[string]int
	tooLarge   store.TooLargeSummary
	// received and imported are the hourly counts, the last the hour under
	// way; hourlyErr fails both.
	received, imported []int
	hourlyErr          error
}

func (f *fakeOps) CountEnrollments(context.Context) (map[string]int, error) {
	return f.counts, f.countsErr
}

func (f *fakeOps) OldestUnimported(context.Context) (*handlers.OldestEnrollment, error) {
	return f.oldest, f.oldestErr
}

func (f *fakeOps) RecentImports(_ context.Context, limit int) ([]*store.Import, error) {
	if limit != 20 {
		return nil, errors.New("want the last 20 imports")
	}
	return f.imports, f.importsErr
}

func (f *fakeOps) TokenState(context.Context) (*store.TokenState, error) { return f.token, f.tokenErr }

func (f *fakeOps) ListAttention(context.Context) ([]*store.Attention, error) { return f.attention, nil }

func (f *fakeOps) CountWaitingFor(_ context.Context, list string) (int, error) {
	return f.waiting[list], nil
}

func (f *fakeOps) TooLargeSince(context.Context, time.Time) (store.TooLargeSummary, error) {
	return f.tooLarge, nil
}

func (f *fakeOps) ReceivedByHour(_ context.Context, from time.Time, hours int) ([]store.HourBucket, error) {
	return fakeHours(from, hours, f.received, nil), f.hourlyErr
}

func (f *fakeOps) ImportedByHour(_ context.Context, from time.Time, hours int) ([]store.HourBucket, error) {
	return fakeHours(from, hours, f.imported, f.received), f.hourlyErr
}

// fakeHours spreads counts over the last of hours hours from the hour of
// from. With received given, each hour's imports are taken to have been
// received the hour before, when that hour received any, else in their own.
func fakeHours(from time.Time, hours int, counts, received []int) []store.HourBucket {
	b := make([]store.HourBucket, hours)
	start := from.UTC().Truncate(time.Hour)
	off := hours - len(counts)
	for i := range b {
		b[i].Hour = start.Add(time.Duration(i) * time.Hour)
		if j := i - off; j >= 0 && j < len(counts) {
			b[i].Count = counts[j]
			if received != nil && counts[j] > 0 {
				b[i].OldestReceived = b[i].Hour
				if j > 0 && received[j-1] > 0 {
					b[i].OldestReceived = b[i].Hour.Add(-time.Hour)
				}
			}
		}
	}
	return b
}

type fakeBudget struct {
	used, budget int
	err          error
	// hourly are the CC calls per hour, the last the hour under way;
	// hourlyErr fails their read.
	hourly    []int
	hourlyErr error
}

func (f fakeBudget) Used(context.Context) (int, error) { return f.used, f.err }
func (f fakeBudget) Budget() int                       { return f.budget }
func (f fakeBudget) CallsByHour(_ context.Context, from time.Time, hours int) ([]int, error) {
	calls := make([]int, hours)
	for i, b := range fakeHours(from, hours, f.hourly, nil) {
		calls[i] = b.Count
	}
	return calls, f.hourlyErr
}

type fakeQuarantine struct {
	rows     int
	bytes    int64
	unshaped []store.UnshapedCount
}

func (f fakeQuarantine) QuarantineSize(context.Context) (int, int64, error) {
	return f.rows, f.bytes, nil
}

func (f fakeQuarantine) UnshapedCounts(context.Context) ([]store.UnshapedCount, error) {
	return f.unshaped, nil
}

// opsNow is the clock of the ops tests, so that ages are exact.
var opsNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// hostile is an activity error as CC might relay it from a contact's data:
// it must reach the page as text, never as markup.
const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)> & more`

// newFakeOps is a bridge with a little of everything to show.
func newFakeOps() *fakeOps {
	return &fakeOps{
		counts: map[string]int{store.StatusPending: 7, store.StatusImporting: 3, store.StatusImported: 1234, store.StatusFailed: 2},
		oldest: &handlers.OldestEnrollment{ID: 4242, Status: store.StatusFailed, Since: opsNow.Add(-90 * time.Minute)},
		imports: []*store.Import{
			{ID: 31, ActivityID: "act-31", State: "completed", ContactCount: 500, ActivityCounts: store.ActivityCounts{
				PersonCount: 498, ErrorCount: 2, CannotAddToListCount: 1, ActivityErrors: []string{hostile, "second error"}},
				CreatedAt: opsNow.Add(-time.Hour)},
			{ID: 30, ActivityID: "act-30", State: "processing", ContactCount: 40, CreatedAt: opsNow.Add(-2 * time.Hour)},
		},
		token: &store.TokenState{Status: store.TokenConnected, ExpiresAt: opsNow.Add(time.Hour),
			ConnectedAt: opsNow.Add(-48 * time.Hour), RefreshedAt: opsNow.Add(-time.Hour), Version: 9},
		received: fakeReceived, imported: fakeImported,
		tooLarge: store.TooLargeSummary{Count: 2, Newest: &store.Delivery{ID: 77, ReceivedAt: opsNow.Add(-3 * time.Hour),
			Verdict: store.VerdictTooLarge, BodyLength: 9 << 20, DeclaredLength: 9 << 20}},
	}
}

// startOps runs the application with every ops route: the fake figures,
// both Asynqmons on a private Redis database, the simple admin login and
// the named ones. Its one queue holds one task, so that Asynqmon has
// something to act on. It needs Redis but not MySQL.
func startOps(t testing.TB, opts ...func(*handlers.Config)) *app {
	t.Helper()
	redisOpt, err := asynq.ParseRedisURI(storetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ins := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { ins.Close() })
	client := asynq.NewClient(redisOpt)
	t.Cleanup(func() { client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("ops:test", nil), asynq.Queue(jobs.Queue), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	full := asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: redisOpt})
	t.Cleanup(func() { full.Close() })
	readOnly := asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: redisOpt, ReadOnly: true})
	t.Cleanup(func() { readOnly.Close() })

	logs := &logBuffer{}
	cfg := handlers.Config{
		PublicURL:      publicURL,
		OpsUser:        opsUser,
		OpsPassword:    opsPass,
		OpsAccounts:    accounts(t),
		Queues:         full,
		QueuesReadOnly: readOnly,
		Ops:            newFakeOps(),
		CCBudget:       fakeBudget{used: 120, budget: 8000, hourly: fakeCCCalls},
		Quarantine: fakeQuarantine{rows: 3, bytes: 1536, unshaped: []store.UnshapedCount{
			{Reason: "no_signature", Count: 2000, FirstSeen: opsNow.Add(-2 * time.Hour), LastSeen: opsNow.Add(-time.Hour)},
		}},
		Now:       func() time.Time { return opsNow },
		Connector: &fakeConnector{url: authURL},
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),

		// These tests send many wrong logins from one address to check
		// every route's answer, more than the login limiter lets through;
		// loginlimit_test.go tests the limiter.
		LoginLimits: handlers.LoginLimits{FreeFailures: 1000},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e := handlers.New(cfg, nil, nil)
	a := serveApp(t, e, logs)
	a.ins = ins
	return a
}

// as sends a request with a basic-auth login; none when user and password
// are both empty.
func (a *app) as(t testing.TB, method, path, user, pass string, h ...string) reply {
	t.Helper()
	req := a.request(t, method, path, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	return a.do(t, req)
}

// Each login gets what its role allows: admins everything, viewers the
// page, the figures and a read-only Asynqmon; a wrong login nothing.
func TestOpsRoles(t *testing.T) {
	a := startOps(t)
	pause := "/ops/queues/api/queues/" + jobs.Queue + ":pause"
	resume := "/ops/queues/api/queues/" + jobs.Queue + ":resume"
	// The one task is scheduled, so Asynqmon can delete it by id.
	tasks, err := a.ins.ListScheduledTasks(jobs.Queue)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("scheduled tasks %v, %v; want the one test task", tasks, err)
	}
	deleteTask := "/ops/queues/api/queues/" + jobs.Queue + "/scheduled_tasks/" + tasks[0].ID

	cases := []struct {
		name         string
		method, path string
		user, pass   string
		header       []string
		status       int
		code         string // the JSON error code, when one is expected
	}{
		{"no login", http.MethodGet, "/ops", "", "", nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"unknown user with a real password", http.MethodGet, "/ops", "mallory", adminPass, nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"admin with a wrong password", http.MethodGet, "/ops", adminName, "wrong", nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"viewer with the admin's password", http.MethodGet, "/ops", viewerName, adminPass, nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"simple login's user with a named password", http.MethodGet, "/ops", opsUser, adminPass, nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"hash as the password", http.MethodGet, "/ops", adminName, string(accounts(t)[0].Hash), nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"wrong login at status.json", http.MethodGet, "/ops/status.json", viewerName, "wrong", nil, http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"wrong login at Asynqmon", http.MethodGet, "/ops/queues/api/queues", viewerName, "wrong", nil, http.StatusUnauthorized, handlers.CodeUnauthorized},

		{"simple admin sees the page", http.MethodGet, "/ops", opsUser, opsPass, nil, http.StatusOK, ""},
		{"admin sees the page", http.MethodGet, "/ops/", adminName, adminPass, nil, http.StatusOK, ""},
		{"viewer sees the page", http.MethodGet, "/ops", viewerName, viewerPass, nil, http.StatusOK, ""},
		{"viewer reads status.json", http.MethodGet, "/ops/status.json", viewerName, viewerPass, nil, http.StatusOK, ""},
		{"viewer reads the queues", http.MethodGet, "/ops/queues/api/queues", viewerName, viewerPass, nil, http.StatusOK, ""},
		{"viewer opens the queues UI", http.MethodGet, "/ops/queues/", viewerName, viewerPass, nil, http.StatusOK, ""},

		{"viewer may not connect CC", http.MethodGet, "/oauth/connect", viewerName, viewerPass, nil, http.StatusForbidden, handlers.CodeForbidden},
		{"admin connects CC", http.MethodGet, "/oauth/connect", adminName, adminPass, nil, http.StatusFound, ""},
		{"simple admin connects CC", http.MethodGet, "/oauth/connect", opsUser, opsPass, nil, http.StatusFound, ""},

		// Asynqmon's read-only mode answers every method but GET with 405.
		{"viewer may not pause a queue", http.MethodPost, pause, viewerName, viewerPass, nil, http.StatusMethodNotAllowed, ""},
		{"viewer may not delete a task", http.MethodDelete, deleteTask, viewerName, viewerPass, nil, http.StatusMethodNotAllowed, ""},
		{"a page elsewhere may not pause through an admin's browser", http.MethodPost, pause, adminName, adminPass,
			[]string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, handlers.CodeForbidden},
		{"admin pauses a queue", http.MethodPost, pause, adminName, adminPass, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusNoContent, ""},
		{"simple admin resumes it", http.MethodPost, resume, opsUser, opsPass, nil, http.StatusNoContent, ""},
		{"admin deletes a task", http.MethodDelete, deleteTask, adminName, adminPass, nil, http.StatusNoContent, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.as(t, tc.method, tc.path, tc.user, tc.pass, tc.header...)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
			} else if r.status != tc.status {
				t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusUnauthorized {
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(got), "basic realm=") {
					t.Errorf("WWW-Authenticate %q, want a basic challenge", got)
				}
			}
			// What was refused must not have happened: the queue is not
			// left paused and the task is still there until the admin
			// deletes it.
			info, err := a.ins.GetQueueInfo(jobs.Queue)
			if err != nil {
				t.Fatal(err)
			}
			wantPaused := tc.name == "admin pauses a queue"
			if info.Paused != wantPaused {
				t.Errorf("queue paused %v, want %v", info.Paused, wantPaused)
			}
			if tc.name != "admin deletes a task" && info.Scheduled != 1 {
				t.Errorf("%d scheduled tasks, want the test task still there", info.Scheduled)
			}
		})
	}
	if info, err := a.ins.GetQueueInfo(jobs.Queue); err != nil || info.Scheduled != 0 {
		t.Errorf("queue %+v, %v: want the admin's delete done", info, err)
	}
}

// The viewer's Asynqmon UI is the read-only one, which hides its buttons.
func TestOpsQueuesUIByRole(t *testing.T) {
	a := startOps(t)
	cases := []struct {
		user, pass string
		readOnly   string
	}{
		{adminName, adminPass, `READ_ONLY="false"`},
		{viewerName, viewerPass, `READ_ONLY="true"`},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			r := a.as(t, http.MethodGet, "/ops/queues/", tc.user, tc.pass)
			if r.status != http.StatusOK || !strings.Contains(string(r.body), tc.readOnly) {
				t.Errorf("status %d; body lacks %s", r.status, tc.readOnly)
			}
		})
	}
}

// A viewer without a read-only Asynqmon gets none rather than the full one.
func TestOpsViewerWithoutReadOnlyQueues(t *testing.T) {
	a := startOps(t, func(c *handlers.Config) { c.QueuesReadOnly = nil })
	wantError(t, a.as(t, http.MethodGet, "/ops/queues/api/queues", viewerName, viewerPass), http.StatusForbidden, handlers.CodeForbidden)
	if r := a.as(t, http.MethodGet, "/ops/queues/api/queues", adminName, adminPass); r.status != http.StatusOK {
		t.Errorf("admin: status %d", r.status)
	}
}

// /ops shows every figure, as text: markup in a CC activity error is
// escaped, and the page can run no script whatever it holds.
func TestOpsPage(t *testing.T) {
	cases := []struct {
		name string
		user string
		pass string
		cfg  func(*handlers.Config)
		want []string
		not  []string
		logs []string // causes that must be in the log
	}{
		{
			name: "admin sees every figure",
			user: adminName, pass: adminPass,
			want: []string{
				`<th>pending</th><th>importing</th><th>imported</th><th>failed</th><th>rejected</th>`,
				`<td class="n">7</td><td class="n">3</td><td class="n">1234</td><td class="n">2</td><td class="n">0</td>`,
				`enrollment <code>4242</code>, failed, received 2026-03-04 10:30:00 UTC`, `1h 30m ago`,
				`120 of the daily budget of 8000 (2%)`,
				`the access token expires 2026-03-04 13:00:00 UTC`, `(in 1h 0m)`, `last refreshed 2026-03-04 11:00:00 UTC`,
				`3 deliveries, 1.5 KiB`,
				`<tr><td>no_signature</td><td class="n">2000</td><td>2026-03-04 10:00:00 UTC</td><td>2026-03-04 11:00:00 UTC</td></tr>`,
				`<p class="bad">2 too large (last 7 days); the newest 2026-03-04 09:00:00 UTC, 9.0 MiB (declared 9.0 MiB), delivery <code>77</code>.</p>`,
				`<td class="n">31</td>`, `<code>act-31</code>`, `<td>completed</td>`, `<td class="n">500</td>`, `<td class="n">498</td>`,
				`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; more`,
				`<code>act-30</code>`, `<td>processing</td>`,
				`href="/ops/queues/"`, `Queues (Asynqmon)`, `href="/oauth/connect"`, `signed in as <code>alice</code> (admin)`,
			},
			not: []string{"<script", "<img", "second error"},
		},
		{
			name: "viewer gets no connect link and the read-only queues",
			user: viewerName, pass: viewerPass,
			want: []string{`Queues (Asynqmon, read-only)`, `signed in as <code>bob</code> (viewer)`},
			not:  []string{`/oauth/connect`},
		},
		{
			name: "no quarantine and no budget are n/a",
			user: opsUser, pass: opsPass,
			cfg:  func(c *handlers.Config) { c.Quarantine, c.CCBudget = nil, nil },
			want: []string{"<h2>Quarantine</h2>\n<p>n/a</p>", "CC calls today: n/a"},
		},
		{
			name: "a body over the limit that declared no length, counted to the bound",
			user: viewerName, pass: viewerPass,
			cfg: func(c *handlers.Config) {
				f := newFakeOps()
				f.tooLarge = store.TooLargeSummary{Count: 1, Newest: &store.Delivery{ID: 78, ReceivedAt: opsNow.Add(-time.Minute),
					BodyLength: 32 << 20, BodyLengthAtLeast: true}}
				c.Ops = f
			},
			want: []string{`1 too large (last 7 days); the newest 2026-03-04 11:59:00 UTC, at least 32.0 MiB, delivery <code>78</code>.`},
			not:  []string{"declared"},
		},
		{
			name: "no body over the limit this week",
			user: viewerName, pass: viewerPass,
			cfg: func(c *handlers.Config) {
				f := newFakeOps()
				f.tooLarge = store.TooLargeSummary{}
				c.Ops = f
			},
			want: []string{"<h2>Bodies over the size limit</h2>\n<p>0 too large (last 7 days).</p>"},
		},
		{
			name: "not connected",
			user: adminName, pass: adminPass,
			cfg: func(c *handlers.Config) {
				f := newFakeOps()
				f.token, f.tokenErr, f.oldest, f.imports = nil, store.ErrNotFound, nil, nil
				c.Ops = f
			},
			want: []string{`Not connected. <a href="/oauth/connect">`, "No enrollment is waiting for CC.", "None yet."},
		},
		{
			name: "needs reconnect",
			user: viewerName, pass: viewerPass,
			cfg: func(c *handlers.Config) {
				f := newFakeOps()
				f.token = &store.TokenState{Status: store.TokenNeedsReconnect, StatusReason: "invalid_grant <b>", StatusAt: opsNow.Add(-time.Hour)}
				c.Ops = f
			},
			want: []string{"Needs reconnecting since 2026-03-04 11:00:00 UTC: invalid_grant &lt;b&gt;."},
		},
		{
			name: "a section that fails is named, the others still shown",
			user: adminName, pass: adminPass,
			cfg: func(c *handlers.Config) {
				c.CCBudget = fakeBudget{budget: 8000, err: errors.New("redis: connection refused")}
				f := newFakeOps()
				f.importsErr = errors.New("mysql: too many connections")
				c.Ops = f
			},
			want: []string{"Could not read: cc_calls (unavailable) recent_imports (unavailable)", "1h 30m ago"},
			not:  []string{"connection refused", "too many connections"},
			logs: []string{"redis: connection refused", "mysql: too many connections"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*handlers.Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			a := startOps(t, opts...)
			r := a.as(t, http.MethodGet, "/ops", tc.user, tc.pass)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("status %d Content-Type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			csp := r.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "style-src 'sha256-") {
				t.Errorf("Content-Security-Policy %q, want none but the page's own style", csp)
			}
			if got := r.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			body := string(r.body)
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("page contains %q", n)
				}
			}
			for _, l := range tc.logs {
				if !strings.Contains(a.logs.String(), l) {
					t.Errorf("log lacks the cause %q", l)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", body)
			}
		})
	}
}

// opsStatus is /ops/status.json, decoded strictly.
type opsStatus struct {
	GeneratedAt time.Time `json:"generated_at"`
	Attention   []struct {
		Kind    string    `json:"kind"`
		Subject string    `json:"subject"`
		Detail  string    `json:"detail"`
		Since   time.Time `json:"since"`
		Waiting *int      `json:"waiting"`
	} `json:"attention"`
	Enrollments      map[string]int `json:"enrollments"`
	OldestUnimported *struct {
		ID         int64     `json:"id"`
		Status     string    `json:"status"`
		Since      time.Time `json:"since"`
		AgeSeconds int64     `json:"age_seconds"`
	} `json:"oldest_unimported"`
	Imports []struct {
		ID                   int64     `json:"id"`
		CreatedAt            time.Time `json:"created_at"`
		ActivityID           string    `json:"activity_id"`
		State                string    `json:"state"`
		ContactCount         int       `json:"contact_count"`
		PersonCount          int       `json:"person_count"`
		ErrorCount           int       `json:"error_count"`
		CannotAddToListCount int       `json:"cannot_add_to_list_count"`
		FirstError           string    `json:"first_activity_error"`
	} `json:"recent_imports"`
	CCCalls *struct {
		Used   int `json:"used"`
		Budget int `json:"budget"`
	} `json:"cc_calls"`
	Token *struct {
		Status           string     `json:"status"`
		Reason           string     `json:"reason"`
		StatusAt         *time.Time `json:"status_at"`
		ExpiresAt        *time.Time `json:"expires_at"`
		ExpiresInSeconds *int64     `json:"expires_in_seconds"`
		ConnectedAt      *time.Time `json:"connected_at"`
		RefreshedAt      *time.Time `json:"refreshed_at"`
	} `json:"cc_token"`
	Quarantine *struct {
		Rows     int   `json:"rows"`
		Bytes    int64 `json:"bytes"`
		Unshaped []struct {
			Reason    string    `json:"reason"`
			Count     int64     `json:"count"`
			FirstSeen time.Time `json:"first_seen"`
			LastSeen  time.Time `json:"last_seen"`
		} `json:"unshaped"`
	} `json:"quarantine"`
	TooLarge *struct {
		Since  time.Time `json:"since"`
		Count  int       `json:"count"`
		Newest *struct {
			DeliveryID    int64     `json:"delivery_id"`
			ReceivedAt    time.Time `json:"received_at"`
			BodyBytes     int64     `json:"body_bytes"`
			AtLeast       bool      `json:"at_least"`
			DeclaredBytes *int64    `json:"declared_bytes"`
		} `json:"newest"`
	} `json:"too_large"`
	Hourly *hourlyStatus `json:"hourly"`
	// Reconcile is checked end to end (cmd's TestReconcileAfterImports).
	Reconcile json.RawMessage  `json:"reconcile"`
	Writeback *writebackStatus `json:"hubspot_writeback"`
	Readiness []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"readiness"`
	Errors map[string]string `json:"errors"`
}

// /ops/status.json has the page's figures for scripts.
func TestOpsStatusJSON(t *testing.T) {
	t.Run("every figure", func(t *testing.T) {
		a := startOps(t)
		r := a.as(t, http.MethodGet, "/ops/status.json", viewerName, viewerPass)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got opsStatus
		decodeJSON(t, r, &got)
		if !got.GeneratedAt.Equal(opsNow) || got.Enrollments["pending"] != 7 || got.Enrollments["imported"] != 1234 ||
			got.Enrollments["rejected"] != 0 {
			t.Errorf("generated %v, enrollments %v", got.GeneratedAt, got.Enrollments)
		}
		if o := got.OldestUnimported; o == nil || o.ID != 4242 || o.Status != "failed" || o.AgeSeconds != 5400 ||
			!o.Since.Equal(opsNow.Add(-90*time.Minute)) {
			t.Errorf("oldest unimported %+v", o)
		}
		if len(got.Imports) != 2 || got.Imports[0].ID != 31 || got.Imports[0].ActivityID != "act-31" ||
			got.Imports[0].PersonCount != 498 || got.Imports[0].ErrorCount != 2 || got.Imports[0].CannotAddToListCount != 1 ||
			got.Imports[0].FirstError != hostile || got.Imports[1].FirstError != "" {
			t.Errorf("imports %+v", got.Imports)
		}
		if got.CCCalls == nil || got.CCCalls.Used != 120 || got.CCCalls.Budget != 8000 {
			t.Errorf("cc calls %+v", got.CCCalls)
		}
		if tok := got.Token; tok == nil || tok.Status != "connected" || tok.ExpiresInSeconds == nil || *tok.ExpiresInSeconds != 3600 ||
			tok.StatusAt != nil || tok.ConnectedAt == nil || !tok.ConnectedAt.Equal(opsNow.Add(-48*time.Hour)) {
			t.Errorf("token %+v", tok)
		}
		if q := got.Quarantine; q == nil || q.Rows != 3 || q.Bytes != 1536 || len(q.Unshaped) != 1 ||
			q.Unshaped[0].Reason != "no_signature" || q.Unshaped[0].Count != 2000 || !q.Unshaped[0].LastSeen.Equal(opsNow.Add(-time.Hour)) {
			t.Errorf("quarantine %+v", got.Quarantine)
		}
		if tl := got.TooLarge; tl == nil || tl.Count != 2 || !tl.Since.Equal(opsNow.Add(-7*24*time.Hour)) || tl.Newest == nil ||
			tl.Newest.DeliveryID != 77 || !tl.Newest.ReceivedAt.Equal(opsNow.Add(-3*time.Hour)) || tl.Newest.BodyBytes != 9<<20 ||
			tl.Newest.AtLeast || tl.Newest.DeclaredBytes == nil || *tl.Newest.DeclaredBytes != 9<<20 {
			t.Errorf("too large %+v", tl)
		}
		if got.Errors != nil {
			t.Errorf("errors %v, want none", got.Errors)
		}
		if got.Attention == nil || len(got.Attention) != 0 {
			t.Errorf("attention %+v, want an empty list", got.Attention)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
		}
	})
	t.Run("what is missing or failed is null and named", func(t *testing.T) {
		a := startOps(t, func(c *handlers.Config) {
			f := newFakeOps()
			f.countsErr, f.oldest, f.token, f.tokenErr = errors.New("mysql gone"), nil, nil, store.ErrNotFound
			c.Ops, c.Quarantine = f, nil
		})
		var got opsStatus
		decodeJSON(t, a.as(t, http.MethodGet, "/ops/status.json", adminName, adminPass), &got)
		if got.Enrollments != nil || got.OldestUnimported != nil || got.Quarantine != nil ||
			got.Token == nil || got.Token.Status != "not_connected" || got.Token.ExpiresAt != nil {
			t.Errorf("status %+v", got)
		}
		if len(got.Errors) != 1 || got.Errors["enrollments"] != "unavailable" {
			t.Errorf("errors %v, want enrollments alone", got.Errors)
		}
		if len(got.Attention) != 1 || got.Attention[0].Kind != "cc_not_connected" || !strings.Contains(got.Attention[0].Detail, "/oauth/connect") {
			t.Errorf("attention %+v, want CC not connected with what to do", got.Attention)
		}
	})
	t.Run("what stops work comes first, by name", func(t *testing.T) {
		since := opsNow.Add(-2 * time.Hour)
		a := startOps(t, func(c *handlers.Config) {
			f := newFakeOps()
			f.token = &store.TokenState{Status: store.TokenNeedsReconnect, StatusReason: "oauth invalid_grant", StatusAt: since,
				ExpiresAt: opsNow.Add(time.Hour)}
			f.attention = []*store.Attention{{Kind: store.AttentionMissingList, Subject: "New <Agents>",
				Detail: `CC list "New <Agents>" does not exist: create it`, Since: since, CheckedAt: opsNow}}
			f.waiting = map[string]int{"New <Agents>": 42}
			c.Ops = f
		})
		var got opsStatus
		decodeJSON(t, a.as(t, http.MethodGet, "/ops/status.json", viewerName, viewerPass), &got)
		if len(got.Attention) != 2 || got.Attention[0].Kind != "cc_needs_reconnect" || !got.Attention[0].Since.Equal(since) ||
			got.Attention[1].Kind != store.AttentionMissingList || got.Attention[1].Subject != "New <Agents>" ||
			got.Attention[1].Waiting == nil || *got.Attention[1].Waiting != 42 {
			t.Errorf("attention %+v, want the reconnect and the missing list with 42 waiting", got.Attention)
		}
		page := string(a.as(t, http.MethodGet, "/ops", viewerName, viewerPass).body)
		top, rest, ok := strings.Cut(page, "<h2>Enrollments")
		if !ok || !strings.Contains(top, "Needs attention") || strings.Contains(rest, "Needs attention") {
			t.Fatalf("the attention section is not at the top of /ops:\n%s", page)
		}
		for _, want := range []string{"<strong>New &lt;Agents&gt;</strong>", "42 enrollments wait for it", "oauth invalid_grant"} {
			if !strings.Contains(top, want) {
				t.Errorf("the attention section lacks %q:\n%s", want, top)
			}
		}
	})
}

// Without figures /ops is not served, and without any login nothing under
// /ops is, whatever is configured.
func TestOpsRoutesAbsent(t *testing.T) {
	cases := []struct {
		name  string
		cfg   func(*handlers.Config)
		paths []string
		user  string
		pass  string
	}{
		{"no figures", func(c *handlers.Config) { c.Ops = nil }, []string{"/ops", "/ops/status.json"}, adminName, adminPass},
		{"no logins", func(c *handlers.Config) { c.OpsUser, c.OpsPassword, c.OpsAccounts = "", "", nil },
			[]string{"/ops", "/ops/status.json", "/ops/queues/api/queues", "/oauth/connect"}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := startOps(t, tc.cfg)
			for _, p := range tc.paths {
				wantError(t, a.as(t, http.MethodGet, p, tc.user, tc.pass), http.StatusNotFound, handlers.CodeNotFound)
			}
		})
	}
	t.Run("named logins alone open /ops", func(t *testing.T) {
		a := startOps(t, func(c *handlers.Config) { c.OpsUser, c.OpsPassword = "", "" })
		if r := a.as(t, http.MethodGet, "/ops", viewerName, viewerPass); r.status != http.StatusOK {
			t.Errorf("status %d", r.status)
		}
		// An empty simple login must not become a login with empty fields.
		wantError(t, a.as(t, http.MethodGet, "/ops", "", "x"), http.StatusUnauthorized, handlers.CodeUnauthorized)
	})
}

// The figures are JSON that a script can rely on: check that the body is
// one object whose keys are all present, null or not.
func TestOpsStatusKeys(t *testing.T) {
	a := startOps(t, func(c *handlers.Config) { c.Quarantine, c.CCBudget = nil, nil })
	r := a.as(t, http.MethodGet, "/ops/status.json", adminName, adminPass)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"generated_at", "enrollments", "oldest_unimported", "recent_imports", "cc_calls", "cc_token", "quarantine", "too_large", "hourly", "reconcile"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status.json lacks %q: %s", k, r.body)
		}
	}
	if string(raw["quarantine"]) != "null" || string(raw["cc_calls"]) != "null" {
		t.Errorf("quarantine %s, cc_calls %s: want null when not configured", raw["quarantine"], raw["cc_calls"])
	}
}
