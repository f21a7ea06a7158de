package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/store"
)

// Config tunes the worker.
type Config struct {
	Concurrency int
	// GroupGracePeriod is how long a group waits for one more enrollment
	// before it is imported; asynq's minimum is one second.
	GroupGracePeriod time.Duration
	// GroupMaxDelay bounds how long the first enrollment in a group waits.
	GroupMaxDelay time.Duration
	// GroupMaxSize is the most enrollment tasks asynq gathers into one
	// batch. asynq aggregates at most one batch per group at each check
	// (every min(GroupGracePeriod, 7 s)), so a small size drains a flood's
	// tasks slower than they arrive: at 5,000, a 3,000/s burst left its
	// last rows waiting about a minute for their tasks' turn. The import
	// itself is bounded by CC's limits (40,000 contacts, 4 MB) whatever
	// this is, and takes every other pending row of its lists up to them.
	GroupMaxSize int
	// PollInterval is the first and shortest wait between activity polls;
	// PollMaxInterval the longest. An activity still not final after
	// PollGiveUp has its rows failed (replayable) instead of polled on.
	PollInterval    time.Duration
	PollMaxInterval time.Duration
	PollGiveUp      time.Duration
	// ImportMaxContacts and ImportMaxBytes bound one CC import; zero means
	// CC's own limits (40,000 contacts, a body under 4 MB).
	ImportMaxContacts int
	ImportMaxBytes    int
	// SweepInterval is how often stale pending rows are re-enqueued, and
	// SweepAge how long a row must have waited to count as stale.
	SweepInterval time.Duration
	SweepAge      time.Duration
	// TokenRefreshInterval is how often the token's expiry is checked.
	TokenRefreshInterval time.Duration
	// Retention is how long raw delivery bodies are kept; the purge runs
	// every RetentionInterval. Zero Retention keeps them for ever.
	Retention         time.Duration
	RetentionInterval time.Duration
	// ShutdownTimeout is how long running tasks get to finish on shutdown.
	ShutdownTimeout time.Duration
	// LeaderLease is how long the scheduler's leadership lasts without a
	// renewal: after a leader dies, periodic tasks stop for less than twice
	// this (the lease expires, the next bid comes within a third of it, and
	// the winner waits half of it before starting).
	LeaderLease time.Duration
	// ListsCheckInterval is how often the rules' CC lists are checked
	// again, so that a missing list that appeared in CC leaves /ops even
	// when no enrollment waits for it. Lists already found cost no call.
	ListsCheckInterval time.Duration
	// ReconcileInterval is how often cc:reconcile compares the rules'
	// lists in CC with the bridge's imports, report-only; zero (the
	// default) never does.
	ReconcileInterval time.Duration
	// UnsubscribeInterval is how often hubspot:unsubscribes reads CC's
	// new unsubscribes, when the HubSpot write-back is on (WithWriter);
	// zero never does.
	UnsubscribeInterval time.Duration
}

// DefaultConfig returns production settings.
func DefaultConfig() Config {
	return Config{
		Concurrency:          10,
		GroupGracePeriod:     10 * time.Second,
		GroupMaxDelay:        60 * time.Second,
		GroupMaxSize:         40000,
		PollInterval:         2 * time.Second,
		PollMaxInterval:      2 * time.Minute,
		PollGiveUp:           6 * time.Hour,
		Retention:            30 * 24 * time.Hour,
		RetentionInterval:    time.Hour,
		SweepInterval:        time.Minute,
		SweepAge:             10 * time.Minute,
		TokenRefreshInterval: 10 * time.Minute,
		ShutdownTimeout:      20 * time.Second,
		LeaderLease:          30 * time.Second,
		ListsCheckInterval:   5 * time.Minute,
		UnsubscribeInterval:  15 * time.Minute,
	}
}

// Worker is the `hs2cc work` process: the asynq server with its handlers and
// aggregator, and the scheduler for periodic tasks.
type Worker struct {
	importer  *Importer
	sweeper   *Sweeper
	server    *asynq.Server
	leader    *leader
	inspector *asynq.Inspector
	redis     redis.UniversalClient
	mux       *asynq.ServeMux
	log       *slog.Logger

	// stop ends the goroutines Start began beside asynq's (the start-up
	// check of the lists, the watch on Redis); done closes when they have.
	stop context.CancelFunc
	done sync.WaitGroup
}

// NewWorker wires the handlers. redisOpt is the asynq connection; tokens is
// refreshed by the periodic task (nil skips that task).
func NewWorker(redisOpt asynq.RedisConnOpt, cfg Config, st Store, cc CC, enq *Enqueuer, tokens *ccauth.Tokens, log *slog.Logger, opts ...Option) *Worker {
	im := newImporter(st, cc, enq, log, cfg)
	if tokens != nil {
		im.tokens = tokens
	}
	for _, o := range opts {
		o(im)
	}
	inspector := asynq.NewInspector(redisOpt)
	sw := &Sweeper{store: st, enq: enq, tasks: inspector, log: log, age: cfg.SweepAge, now: time.Now}

	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeEnrollmentSync, im.handleEnrollment)
	mux.HandleFunc(TypeCCImport, im.handleImport)
	mux.HandleFunc(TypeImportWait, im.handleImportWait)
	mux.HandleFunc(TypeCCActivity, im.handleActivity)
	mux.HandleFunc(TypeEnrollmentSweep, sw.handle)
	mux.HandleFunc(TypeListsCheck, im.handleListsCheck)
	if p, ok := st.(BodyPurger); ok && cfg.Retention > 0 {
		mux.HandleFunc(TypeRetentionPurge, purgeHandler(p, cfg.Retention, log))
	}
	if tokens != nil {
		mux.HandleFunc(TypeTokenRefresh, func(ctx context.Context, _ *asynq.Task) error {
			return tokens.RefreshIfDue(ctx)
		})
	}

	if im.writer != nil {
		mux.HandleFunc(TypeWriteback, im.writer.handleWriteback)
		mux.HandleFunc(TypeUnsubscribes, im.writer.handleUnsubscribes)
	}

	rc, reconciles := newPeriodicReconciler(cfg, st, cc, im)
	if reconciles {
		mux.HandleFunc(TypeReconcile, reconcileHandler(rc, func() []string { return im.resolver.policy.Lists },
			func(ctx context.Context) { im.writebackDue(ctx, 0) }))
	}

	alog := asynqLogger{l: log}
	server := asynq.NewServer(redisOpt, serverConfig(cfg, alog, log))
	// The lease needs a plain Redis client; asynq's option makes one with
	// the same address and credentials.
	rdb, _ := redisOpt.MakeRedisClient().(redis.UniversalClient)
	w := &Worker{importer: im, sweeper: sw, server: server, inspector: inspector, redis: rdb, mux: mux, log: log}
	startScheduler := func() (*asynq.Scheduler, error) {
		s := asynq.NewScheduler(redisOpt, &asynq.SchedulerOpts{Logger: alog, LogLevel: asynq.WarnLevel, Location: time.UTC})
		w.register(s, TypeEnrollmentSweep, cfg.SweepInterval)
		if _, ok := st.(BodyPurger); ok && cfg.Retention > 0 {
			w.register(s, TypeRetentionPurge, cfg.RetentionInterval)
		}
		if tokens != nil {
			w.register(s, TypeTokenRefresh, cfg.TokenRefreshInterval)
		}
		w.register(s, TypeListsCheck, cfg.ListsCheckInterval)
		if reconciles {
			w.register(s, TypeReconcile, cfg.ReconcileInterval)
		}
		if im.writer != nil {
			w.register(s, TypeWriteback, WritebackInterval)
			if im.writer.cc != nil {
				w.register(s, TypeUnsubscribes, cfg.UnsubscribeInterval)
			}
		}
		return s, s.Start()
	}
	lease := cfg.LeaderLease
	if lease <= 0 {
		lease = DefaultConfig().LeaderLease
	}
	w.leader = newLeader(store.NewRedis(rdb), lease, startScheduler, log)
	return w
}

// Leading reports whether this worker runs the periodic tasks now.
func (w *Worker) Leading() bool { return w.leader.Leading() }

// Option adds an optional collaborator to the worker.
type Option func(*Importer)

// WithMapper sets how enrollments become CC contacts (routing's field
// mapping); without it email, names and country are sent.
func WithMapper(m Mapper) Option { return func(im *Importer) { im.mapper = m } }

// WithPolicy sets what the routing rules name in the CC account (lists
// and custom fields) to check at start-up, when CC gets connected and
// periodically, and whether a missing one may be created.
func WithPolicy(p Policy) Option { return func(im *Importer) { im.resolver.policy = p } }

// WithWriter turns the HubSpot write-back on: settled rows are sent to
// HubSpot by hubspot:writeback, and CC's unsubscribes read back by
// hubspot:unsubscribes.
func WithWriter(wr *Writer) Option { return func(im *Importer) { im.writer = wr } }

// WithBudget lets imports grow instead of spending calls when today's CC
// budget runs low.
func WithBudget(b Budget) Option { return func(im *Importer) { im.budget = b } }

// delayedCheckInterval is how often due scheduled and retry tasks are
// forwarded: every second (CC's throttle clears in one), or every
// PollInterval when that is shorter.
func delayedCheckInterval(poll time.Duration) time.Duration {
	if poll > 0 && poll < time.Second {
		return poll
	}
	return time.Second
}

func (w *Worker) register(s *asynq.Scheduler, taskType string, every time.Duration) {
	if every <= 0 {
		return
	}
	spec := fmt.Sprintf("@every %s", every)
	if _, err := s.Register(spec, asynq.NewTask(taskType, nil),
		asynq.Queue(Queue), asynq.MaxRetry(0), asynq.Timeout(every)); err != nil {
		w.log.Error("could not register periodic task", "type", taskType, "err", err)
	}
}

// Start starts processing, the bid for the scheduler's lease, the check of
// the rules' lists and the watch on Redis, without blocking. Nothing CC
// answers can make it fail: the lists are checked in the background, CC's
// faults waited out, and a missing list becomes attention, not an exit.
func (w *Worker) Start() error {
	if err := w.server.Start(w.mux); err != nil {
		return fmt.Errorf("jobs: start server: %w", err)
	}
	w.leader.Start()
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.done.Add(2)
	go func() {
		defer w.done.Done()
		w.checkListsAtStart(ctx)
	}()
	go func() {
		defer w.done.Done()
		if w.redis != nil {
			w.sweeper.watch(ctx, store.NewRedis(w.redis))
		}
	}()
	return nil
}

// Shutdown stops the scheduler (giving up its lease), then lets running
// tasks finish within the configured timeout; unfinished tasks go back to
// the queue.
func (w *Worker) Shutdown() {
	if w.stop != nil {
		w.stop()
		w.done.Wait()
	}
	w.leader.Stop()
	w.server.Shutdown()
	w.inspector.Close()
	if w.redis != nil {
		w.redis.Close()
	}
}

// serverConfig is how the worker's asynq server runs: one queue, the import
// groups' batching, our retry policy and our logging.
func serverConfig(cfg Config, alog asynqLogger, log *slog.Logger) asynq.Config {
	return asynq.Config{
		Concurrency:      cfg.Concurrency,
		Queues:           map[string]int{Queue: 1},
		GroupGracePeriod: cfg.GroupGracePeriod,
		GroupMaxDelay:    cfg.GroupMaxDelay,
		GroupMaxSize:     cfg.GroupMaxSize,
		GroupAggregator:  asynq.GroupAggregatorFunc(aggregate),
		// asynq moves due scheduled and retry tasks to pending only every
		// 5 s by default, which would stretch PollInterval and the 1 s
		// throttle backoff to up to 5 s; check as often as they need.
		DelayedTaskCheckInterval: delayedCheckInterval(cfg.PollInterval),
		RetryDelayFunc:           retryDelay(time.Now),
		IsFailure:                isFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   alog,
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if isFailure(err) {
				id, _ := asynq.GetTaskID(ctx)
				log.Warn("task failed", "type", t.Type(), "task_id", id, "err", err)
			}
		}),
	}
}
