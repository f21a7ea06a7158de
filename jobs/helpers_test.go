package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// importRoute is the sandbox's Stats key for contacts_json_import.
const importRoute = "POST /v3/activities/contacts_json_import"

// logBuffer collects slog output from goroutines that may outlive a test
// (asynq's), and prints it only when the test failed.
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

// newLoggerBuffer makes a logger whose output is shown only when the test
// failed, and hands back its buffer, for tests that count what the worker
// logged.
func newLoggerBuffer(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// env is one isolated world: a fresh MySQL database, a private Redis
// database, and a sandbox CC behind a real HTTP server.
type env struct {
	t        *testing.T
	db       *store.DB
	redisURL string
	redisOpt asynq.RedisConnOpt
	rdb      *redis.Client
	sb       *ccsandbox.Server
	srv      *httptest.Server
	cc       *ccclient.Client
	aq       *asynq.Client
	enq      *jobs.Enqueuer
	insp     *asynq.Inspector
	log      *slog.Logger
	logs     *logBuffer

	mu          sync.Mutex
	importSizes []int // body bytes of every contacts_json_import the sandbox received
}

// importBodySizes returns the size of every import body sent so far.
func (e *env) importBodySizes() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.importSizes)
}

func newEnv(t *testing.T, opts ccsandbox.Options) *env {
	t.Helper()
	e := &env{t: t}
	e.log, e.logs = newLoggerBuffer(t)
	e.db = storetest.MySQL(t)
	e.redisURL = storetest.RedisURL(t)
	opt, err := asynq.ParseRedisURI(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.redisOpt = opt
	ropt, err := redis.ParseURL(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(ropt)
	t.Cleanup(func() { e.rdb.Close() })
	e.sb = ccsandbox.New(opts)
	// Import bodies are measured on the wire, where CC's 4 MB limit applies.
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method+" "+r.URL.Path == importRoute {
			body, _ := io.ReadAll(r.Body)
			e.mu.Lock()
			e.importSizes = append(e.importSizes, len(body))
			e.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		e.sb.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	access, _ := e.sb.IssueToken("contact_data offline_access")
	e.cc, err = ccclient.New(e.srv.URL+"/v3", ccclient.StaticToken(access))
	if err != nil {
		t.Fatal(err)
	}
	e.aq = asynq.NewClient(e.redisOpt)
	t.Cleanup(func() { e.aq.Close() })
	e.enq = jobs.NewEnqueuer(e.aq)
	e.insp = asynq.NewInspector(e.redisOpt)
	t.Cleanup(func() { e.insp.Close() })
	return e
}

// testConfig is the short worker configuration the brief asks for.
func testConfig() jobs.Config {
	return jobs.Config{
		Concurrency:      10,
		GroupGracePeriod: time.Second,
		GroupMaxDelay:    2 * time.Second,
		GroupMaxSize:     5000,
		PollInterval:     100 * time.Millisecond,
		PollMaxInterval:  500 * time.Millisecond,
		SweepInterval:    0,
		SweepAge:         10 * time.Minute,
		ShutdownTimeout:  2 * time.Second,
		// A new leader waits half the lease before it starts the periodic
		// tasks; the production 30 s would hold the first sweep for 15 s.
		LeaderLease: time.Second,
	}
}

// startWorker starts a worker against the env and stops it when the test
// ends (before the Redis database is flushed and the sandbox closed).
func (e *env) startWorker(cfg jobs.Config, opts ...jobs.Option) *jobs.Worker {
	e.t.Helper()
	w := jobs.NewWorker(e.redisOpt, cfg, e.db, e.cc, e.enq, nil, e.log, opts...)
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Shutdown)
	return w
}

// person is one enrollment to ingest.
type person struct {
	key, email, first string
	lists             []string
}

func people(prefix string, n int, lists ...string) []person {
	out := make([]person, n)
	for i := range out {
		out[i] = person{
			key:   fmt.Sprintf("%s-%d", prefix, i),
			email: fmt.Sprintf("%s.%03d@example.com", prefix, i),
			first: fmt.Sprintf("Agent%d", i),
			lists: lists,
		}
	}
	return out
}

// ingest stores the people as new enrollments, the way the webhook does,
// using a few goroutines so that hundreds of rows do not take seconds.
func (e *env) ingest(ps []person) []store.IngestResult {
	e.t.Helper()
	ctx := context.Background()
	out := make([]store.IngestResult, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, p := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body, _ := json.Marshal(map[string]string{"email": p.email})
			d := &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: body}
			en := &store.Enrollment{
				PortalID: 62515, ObjectKey: p.key, Email: p.email, FirstName: p.first, LastName: "Tester",
				Country: "United States", Lists: p.lists, ContentHash: "h-" + p.key,
				Properties: map[string]string{"email": p.email},
			}
			out[i], errs[i] = e.db.Ingest(ctx, d, en)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.t.Fatalf("ingest %s: %v", ps[i].email, err)
		}
		if out[i].Outcome != store.OutcomeCreated {
			e.t.Fatalf("ingest %s: outcome %v, want created", ps[i].email, out[i].Outcome)
		}
	}
	return out
}

// enqueue queues every ingested enrollment as the webhook does.
func (e *env) enqueue(res []store.IngestResult) {
	e.t.Helper()
	ctx := context.Background()
	for _, r := range res {
		if err := e.enq.EnqueueEnrollment(ctx, r.EnrollmentID, r.Version, r.Lists); err != nil {
			e.t.Fatalf("enqueue %d: %v", r.EnrollmentID, err)
		}
	}
}

func ids(res []store.IngestResult) []int64 {
	out := make([]int64, len(res))
	for i, r := range res {
		out[i] = r.EnrollmentID
	}
	return out
}

// waitFor polls cond until it reports true or the deadline passes; the
// message of the last poll explains a timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSettled waits until none of the rows is pending or importing any more.
func (e *env) waitSettled(ids []int64, timeout time.Duration) []*store.Enrollment {
	e.t.Helper()
	var rows []*store.Enrollment
	waitFor(e.t, timeout, func() (bool, string) {
		rows = e.rows(ids)
		counts := map[string]int{}
		for _, r := range rows {
			counts[r.Status]++
		}
		return counts[store.StatusPending]+counts[store.StatusImporting] == 0,
			fmt.Sprintf("row statuses %v", counts)
	})
	return rows
}

func (e *env) rows(ids []int64) []*store.Enrollment {
	e.t.Helper()
	out := make([]*store.Enrollment, 0, len(ids))
	for _, id := range ids {
		r, err := e.db.GetEnrollment(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (e *env) imports() []*store.Import {
	e.t.Helper()
	imps, err := e.db.RecentImports(context.Background(), 100)
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(imps) // oldest first
	return imps
}

// waitTaskCompleted waits for a task enqueued with asynq.Retention to be
// processed successfully, failing fast if it went to retry or the archive.
func (e *env) waitTaskCompleted(id string, timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, func() (bool, string) {
		info, err := e.insp.GetTaskInfo(jobs.Queue, id)
		if err != nil {
			return false, fmt.Sprintf("task %s: %v", id, err)
		}
		switch info.State {
		case asynq.TaskStateRetry, asynq.TaskStateArchived:
			e.t.Fatalf("task %s is %v: %s", id, info.State, info.LastErr)
		}
		return info.State == asynq.TaskStateCompleted, fmt.Sprintf("task %s is %v", id, info.State)
	})
}

// contactsByEmail returns the sandbox's contacts keyed by email.
func (e *env) contactsByEmail() map[string]ccsandbox.SandboxContact {
	out := map[string]ccsandbox.SandboxContact{}
	for _, c := range e.sb.Contacts() {
		out[c.Email] = c
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
