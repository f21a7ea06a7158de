package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

const importRoute = "POST /v3/activities/contacts_json_import"

func TestIsFailureAndRetryDelay(t *testing.T) {
	// 17:30 in New York is 22:30 UTC: the quota resets in 1h30m.
	ny := time.FixedZone("EST", -5*3600)
	evening := time.Date(2026, 3, 10, 17, 30, 0, 0, ny)
	task := asynq.NewTask(TypeCCImport, nil)
	apiErr := func(status int, key string) error {
		return fmt.Errorf("import 1: ccclient: import contacts: %w", &ccclient.APIError{StatusCode: status, Key: key, Message: "x"})
	}
	tests := []struct {
		name        string
		err         error
		now         time.Time
		n           int
		wantFailure bool
		wantDelay   time.Duration // exact, unless backoff
		backoff     bool          // asynq's default exponential backoff
	}{
		{name: "activity still running", err: fmt.Errorf("poll: %w", &waitError{after: 7 * time.Second, reason: "activity processing"}),
			wantDelay: 7 * time.Second},
		{name: "429 throttled", err: apiErr(429, "throttled"), wantDelay: time.Second},
		{name: "429 throttled in another case", err: apiErr(429, "THROTTLED"), wantDelay: time.Second},
		{name: "429 quota_exceeded waits for 00:00 UTC and a minute", err: apiErr(429, "quota_exceeded"), now: evening,
			wantDelay: 91 * time.Minute},
		{name: "429 quota_exceeded a second before midnight", err: apiErr(429, "quota_exceeded"),
			now: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), wantDelay: time.Minute + time.Second},
		{name: "429 quota_exceeded at midnight waits a whole day", err: apiErr(429, "quota_exceeded"),
			now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), wantDelay: 24*time.Hour + time.Minute},
		// Any 429 means CC wants less from us, never that the work is bad:
		// spending retries on it could archive rows on a busy day.
		{name: "429 with 1,000 activities queued waits a minute", err: apiErr(429, "activity_queue_full"),
			wantDelay: time.Minute},
		{name: "429 with no error key waits a minute", err: apiErr(429, ""), wantDelay: time.Minute},
		{name: "429 with an unknown key waits a minute", err: apiErr(429, "too_many_requests"), wantDelay: time.Minute},
		{name: "our own daily budget spent waits for its reset and a minute",
			err: fmt.Errorf("import 1: ccclient: import contacts: %w",
				&store.BudgetExhaustedError{Budget: 9000, Reset: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)}),
			now: evening, wantDelay: 91 * time.Minute},
		{name: "budget spent a second before its reset",
			err: &store.BudgetExhaustedError{Budget: 9000, Reset: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			now: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), wantDelay: time.Minute + time.Second},
		{name: "another process refreshing the token", err: fmt.Errorf("token: %w", &ccauth.WaitError{After: 2 * time.Second, Reason: "busy"}),
			wantDelay: 2 * time.Second},
		{name: "not connected", err: fmt.Errorf("resolve CC list: token: %w", ccauth.ErrNotConnected), wantDelay: time.Minute},
		{name: "not connected after invalid_grant", err: fmt.Errorf("%w: %w", ccauth.ErrNotConnected, &ccclient.OAuthError{StatusCode: 400, Code: "invalid_grant"}),
			wantDelay: time.Minute},
		{name: "HubSpot 502 retried in a second", err: fmt.Errorf("write-back: %w", &crm.APIError{StatusCode: 502}), n: 0,
			wantFailure: true, wantDelay: time.Second},
		{name: "HubSpot 500 on the third try", err: &crm.APIError{StatusCode: 500}, n: 2, wantFailure: true, wantDelay: 4 * time.Second},
		{name: "HubSpot 500 after the quick tries", err: &crm.APIError{StatusCode: 500}, n: 3, wantFailure: true, backoff: true},
		{name: "HubSpot 429 is a wait, as the writer returns it",
			err: &waitError{after: 10 * time.Second, reason: "HubSpot answered 429"}, wantDelay: 10 * time.Second},
		{name: "500 retried in a second", err: apiErr(500, "server_error"), n: 0, wantFailure: true, wantDelay: time.Second},
		{name: "502 on the second try", err: apiErr(502, "bad_gateway"), n: 1, wantFailure: true, wantDelay: 2 * time.Second},
		{name: "503 on a later retry", err: apiErr(503, "service_unavailable"), n: 3, wantFailure: true, backoff: true},
		{name: "401", err: apiErr(401, "unauthorized"), n: 1, wantFailure: true, backoff: true},
		{name: "a network error", err: errors.New("dial tcp: connection refused"), n: 2, wantFailure: true, backoff: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isFailure(tc.err); got != tc.wantFailure {
				t.Errorf("isFailure = %v, want %v", got, tc.wantFailure)
			}
			now := tc.now
			if now.IsZero() {
				now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			}
			got := retryDelay(func() time.Time { return now })(tc.n, tc.err, task)
			if tc.backoff {
				// asynq: n^4 + 15 + rand(30)*(n+1) seconds.
				lo := time.Duration(tc.n*tc.n*tc.n*tc.n+15) * time.Second
				hi := lo + time.Duration(30*(tc.n+1))*time.Second
				if got < lo || got > hi {
					t.Errorf("delay %s, want asynq's backoff in [%s, %s]", got, lo, hi)
				}
				return
			}
			if got != tc.wantDelay {
				t.Errorf("delay %s, want %s", got, tc.wantDelay)
			}
		})
	}
}

// importerEnv is an Importer wired to a fresh database and a sandbox CC
// behind an HTTP server whose answers a test can override.
type importerEnv struct {
	db  *store.DB
	sb  *ccsandbox.Server
	im  *Importer
	ids []int64
	url string               // the API base URL the client uses
	ts  ccclient.TokenSource // the client's token source
}

// clientOptions rebuilds the importer's CC client with opts, e.g. a limiter.
func (e *importerEnv) clientOptions(t *testing.T, opts ...ccclient.Option) {
	t.Helper()
	cc, err := ccclient.New(e.url, e.ts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.im.cc, e.im.resolver.cc = cc, cc
}

func newImporterEnv(t *testing.T, redisURL string, opts ccsandbox.Options, ts func(sb *ccsandbox.Server, db *store.DB) ccclient.TokenSource,
	override http.HandlerFunc, lists []string, emails ...string) *importerEnv {
	t.Helper()
	opts.RateLimit, opts.TokenRateLimit = -1, -1
	e := &importerEnv{db: storetest.MySQL(t), sb: ccsandbox.New(opts)}
	var h http.Handler = e.sb
	if override != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method+" "+r.URL.Path == importRoute {
				override(w, r)
				return
			}
			e.sb.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.url, e.ts = srv.URL+"/v3", ts(e.sb, e.db)
	cc, err := ccclient.New(e.url, e.ts)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	aq := asynq.NewClient(opt)
	t.Cleanup(func() { aq.Close() })
	log := slog.New(slog.DiscardHandler)
	e.im = newImporter(e.db, cc, NewEnqueuer(aq), log, Config{PollInterval: 100 * time.Millisecond, PollMaxInterval: time.Second, PollGiveUp: time.Hour})
	for _, name := range lists {
		e.sb.CreateList(name)
	}
	for i, email := range emails {
		res, err := e.db.Ingest(context.Background(),
			&store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte("{}")},
			&store.Enrollment{PortalID: 1, ObjectKey: fmt.Sprint(i), Email: email, FirstName: "F", LastName: "L",
				Lists: lists, ContentHash: email})
		if err != nil {
			t.Fatal(err)
		}
		e.ids = append(e.ids, res.EnrollmentID)
	}
	return e
}

// knowLists puts the ids of the sandbox's lists in the importer's
// resolver, as the start-up check leaves them.
func (e *importerEnv) knowLists() {
	for _, l := range e.sb.Lists() {
		e.im.resolver.ids[l.Name] = l.ListID
	}
}

func (e *importerEnv) run(t *testing.T) error {
	t.Helper()
	payload, _ := json.Marshal(importPayload{EnrollmentIDs: e.ids})
	return e.im.handleImport(context.Background(), asynq.NewTask(TypeCCImport, payload))
}

func staticToken(sb *ccsandbox.Server, _ *store.DB) ccclient.TokenSource {
	access, _ := sb.IssueToken("contact_data offline_access")
	return ccclient.StaticToken(access)
}

// TestImportHandlerClassifiesFailures runs the cc:import handler against CC
// answers it cannot succeed with and checks what it leaves behind: a
// permanent refusal fails the rows with the reason and skips retries;
// anything that may pass later leaves the rows claimed for the retry, and is
// classified (failure or wait, and when) by isFailure and retryDelay.
func TestImportHandlerClassifiesFailures(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	now := time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC)
	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprintf("List %02d", i)
	}
	tests := []struct {
		name     string
		ts       func(*ccsandbox.Server, *store.DB) ccclient.TokenSource
		limiter  ccclient.Limiter
		faults   ccsandbox.Faults
		override http.HandlerFunc
		lists    []string
		emails   []string
		// permanent: the rows are failed with a reason holding every
		// wantReason, the import is rejected, and the error skips retries.
		permanent   bool
		wantReason  []string
		wantFailure bool
		wantDelay   time.Duration // 0: asynq's backoff
		wantPosts   int
	}{
		{name: "400 answered by the server", override: answer(400, `[{"error_key":"contacts.api.bad.request","error_message":"nope"}]`),
			permanent: true, wantReason: []string{"400", "nope"}, wantPosts: 0},
		{name: "415", override: answer(415, `{"error_key":"unsupported_media_type","error_message":"json only"}`),
			permanent: true, wantReason: []string{"415"}},
		{name: "more than 50 lists is refused before sending", lists: many,
			permanent: true, wantReason: []string{"list ids, limit 50"}, wantPosts: 0},
		{name: "500", faults: ccsandbox.Faults{Status: map[string]int{importRoute: 500}}, wantFailure: true, wantDelay: time.Second, wantPosts: 1},
		{name: "503", faults: ccsandbox.Faults{Status: map[string]int{importRoute: 503}}, wantFailure: true, wantDelay: time.Second, wantPosts: 1},
		{name: "429 throttled", faults: ccsandbox.Faults{Limit: "throttled"}, wantDelay: time.Second, wantPosts: 1},
		{name: "429 quota_exceeded", faults: ccsandbox.Faults{Limit: "quota_exceeded"}, wantDelay: time.Hour + time.Minute, wantPosts: 1},
		{name: "429 activity queue full", override: answer(429, `{"error_key":"activity_queue_full","error_message":"Too many requests."}`),
			wantDelay: time.Minute},
		// The shared daily budget refuses before anything is sent; the
		// rows wait, claimed, for the reset a minute after midnight UTC.
		{name: "our daily budget spent", limiter: spentBudget{reset: now.Add(time.Hour)}, wantDelay: time.Hour + time.Minute},
		{name: "401 with a token CC does not know", ts: func(*ccsandbox.Server, *store.DB) ccclient.TokenSource { return ccclient.StaticToken("bogus") },
			wantFailure: true, wantPosts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.ts == nil {
				tc.ts = staticToken
			}
			if tc.lists == nil {
				tc.lists = []string{"Agents"}
			}
			if tc.emails == nil {
				tc.emails = []string{"ann@example.com", "bob@example.com"}
			}
			e := newImporterEnv(t, redisURL, ccsandbox.Options{}, tc.ts, tc.override, tc.lists, tc.emails...)
			// The lists were resolved at start-up: what is tested is the
			// answer to the import itself.
			e.knowLists()
			if tc.limiter != nil {
				e.clientOptions(t, ccclient.WithLimiter(tc.limiter))
			}
			if err := e.sb.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			err := e.run(t)
			if err == nil {
				t.Fatal("handler succeeded")
			}
			ctx := context.Background()
			imps, ierr := e.db.RecentImports(ctx, 10)
			if ierr != nil || len(imps) != 1 {
				t.Fatalf("imports %v (err %v), want one", imps, ierr)
			}
			imp := imps[0]
			if got := errors.Is(err, asynq.SkipRetry); got != tc.permanent {
				t.Errorf("SkipRetry = %v, want %v (err %v)", got, tc.permanent, err)
			}
			for _, id := range e.ids {
				r, gerr := e.db.GetEnrollment(ctx, id)
				if gerr != nil {
					t.Fatal(gerr)
				}
				if r.ImportID != imp.ID {
					t.Errorf("row %d belongs to import %d, want %d", id, r.ImportID, imp.ID)
				}
				if !tc.permanent {
					if r.Status != store.StatusImporting || r.StatusReason != "" {
						t.Errorf("row %d: %q %q, want still importing for the retry", id, r.Status, r.StatusReason)
					}
					continue
				}
				if r.Status != store.StatusFailed {
					t.Errorf("row %d: status %q, want failed", id, r.Status)
				}
				for _, s := range tc.wantReason {
					if !strings.Contains(r.StatusReason, s) {
						t.Errorf("row %d: reason %q does not mention %q", id, r.StatusReason, s)
					}
				}
			}
			if tc.permanent {
				if imp.State != store.ImportRejected || imp.CompletedAt.IsZero() || len(imp.ActivityErrors) != 1 {
					t.Errorf("import %+v, want rejected and completed with the reason", imp)
				}
			} else {
				if imp.State != store.ImportClaimed || !imp.CompletedAt.IsZero() {
					t.Errorf("import %+v, want claimed and open", imp)
				}
				if got := isFailure(err); got != tc.wantFailure {
					t.Errorf("isFailure = %v, want %v (err %v)", got, tc.wantFailure, err)
				}
				d := retryDelay(func() time.Time { return now })(0, err, asynq.NewTask(TypeCCImport, nil))
				if tc.wantDelay != 0 && d != tc.wantDelay {
					t.Errorf("retry delay %s, want %s", d, tc.wantDelay)
				}
				if tc.wantDelay == 0 && (d < 15*time.Second || d > 45*time.Second) {
					t.Errorf("retry delay %s, want asynq's first backoff (15-45s)", d)
				}
			}
			if got := e.sb.Stats().Requests[importRoute]; got != tc.wantPosts && tc.override == nil {
				t.Errorf("import reached the sandbox %d times, want %d", got, tc.wantPosts)
			}
		})
	}
}

// spentBudget is a Limiter whose daily budget is spent, as
// store.CCLimits reports it.
type spentBudget struct{ reset time.Time }

func (b spentBudget) Wait(context.Context) error {
	return &store.BudgetExhaustedError{Budget: 9000, Reset: b.reset}
}

// TestActivityHandler follows one import's activity through CC's states on
// the sandbox clock.
func TestActivityHandler(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	ctx := context.Background()
	e := newImporterEnv(t, redisURL, ccsandbox.Options{}, staticToken, nil, []string{"Agents"}, "ann@example.com", "bob@example.com")
	if err := e.run(t); err != nil {
		t.Fatalf("import: %v", err)
	}
	imps, err := e.db.RecentImports(ctx, 1)
	if err != nil || len(imps) != 1 || imps[0].ActivityID == "" {
		t.Fatalf("imports %v (err %v), want one submitted", imps, err)
	}
	impID := imps[0].ID
	payload, _ := json.Marshal(activityPayload{ImportID: impID})
	poll := func() error { return e.im.handleActivity(ctx, asynq.NewTask(TypeCCActivity, payload)) }

	steps := []struct {
		name       string
		advance    time.Duration
		wantWait   bool
		wantState  string
		wantStatus string
		wantCalls  int
	}{
		{name: "just queued: wait", wantWait: true, wantState: "initialized", wantStatus: store.StatusImporting, wantCalls: 1},
		{name: "processing: wait", advance: 300 * time.Millisecond, wantWait: true, wantState: "processing",
			wantStatus: store.StatusImporting, wantCalls: 1},
		{name: "completed: rows imported", advance: time.Second, wantState: "completed", wantStatus: store.StatusImported, wantCalls: 1},
		{name: "polled again after completion: CC is not asked", advance: time.Hour, wantState: "completed",
			wantStatus: store.StatusImported, wantCalls: 0},
	}
	for _, st := range steps {
		e.sb.Advance(st.advance)
		before := e.sb.Stats().Requests["GET /v3/activities/{id}"]
		err := poll()
		var w *waitError
		switch {
		case st.wantWait && !errors.As(err, &w):
			t.Fatalf("%s: err %v, want a waitError", st.name, err)
		case st.wantWait && (isFailure(err) || w.after < 100*time.Millisecond || w.after > time.Second):
			t.Errorf("%s: wait %s failure %v, want a non-failure wait within the poll bounds", st.name, w.after, isFailure(err))
		case !st.wantWait && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		}
		imp, err := e.db.GetImport(ctx, impID)
		if err != nil {
			t.Fatal(err)
		}
		if imp.State != st.wantState {
			t.Errorf("%s: import state %q, want %q", st.name, imp.State, st.wantState)
		}
		for _, id := range e.ids {
			r, _ := e.db.GetEnrollment(ctx, id)
			if r.Status != st.wantStatus {
				t.Errorf("%s: row %d %q, want %q", st.name, id, r.Status, st.wantStatus)
			}
		}
		calls := e.sb.Stats().Requests["GET /v3/activities/{id}"] - before
		if want := st.wantCalls; calls != want {
			t.Errorf("%s: %d activity polls reached CC, want %d", st.name, calls, want)
		}
	}
}

// TestActivityHandlerForgottenActivity: CC forgets activities after 10
// days; an import whose activity is gone fails its rows for replay instead
// of polling forever.
func TestActivityHandlerForgottenActivity(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	ctx := context.Background()
	// The token must outlive the 11 days the sandbox clock moves.
	e := newImporterEnv(t, redisURL, ccsandbox.Options{TokenTTL: 365 * 24 * time.Hour}, staticToken, nil,
		[]string{"Agents"}, "ann@example.com", "bob@example.com")
	if err := e.run(t); err != nil {
		t.Fatalf("import: %v", err)
	}
	imps, err := e.db.RecentImports(ctx, 1)
	if err != nil || len(imps) != 1 || imps[0].ActivityID == "" {
		t.Fatalf("imports %v (err %v), want one submitted", imps, err)
	}
	e.sb.Advance(11 * 24 * time.Hour)
	payload, _ := json.Marshal(activityPayload{ImportID: imps[0].ID})
	if err := e.im.handleActivity(ctx, asynq.NewTask(TypeCCActivity, payload)); err != nil {
		t.Fatalf("poll of a forgotten activity: %v, want nil (nothing more to learn)", err)
	}
	if got := e.sb.Stats().Requests["GET /v3/activities/{id}"]; got != 1 {
		t.Errorf("activity polled %d times, want 1", got)
	}
	imp, err := e.db.GetImport(ctx, imps[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if imp.State != store.ImportRejected || imp.CompletedAt.IsZero() {
		t.Errorf("import %+v, want rejected and completed", imp)
	}
	for _, id := range e.ids {
		r, _ := e.db.GetEnrollment(ctx, id)
		if r.Status != store.StatusFailed || !strings.Contains(r.StatusReason, imps[0].ActivityID+" not found") {
			t.Errorf("row %d: %q %q, want failed naming the missing activity", id, r.Status, r.StatusReason)
		}
	}
	// A poll of an import for an id that does not exist is dropped.
	payload, _ = json.Marshal(activityPayload{ImportID: imps[0].ID + 1000})
	if err := e.im.handleActivity(ctx, asynq.NewTask(TypeCCActivity, payload)); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("poll of an unknown import: %v, want SkipRetry", err)
	}
}

func TestPollDelay(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	im := newImporter(nil, nil, nil, nil, Config{PollInterval: 2 * time.Second, PollMaxInterval: 2 * time.Minute})
	tests := []struct {
		age  time.Duration
		want time.Duration
	}{
		{0, 2 * time.Second},
		{4 * time.Second, 2 * time.Second},
		{20 * time.Second, 5 * time.Second},
		{8 * time.Minute, 2 * time.Minute},
		{24 * time.Hour, 2 * time.Minute},
	}
	for _, tc := range tests {
		im.now = func() time.Time { return created.Add(tc.age) }
		if got := im.pollDelay(created); got != tc.want {
			t.Errorf("pollDelay after %s = %s, want %s", tc.age, got, tc.want)
		}
	}
}
