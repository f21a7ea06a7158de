package jobs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
)

// Leases hands out the scheduler's leadership; *store.Redis is one.
type Leases interface {
	Acquire(ctx context.Context, name string, ttl time.Duration) (*store.Lease, error)
}

// schedulerLease names the lease whose holder runs the periodic tasks.
const schedulerLease = "scheduler"

// leader runs the asynq scheduler in at most one process at a time. Every
// `work` process has one; each tries to take a Redis lease, and only the
// holder enqueues periodic tasks, so that four workers do not sweep and
// refresh four times as often. A holder that cannot renew stops its
// scheduler at once; a new holder waits out the old one's next renewal
// before it starts (see settle), so two schedulers never overlap. At a
// handover a periodic task may run once twice or be skipped once, which its
// idempotent handler tolerates.
type leader struct {
	leases   Leases
	ttl      time.Duration
	start    func() (*asynq.Scheduler, error)
	log      *slog.Logger
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	started  atomic.Bool

	mu      sync.Mutex
	leading bool
}

func newLeader(leases Leases, ttl time.Duration, start func() (*asynq.Scheduler, error), log *slog.Logger) *leader {
	return &leader{leases: leases, ttl: ttl, start: start, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

// Leading reports whether this process runs the scheduler now.
func (l *leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

func (l *leader) setLeading(v bool) {
	l.mu.Lock()
	l.leading = v
	l.mu.Unlock()
}

func (l *leader) run() {
	defer close(l.done)
	// Renew well inside the lease's life so that one slow round trip does
	// not lose it.
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	var lease *store.Lease
	var sched *asynq.Scheduler
	resign := func(why string) {
		if sched != nil {
			sched.Shutdown()
			sched = nil
		}
		if lease != nil {
			lease.Release()
			lease = nil
		}
		if l.Leading() {
			l.log.Info("this process no longer runs the periodic tasks", "why", why)
		}
		l.setLeading(false)
	}
	defer resign("shutting down")
	for {
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		if lease == nil {
			got, err := l.leases.Acquire(ctx, schedulerLease, l.ttl)
			if err != nil {
				l.log.Warn("could not try for the scheduler lease", "err", err)
			} else if got != nil && l.settle(got) {
				s, err := l.start()
				if err != nil {
					l.log.Error("could not start the scheduler", "err", err)
					got.Release()
				} else {
					lease, sched = got, s
					l.setLeading(true)
					l.log.Info("this process runs the periodic tasks")
				}
			}
		} else if ok, err := lease.Renew(ctx); err != nil || !ok {
			// Unsure or lost: stop at once rather than risk two schedulers.
			resign("lease lost or Redis unreachable")
		}
		cancel()
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
	}
}

// settle holds a newly acquired lease for half its life before the
// scheduler starts, and reports whether it is still held then. A lease can
// be lost without expiring: a Redis flush or failover deletes its key while
// the holder still runs the scheduler, and the holder learns so only at its
// next renewal, up to ttl/3 later. Waiting past that renewal (with ttl/6 to
// spare for its round trip and the scheduler's shutdown) keeps the old and
// the new scheduler from ever running at once. A stop during the wait gives
// the lease back.
func (l *leader) settle(got *store.Lease) bool {
	select {
	case <-l.stop:
		got.Release()
		return false
	case <-time.After(l.ttl / 2):
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
	defer cancel()
	if ok, err := got.Renew(ctx); err != nil || !ok {
		got.Release()
		return false
	}
	return true
}

// Start begins bidding for the lease in the background.
func (l *leader) Start() {
	if l.started.CompareAndSwap(false, true) {
		go l.run()
	}
}

// Stop ends leadership and waits for the scheduler to stop.
func (l *leader) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	if l.started.Load() {
		<-l.done
	}
}
