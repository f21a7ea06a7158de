package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// The tests run the real application (handlers.New) on a real MariaDB and a
// real Redis, and look at what it did through the store and an asynq
// Inspector, never through the handlers' internals.

const (
	secret    = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
	publicURL = "https://hooks.example.com"
	hookPath  = "/webhooks/hubspot"
	opsUser   = "ops"
	opsPass   = "correct horse battery staple"
)

// lists are the CC lists every test enrollment goes to; the second name is
// not ASCII so that the group key carries it through Redis.
var lists = []string{"New Agents", "Matkatoimistot – Suomi"}

// app is one running service and the handles to look behind it.
type app struct {
	db   *store.DB
	ins  *asynq.Inspector
	srv  *httptest.Server
	echo http.Handler
	logs *logBuffer
}

// setup is what a test may change before the service starts.
type setup struct {
	cfg handlers.Config
	// db is the store the service uses; a fresh migrated database when nil.
	db *store.DB
	// wrap, when set, puts a Store of the test's own in front of db, to
	// count or fail some calls.
	wrap func(*store.DB) handlers.Store
	// enqueueTo is where the enqueuer's asynq client connects; the test's
	// Redis when nil.
	enqueueTo asynq.RedisConnOpt
}

// start runs the application the way cmd/hs2cc wires it: real store, real
// asynq client and enqueuer, real Asynqmon behind basic auth.
func start(t testing.TB, opts ...func(*setup)) *app {
	t.Helper()
	redisURL := storetest.RedisURL(t)
	redisOpt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ins := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { ins.Close() })
	mon := asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: redisOpt})
	t.Cleanup(func() { mon.Close() })

	logs := &logBuffer{}
	s := &setup{cfg: handlers.Config{
		PublicURL:   publicURL,
		Verifier:    &hubspot.Verifier{Secrets: []string{secret}},
		Lists:       lists,
		OpsUser:     opsUser,
		OpsPassword: opsPass,
		Queues:      mon,
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),
	}}
	for _, o := range opts {
		o(s)
	}
	if s.db == nil {
		s.db = storetest.MySQL(t)
	}
	if s.cfg.Ready == nil {
		ropt, err := store.ParseRedisURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(ropt)
		t.Cleanup(func() { rdb.Close() })
		s.cfg.Ready = []handlers.Check{
			{Name: "mysql", Fn: s.db.Ping},
			{Name: "redis", Fn: store.NewRedis(rdb).Ping},
			{Name: "schema", Fn: s.db.CheckSchema},
		}
	}
	if s.enqueueTo == nil {
		s.enqueueTo = redisOpt
	}
	client := asynq.NewClient(s.enqueueTo)
	t.Cleanup(func() { client.Close() })

	var st handlers.Store = s.db
	if s.wrap != nil {
		st = s.wrap(s.db)
	}
	e := handlers.New(s.cfg, st, jobs.NewEnqueuer(client))
	a := serveApp(t, e, logs)
	a.db = s.db
	a.ins = ins
	return a
}

// serveApp serves e for a test: redirects are answers to assert, never to
// follow, and the service's log is shown when the test fails.
func serveApp(t testing.TB, e http.Handler, logs *logBuffer) *app {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", logs)
		}
	})
	return &app{srv: srv, echo: e, logs: logs}
}

// logBuffer collects the service's log for assertions and for failures.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// profile returns the contact profile that "Include all properties" sends,
// with non-ASCII names as \u escapes, exactly as the fixture holds it.
func profile(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/contact-profile.json")
	if err != nil {
		t.Fatal(err)
	}
	// The escapes are the point of the fixture: a handler that re-encoded
	// the body before verifying would break on them.
	if !bytes.Contains(b, []byte(`"Yll\u00e4"`)) {
		t.Fatal(`fixture lost its \u00e4 escape`)
	}
	return b
}

// replaceOnce swaps a text that occurs exactly once, so that a fixture
// change cannot silently leave a variant equal to the original.
func replaceOnce(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	if n := bytes.Count(b, []byte(old)); n != 1 {
		t.Fatalf("%q occurs %d times, want once", old, n)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// sign returns the headers HubSpot sends for body POSTed to the public URL
// plus requestURI, signed now with the test secret (v3 and v2).
func sign(body []byte, requestURI string) http.Header {
	return hubspot.Sign(secret, http.MethodPost, publicURL+requestURI, body, time.Now())
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (a *app) do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func (a *app) request(t testing.TB, method, requestURI string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+requestURI, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// post sends body to the webhook with the headers given.
func (a *app) post(t testing.TB, body []byte, h http.Header) reply {
	t.Helper()
	req := a.request(t, http.MethodPost, hookPath, bytes.NewReader(body))
	maps.Copy(req.Header, h)
	req.Header.Set("Content-Type", "application/json")
	return a.do(t, req)
}

// accepted is the body of a 2xx for a workflow delivery.
type accepted struct {
	ID        int64 `json:"id"`
	Version   int   `json:"version"`
	Duplicate bool  `json:"duplicate"`
}

// decodeJSON decodes the reply strictly: a JSON media type and no fields
// beyond those in v.
func decodeJSON(t testing.TB, r reply, v any) {
	t.Helper()
	if mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("Content-Type %q, want application/json", r.header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r.body, err)
	}
}

func wantAccepted(t testing.TB, r reply, status int) accepted {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var got accepted
	decodeJSON(t, r, &got)
	if got.ID <= 0 {
		t.Errorf("reply %s has no id", r.body)
	}
	return got
}

// wantError checks the status and the one error body shape,
// {"error":{"code":…,"message":…}}.
func wantError(t testing.TB, r reply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var got struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	decodeJSON(t, r, &got)
	if got.Error.Code != code || got.Error.Message == "" {
		t.Errorf("error body %s, want code %q and a message", r.body, code)
	}
}

// deliveries returns every stored delivery, oldest first.
func (a *app) deliveries(t testing.TB) []*store.Delivery {
	t.Helper()
	return loadAll(t, a.db, "deliveries", a.db.GetDelivery)
}

// enrollments returns every stored enrollment, oldest first.
func (a *app) enrollments(t testing.TB) []*store.Enrollment {
	t.Helper()
	return loadAll(t, a.db, "enrollments", a.db.GetEnrollment)
}

// loadAll loads every row of table, by id, oldest first, through get.
func loadAll[T any](t testing.TB, db *store.DB, table string, get func(context.Context, int64) (T, error)) []T {
	t.Helper()
	var out []T
	for _, id := range ids(t, db, "SELECT id FROM "+table+" ORDER BY id") {
		v, err := get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func ids(t testing.TB, db *store.DB, query string) []int64 {
	t.Helper()
	rows, err := db.SQL().Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantNothingStored checks that no delivery and no enrollment exist.
func (a *app) wantNothingStored(t testing.TB) {
	t.Helper()
	if d := a.deliveries(t); len(d) != 0 {
		t.Errorf("%d deliveries stored, want none: first %+v", len(d), d[0])
	}
	if e := a.enrollments(t); len(e) != 0 {
		t.Errorf("%d enrollments stored, want none: first %+v", len(e), e[0])
	}
}

// wantTasks checks that the enrollment tasks in Redis are exactly want, as
// "enrollment:<id>:v<version>" ids, all waiting in the group of the test
// lists, and that nothing else is queued anywhere.
func (a *app) wantTasks(t testing.TB, want ...string) {
	t.Helper()
	queues, err := a.ins.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		for _, q := range queues {
			if info, err := a.ins.GetQueueInfo(q); err != nil || info.Size != 0 {
				t.Errorf("queue %s: %+v, %v; want no tasks", q, info, err)
			}
		}
		return
	}
	if !slices.Equal(queues, []string{jobs.Queue}) {
		t.Errorf("queues %v, want only %q", queues, jobs.Queue)
	}
	group := jobs.GroupKey(lists)
	tasks, err := a.ins.ListAggregatingTasks(jobs.Queue, group)
	if err != nil {
		t.Fatalf("list aggregating tasks of %q: %v", group, err)
	}
	var got []string
	for _, task := range tasks {
		got = append(got, task.ID)
		if task.Type != jobs.TypeEnrollmentSync || task.Group != group || task.State != asynq.TaskStateAggregating {
			t.Errorf("task %s: type %q group %q state %v", task.ID, task.Type, task.Group, task.State)
		}
		var p struct {
			EnrollmentID int64 `json:"enrollment_id"`
		}
		if err := json.Unmarshal(task.Payload, &p); err != nil || !strings.HasPrefix(task.ID, "enrollment:"+strconv.FormatInt(p.EnrollmentID, 10)+":v") {
			t.Errorf("task %s: payload %s does not name its enrollment (%v)", task.ID, task.Payload, err)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("tasks in group %q: %v, want %v", group, got, want)
	}
	info, err := a.ins.GetQueueInfo(jobs.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != len(want) || info.Aggregating != len(want) || info.Groups != 1 {
		t.Errorf("queue %s: size %d aggregating %d groups %d, want %d tasks in one group",
			jobs.Queue, info.Size, info.Aggregating, info.Groups, len(want))
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newRequest is a webhook request for the application itself, without a
// server in between; httptest sets RequestURI to the path, as a server would.
func newRequest(body []byte, h http.Header) *http.Request {
	req := httptest.NewRequest(http.MethodPost, hookPath, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}
