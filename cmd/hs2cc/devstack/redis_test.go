package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// The tests in this file prove the Redis features hs2cc relies on (asynq
// and its web UI, plus a go-redis lock) against the miniredis that Redis()
// starts.

// asynqOpt turns a Redis() URL into asynq's connection option exactly as
// the service does.
func asynqOpt(t *testing.T, u string) asynq.RedisConnOpt {
	t.Helper()
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		t.Fatalf("asynq.ParseRedisURI(%q): %v", u, err)
	}
	return opt
}

// recorder is an asynq handler that records what it processed.
type recorder struct {
	mu    sync.Mutex
	tasks []*asynq.Task
}

func (r *recorder) ProcessTask(_ context.Context, task *asynq.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks = append(r.tasks, task)
	return nil
}

func (r *recorder) snapshot() []*asynq.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tasks)
}

func (r *recorder) count(taskType string) int {
	n := 0
	for _, task := range r.snapshot() {
		if task.Type() == taskType {
			n++
		}
	}
	return n
}

// startServer runs an asynq.Server for the rest of the test. The check
// intervals are shortened from asynq's multi-second defaults so the tests
// finish quickly; nothing else differs from production settings.
func startServer(t *testing.T, opt asynq.RedisConnOpt, cfg asynq.Config) *recorder {
	t.Helper()
	if cfg.Queues == nil {
		cfg.Queues = map[string]int{"default": 1, "webhooks": 2}
	}
	cfg.Concurrency = 4
	cfg.DelayedTaskCheckInterval = 100 * time.Millisecond
	cfg.LogLevel = asynq.ErrorLevel
	srv := asynq.NewServer(opt, cfg)
	rec := &recorder{}
	if err := srv.Start(rec); err != nil {
		t.Fatalf("asynq.Server.Start: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return rec
}

func newClient(t *testing.T, opt asynq.RedisConnOpt) *asynq.Client {
	t.Helper()
	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Item 8: Enqueue with TaskID, ProcessIn and Queue; Server Start/Shutdown.
func TestAsynqEnqueueAndProcess(t *testing.T) {
	u, _ := startRedis(t)
	opt := asynqOpt(t, u)
	client := newClient(t, opt)

	info, err := client.Enqueue(asynq.NewTask("contact:sync", []byte(`{"id":1}`)), asynq.TaskID("evt-1"), asynq.Queue("webhooks"))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if info.ID != "evt-1" || info.Queue != "webhooks" || info.State != asynq.TaskStatePending {
		t.Errorf("TaskInfo id=%q queue=%q state=%v", info.ID, info.Queue, info.State)
	}

	t.Run("duplicate TaskID is ErrTaskIDConflict", func(t *testing.T) {
		_, err := client.Enqueue(asynq.NewTask("contact:sync", nil), asynq.TaskID("evt-1"), asynq.Queue("webhooks"))
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Fatalf("duplicate TaskID: %v, want asynq.ErrTaskIDConflict", err)
		}
	})

	delayed, err := client.Enqueue(asynq.NewTask("contact:retry", nil), asynq.TaskID("evt-2"), asynq.ProcessIn(300*time.Millisecond))
	if err != nil {
		t.Fatalf("Enqueue ProcessIn: %v", err)
	}
	if delayed.State != asynq.TaskStateScheduled || delayed.Queue != "default" {
		t.Errorf("ProcessIn task state=%v queue=%q, want scheduled in default", delayed.State, delayed.Queue)
	}

	rec := startServer(t, opt, asynq.Config{})
	waitFor(t, 10*time.Second, "both tasks processed", func() bool {
		return rec.count("contact:sync") == 1 && rec.count("contact:retry") == 1
	})
	for _, task := range rec.snapshot() {
		if task.Type() == "contact:sync" && string(task.Payload()) != `{"id":1}` {
			t.Errorf("payload %q", task.Payload())
		}
	}

	t.Run("TaskID is free again only after retention", func(t *testing.T) {
		// A processed task without Retention is deleted, so its ID can be
		// reused; this is what makes TaskID an at-most-once-while-queued
		// guard, not a permanent dedup key.
		waitFor(t, 5*time.Second, "evt-1 to be deleted", func() bool {
			_, err := asynq.NewInspector(opt).GetTaskInfo("webhooks", "evt-1")
			return errors.Is(err, asynq.ErrTaskNotFound)
		})
		if _, err := client.Enqueue(asynq.NewTask("contact:sync", nil), asynq.TaskID("evt-1"), asynq.Queue("webhooks")); err != nil {
			t.Errorf("re-enqueue after processing: %v", err)
		}
	})
}

// Item 9: group aggregation.
func TestAsynqGroupAggregation(t *testing.T) {
	t.Run("GroupGracePeriod below 1s panics", func(t *testing.T) {
		// asynq v0.26 enforces a 1s minimum: NewServer panics with
		// "GroupGracePeriod cannot be less than a second". 200ms is not
		// possible; use 1s (or more) in the service's config.
		u, _ := startRedis(t)
		defer func() {
			r := recover()
			if r == nil || !strings.Contains(fmt.Sprint(r), "GroupGracePeriod cannot be less than a second") {
				t.Fatalf("recover() = %v, want the GroupGracePeriod panic", r)
			}
		}()
		asynq.NewServer(asynqOpt(t, u), asynq.Config{
			GroupGracePeriod: 200 * time.Millisecond,
			GroupAggregator:  asynq.GroupAggregatorFunc(aggregate),
			LogLevel:         asynq.ErrorLevel,
		})
	})

	for _, tc := range []struct {
		name    string
		tasks   int
		maxSize int
	}{
		// GroupMaxSize reached: aggregated at the next check.
		{"by GroupMaxSize", 3, 3},
		// Fewer than GroupMaxSize: aggregated once the 1s grace period
		// passes without new tasks.
		{"by GroupGracePeriod", 2, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := startRedis(t)
			opt := asynqOpt(t, u)
			client := newClient(t, opt)
			for i := range tc.tasks {
				if _, err := client.Enqueue(asynq.NewTask("contact:change", []byte(fmt.Sprint(i))), asynq.Group("portal-1"), asynq.Queue("webhooks")); err != nil {
					t.Fatalf("Enqueue to group: %v", err)
				}
			}
			ins := asynq.NewInspector(opt)
			defer ins.Close()
			aggregating, err := ins.ListAggregatingTasks("webhooks", "portal-1")
			if err != nil || len(aggregating) != tc.tasks {
				t.Fatalf("ListAggregatingTasks: %d tasks, %v", len(aggregating), err)
			}

			rec := startServer(t, opt, asynq.Config{
				GroupAggregator:  asynq.GroupAggregatorFunc(aggregate),
				GroupGracePeriod: time.Second,
				GroupMaxDelay:    5 * time.Second,
				GroupMaxSize:     tc.maxSize,
			})
			waitFor(t, 15*time.Second, "the aggregated task", func() bool { return rec.count("contact:batch") > 0 })
			got := rec.snapshot()
			if len(got) != 1 {
				t.Fatalf("processed %d tasks, want exactly the one aggregate", len(got))
			}
			var parts []string
			if err := json.Unmarshal(got[0].Payload(), &parts); err != nil {
				t.Fatal(err)
			}
			slices.Sort(parts)
			want := make([]string, tc.tasks)
			for i := range want {
				want[i] = fmt.Sprint(i)
			}
			if !slices.Equal(parts, want) {
				t.Errorf("aggregate payload %v, want %v", parts, want)
			}
		})
	}
}

// aggregate folds a group's tasks into one whose payload lists theirs.
func aggregate(group string, tasks []*asynq.Task) *asynq.Task {
	parts := make([]string, len(tasks))
	for i, task := range tasks {
		parts[i] = string(task.Payload())
	}
	b, _ := json.Marshal(parts)
	return asynq.NewTask("contact:batch", b)
}

// Item 10: the scheduler enqueues a periodic task.
func TestAsynqScheduler(t *testing.T) {
	u, _ := startRedis(t)
	opt := asynqOpt(t, u)
	// The heartbeat is what publishes entries for Inspector.SchedulerEntries
	// (and asynqmon's Schedulers page); its 10s default is shortened here.
	sched := asynq.NewScheduler(opt, &asynq.SchedulerOpts{LogLevel: asynq.ErrorLevel, HeartbeatInterval: 200 * time.Millisecond})
	entryID, err := sched.Register("@every 1s", asynq.NewTask("token:refresh", nil), asynq.Queue("default"))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := sched.Start(); err != nil {
		t.Fatalf("Scheduler.Start: %v", err)
	}
	t.Cleanup(sched.Shutdown)

	rec := startServer(t, opt, asynq.Config{})
	waitFor(t, 10*time.Second, "two periodic runs", func() bool { return rec.count("token:refresh") >= 2 })

	ins := asynq.NewInspector(opt)
	defer ins.Close()
	var entries []*asynq.SchedulerEntry
	waitFor(t, 5*time.Second, "the scheduler heartbeat", func() bool {
		entries, err = ins.SchedulerEntries()
		return err == nil && len(entries) > 0
	})
	if len(entries) != 1 || entries[0].ID != entryID || entries[0].Spec != "@every 1s" {
		t.Errorf("SchedulerEntries = %+v, want the one registered entry", entries)
	}
}

// Item 11: the Inspector calls asynqmon is built on.
func TestAsynqInspector(t *testing.T) {
	u, _ := startRedis(t)
	opt := asynqOpt(t, u)
	client := newClient(t, opt)
	for i := range 3 {
		if _, err := client.Enqueue(asynq.NewTask("contact:sync", nil), asynq.TaskID(fmt.Sprintf("t%d", i)), asynq.Queue("webhooks")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Enqueue(asynq.NewTask("contact:sync", nil), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}

	ins := asynq.NewInspector(opt)
	defer ins.Close()
	queues, err := ins.Queues()
	if err != nil {
		t.Fatalf("Queues: %v", err)
	}
	slices.Sort(queues)
	if !slices.Equal(queues, []string{"default", "webhooks"}) {
		t.Errorf("Queues() = %v", queues)
	}
	qi, err := ins.GetQueueInfo("webhooks")
	if err != nil {
		t.Fatalf("GetQueueInfo: %v", err)
	}
	if qi.Pending != 3 || qi.Size != 3 || qi.Paused {
		t.Errorf("GetQueueInfo(webhooks) pending=%d size=%d paused=%v", qi.Pending, qi.Size, qi.Paused)
	}
	pending, err := ins.ListPendingTasks("webhooks", asynq.PageSize(10))
	if err != nil {
		t.Fatalf("ListPendingTasks: %v", err)
	}
	var ids []string
	for _, ti := range pending {
		ids = append(ids, ti.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"t0", "t1", "t2"}) {
		t.Errorf("ListPendingTasks ids = %v", ids)
	}
	scheduled, err := ins.ListScheduledTasks("default")
	if err != nil || len(scheduled) != 1 {
		t.Errorf("ListScheduledTasks: %d, %v", len(scheduled), err)
	}
	if err := ins.PauseQueue("webhooks"); err != nil {
		t.Errorf("PauseQueue: %v", err)
	}
	if qi, err := ins.GetQueueInfo("webhooks"); err != nil || !qi.Paused {
		t.Errorf("after PauseQueue: paused=%v err=%v", qi != nil && qi.Paused, err)
	}
}

// Item 12: asynqmon v0.7.2 (built against asynq v0.24) serving the API for
// asynq v0.26 queues under a sub-path.
func TestAsynqmon(t *testing.T) {
	u, _ := startRedis(t)
	opt := asynqOpt(t, u)
	client := newClient(t, opt)
	if _, err := client.Enqueue(asynq.NewTask("contact:sync", nil), asynq.Queue("webhooks")); err != nil {
		t.Fatal(err)
	}

	mon := asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: opt, ReadOnly: true})
	t.Cleanup(func() { _ = mon.Close() })
	mux := http.NewServeMux()
	mux.Handle(mon.RootPath()+"/", mon)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	get := func(t *testing.T, path string) (int, string, []byte) {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}

	t.Run("GET api/queues", func(t *testing.T) {
		status, ctype, body := get(t, "/ops/queues/api/queues")
		if status != http.StatusOK {
			t.Fatalf("status %d, body %s", status, body)
		}
		// Caveat: asynqmon v0.7.2 writes JSON without setting Content-Type,
		// so net/http sniffs it as text/plain. Its own UI does not care;
		// a client that checks the header would.
		if ctype != "text/plain; charset=utf-8" {
			t.Logf("asynqmon now sets Content-Type %q", ctype)
		}
		var resp struct {
			Queues []struct {
				Queue   string `json:"queue"`
				Size    int    `json:"size"`
				Pending int    `json:"pending"`
			} `json:"queues"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if len(resp.Queues) != 1 || resp.Queues[0].Queue != "webhooks" || resp.Queues[0].Pending != 1 {
			t.Errorf("queues = %+v (body %s)", resp.Queues, body)
		}
	})

	t.Run("GET pending tasks", func(t *testing.T) {
		status, _, body := get(t, "/ops/queues/api/queues/webhooks/pending_tasks")
		if status != http.StatusOK || !strings.Contains(string(body), "contact:sync") {
			t.Errorf("status %d body %s", status, body)
		}
	})

	t.Run("GET UI page", func(t *testing.T) {
		status, ctype, body := get(t, "/ops/queues/")
		if status != http.StatusOK || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(string(body), "/ops/queues") {
			t.Errorf("status %d content type %q body starts %.200s", status, ctype, body)
		}
	})
}

// Item 13: go-redis SET NX PX and a Lua compare-and-delete lock release.
func TestRedisLock(t *testing.T) {
	ctx := context.Background()
	_, rdb := startRedis(t)

	// release deletes the lock only if we still own it.
	release := redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)

	ok, err := rdb.SetNX(ctx, "lock:cc-token", "owner-a", 300*time.Millisecond).Result()
	if err != nil || !ok {
		t.Fatalf("SET NX PX for a free lock: %v, %v", ok, err)
	}
	// go-redis sends SetNX with a TTL as SET key value PX ms NX; check the
	// TTL landed.
	if ttl, err := rdb.PTTL(ctx, "lock:cc-token").Result(); err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
		t.Errorf("PTTL = %v, %v", ttl, err)
	}
	if ok, err := rdb.SetNX(ctx, "lock:cc-token", "owner-b", time.Second).Result(); err != nil || ok {
		t.Errorf("SET NX on a held lock: %v, %v; want false", ok, err)
	}
	if n, err := release.Run(ctx, rdb, []string{"lock:cc-token"}, "owner-b").Int(); err != nil || n != 0 {
		t.Errorf("release by non-owner: %d, %v; want 0", n, err)
	}
	if n, err := release.Run(ctx, rdb, []string{"lock:cc-token"}, "owner-a").Int(); err != nil || n != 1 {
		t.Errorf("release by owner: %d, %v; want 1", n, err)
	}

	t.Run("lock expires on its own", func(t *testing.T) {
		// miniredis only ages keys when told to; Redis() advances its
		// clock in the background, so TTLs behave as on a real server.
		if ok, err := rdb.SetNX(ctx, "lock:expiring", "x", 200*time.Millisecond).Result(); err != nil || !ok {
			t.Fatalf("SET NX PX: %v, %v", ok, err)
		}
		waitFor(t, 5*time.Second, "the lock to expire", func() bool {
			n, err := rdb.Exists(ctx, "lock:expiring").Result()
			return err == nil && n == 0
		})
	})
}
