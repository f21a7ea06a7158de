package jobs_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
)

// schedulerLeaseKey is the Redis key of the scheduler's lease.
const schedulerLeaseKey = "hs2cc:lock:scheduler"

// sweepCounter counts enrollment:sweep runs across every worker that shares
// it: each run starts with exactly one StalePending call.
type sweepCounter struct {
	jobs.Store
	n atomic.Int64
}

func (s *sweepCounter) StalePending(ctx context.Context, before time.Time, limit int) ([]store.PendingRef, error) {
	s.n.Add(1)
	return s.Store.StalePending(ctx, before, limit)
}

// countSweeps returns how many sweeps ran during the next d.
func (s *sweepCounter) countSweeps(d time.Duration) int {
	before := s.n.Load()
	time.Sleep(d)
	return int(s.n.Load() - before)
}

// workerGroup is several `hs2cc work` processes in one test process, each
// with its own asynq server, scheduler and Redis connections on the same
// Redis database.
type workerGroup struct {
	t       *testing.T
	workers []*jobs.Worker
	stops   []func()
}

func (e *env) startWorkers(n int, cfg jobs.Config, st jobs.Store) *workerGroup {
	e.t.Helper()
	g := &workerGroup{t: e.t}
	for range n {
		w := jobs.NewWorker(e.redisOpt, cfg, st, e.cc, e.enq, nil, e.log)
		if err := w.Start(); err != nil {
			e.t.Fatal(err)
		}
		// A worker the test shut down already is not shut down again.
		stop := sync.OnceFunc(w.Shutdown)
		e.t.Cleanup(stop)
		g.workers = append(g.workers, w)
		g.stops = append(g.stops, stop)
	}
	return g
}

// leaders returns the indexes of the workers that say they lead now.
func (g *workerGroup) leaders() []int {
	var out []int
	for i, w := range g.workers {
		if w.Leading() {
			out = append(out, i)
		}
	}
	return out
}

// waitOneLeader waits until exactly one worker among the running ones
// leads, and returns its index and how long that took.
func (g *workerGroup) waitOneLeader(timeout time.Duration, running func(i int) bool) (int, time.Duration) {
	g.t.Helper()
	start := time.Now()
	leader := -1
	waitFor(g.t, timeout, func() (bool, string) {
		ls := g.leaders()
		if len(ls) == 1 && running(ls[0]) {
			leader = ls[0]
			return true, ""
		}
		return false, fmt.Sprintf("leaders %v", ls)
	})
	return leader, time.Since(start)
}

// leaderSampler checks Leading() of every worker every few milliseconds
// and remembers each sample in which more than one worker led.
type leaderSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples atomic.Int64
	mu      sync.Mutex
	doubles []string
}

func (g *workerGroup) sample(every time.Duration) *leaderSampler {
	s := &leaderSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			s.samples.Add(1)
			if ls := g.leaders(); len(ls) > 1 {
				s.mu.Lock()
				s.doubles = append(s.doubles, fmt.Sprintf("%s: workers %v", time.Now().Format("15:04:05.000"), ls))
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *leaderSampler) finish() (samples int64, doubles []string) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples.Load(), s.doubles
}

// TestWorkerLeaderRunsThePeriodicTasksOnce runs four workers on one Redis:
// exactly one holds the scheduler's lease and enqueues the periodic sweep,
// so it runs about once per interval rather than four times. When the
// leader shuts down another takes over within the lease, and when the lease
// is lost (its key deleted, as a Redis flush or failover does) the holder
// stops leading at its next renewal and one worker leads again. Throughout,
// no two workers lead at once.
func TestWorkerLeaderRunsThePeriodicTasksOnce(t *testing.T) {
	t.Parallel()
	const (
		workers  = 4
		interval = time.Second
		lease    = 1500 * time.Millisecond
		renew    = lease / 3
		// slack absorbs timer and scheduling jitter under -race on a busy
		// machine; it is small next to the intervals that are asserted.
		slack = 300 * time.Millisecond
	)
	e := newEnv(t, unlimited)
	ctx := context.Background()
	cfg := testConfig()
	cfg.SweepInterval = interval
	cfg.LeaderLease = lease
	counter := &sweepCounter{Store: e.db}
	g := e.startWorkers(workers, cfg, counter)
	stopped := make([]bool, workers)
	running := func(i int) bool { return !stopped[i] }

	// The first bid wins at once, and the winner holds the lease for half
	// its life before it starts the scheduler.
	sampler := g.sample(5 * time.Millisecond)
	leader, took := g.waitOneLeader(lease/2+slack, running)
	t.Logf("worker %d leads %s after the start", leader, took.Round(time.Millisecond))

	// The asynq processor polls an empty queue every 0.5-1.5 s, so a
	// window's count can be off by a sweep or two at either end; four
	// schedulers would run about four times as many.
	const window = 3 * time.Second
	perWindow := int(window / interval)
	checkSweeps := func(phase string) {
		t.Helper()
		n := counter.countSweeps(window)
		t.Logf("%s: %d sweeps in %s", phase, n, window)
		if n < perWindow-2 || n > perWindow+2 {
			t.Errorf("%s: %d sweeps in %s, want about %d (one per %s)", phase, n, window, perWindow, interval)
		}
	}
	checkSweeps("one leader")
	if ls := g.leaders(); len(ls) != 1 || ls[0] != leader {
		t.Errorf("leaders %v after the window, want still [%d]", ls, leader)
	}

	// A leader that shuts down gives the lease up; another worker takes
	// over within the lease's life.
	shutdownAt := time.Now()
	stopped[leader] = true
	go g.stops[leader]()
	next, _ := g.waitOneLeader(lease+slack, running)
	t.Logf("worker %d leads %s after worker %d began shutting down", next, time.Since(shutdownAt).Round(time.Millisecond), leader)
	if next == leader {
		t.Fatalf("the stopped worker %d still leads", leader)
	}
	if g.workers[leader].Leading() {
		t.Errorf("stopped worker %d still says it leads", leader)
	}
	checkSweeps("after a handover")

	// The lease is lost under the holder's feet. It learns so at its next
	// renewal and stops; one worker (maybe itself again) then leads.
	leader = next
	for round := 1; round <= 3; round++ {
		if err := e.rdb.Del(ctx, schedulerLeaseKey).Err(); err != nil {
			t.Fatal(err)
		}
		lostAt := time.Now()
		waitFor(t, renew+slack, func() (bool, string) {
			return !g.workers[leader].Leading(), fmt.Sprintf("worker %d still leads after its lease was deleted", leader)
		})
		t.Logf("round %d: worker %d stopped leading %s after its lease was deleted", round, leader, time.Since(lostAt).Round(time.Millisecond))
		leader, _ = g.waitOneLeader(lease+renew+slack, running)
		t.Logf("round %d: worker %d leads %s after the deletion", round, leader, time.Since(lostAt).Round(time.Millisecond))
	}
	checkSweeps("after the lease was lost")

	samples, doubles := sampler.finish()
	if samples < 100 {
		t.Errorf("only %d samples of Leading(); the check saw too little", samples)
	}
	if len(doubles) > 0 {
		t.Errorf("%d of %d samples saw two or more leaders at once, first ones: %v", len(doubles), samples, doubles[:min(len(doubles), 5)])
	}
}
