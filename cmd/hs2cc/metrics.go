package main

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
)

// Each process has one registry. Counters and histograms live where their
// events happen: webhook answers in `serve`, CC calls and import ages in
// `work`. Figures read from shared state at scrape time (token, budget,
// queues) are exported by `serve` only, so that they are not counted once
// per process.

// newRegistry holds what every process exports: Go's runtime and the
// process's own figures.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// promHandler serves reg, behind the bearer token when one is set.
func promHandler(reg *prometheus.Registry, token string) http.Handler {
	return handlers.BearerOnly(token, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// registerServeMetrics adds the shared-state figures `serve` exports.
func registerServeMetrics(reg prometheus.Registerer, db *store.DB, budget handlers.CCBudget, ins *asynq.Inspector, hs handlers.HubSpotCalls) {
	reg.MustRegister(newTokenCollector(db, time.Now), newAttentionCollector(db), newBudgetCollector(budget),
		newQueueCollector(ins, time.Now), newWritebackCollector(db, hs, time.Now))
}

// budgetCollector exports today's CC calls against the daily budget, read
// from Redis at scrape time, where every process counts its calls.
type budgetCollector struct {
	budget          handlers.CCBudget
	used, limit, up *prometheus.Desc
	timeout         time.Duration
}

func newBudgetCollector(b handlers.CCBudget) *budgetCollector {
	return &budgetCollector{
		budget: b, timeout: 2 * time.Second,
		used: prometheus.NewDesc("hs2cc_cc_calls_today",
			"CC API calls counted today (UTC) by every process, against hs2cc_cc_daily_budget.", nil, nil),
		limit: prometheus.NewDesc("hs2cc_cc_daily_budget",
			"CC API calls the bridge allows itself per UTC day (HS2CC_CC_DAILY_BUDGET).", nil, nil),
		up: prometheus.NewDesc("hs2cc_cc_budget_up",
			"1 when today's CC call count could be read from Redis for this scrape.", nil, nil),
	}
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.limit
	ch <- c.up
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(c.budget.Budget()))
	used, err := c.budget.Used(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(used))
}

// queueInspector is the part of asynq's Inspector the queue collector reads.
type queueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
	ListArchivedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// queueCollector exports asynq's queues at scrape time. It does the work of
// asynq's x/metrics collector (a separate module, not in go.mod) and adds
// the aggregating state, the groups and the age of the oldest archived task.
type queueCollector struct {
	ins                                   queueInspector
	now                                   func() time.Time
	tasks, size, groups, latency, oldest  *prometheus.Desc
	processed, failed, paused, memory, up *prometheus.Desc
}

func newQueueCollector(ins queueInspector, now func() time.Time) *queueCollector {
	q := []string{"queue"}
	return &queueCollector{
		ins: ins, now: now,
		tasks: prometheus.NewDesc("hs2cc_queue_tasks",
			"Tasks in an asynq queue by state (pending, active, scheduled, retry, archived, completed, aggregating).",
			[]string{"queue", "state"}, nil),
		size: prometheus.NewDesc("hs2cc_queue_size",
			"Tasks in an asynq queue, every state but completed.", q, nil),
		groups: prometheus.NewDesc("hs2cc_queue_groups",
			"Groups (CC list sets) with enrollments aggregating into an import.", q, nil),
		latency: prometheus.NewDesc("hs2cc_queue_latency_seconds",
			"How long the oldest pending task has waited to be processed.", q, nil),
		oldest: prometheus.NewDesc("hs2cc_queue_oldest_task_age_seconds",
			"Age of the oldest task in a state, where asynq records one: pending (since it became pending) and archived (since it was archived).",
			[]string{"queue", "state"}, nil),
		processed: prometheus.NewDesc("hs2cc_queue_processed_total",
			"Tasks processed, succeeded or failed, since the queue was created.", q, nil),
		failed: prometheus.NewDesc("hs2cc_queue_failed_total",
			"Task runs that failed since the queue was created.", q, nil),
		paused: prometheus.NewDesc("hs2cc_queue_paused",
			"1 while the queue is paused (from Asynqmon).", q, nil),
		memory: prometheus.NewDesc("hs2cc_queue_memory_bytes",
			"Approximate Redis memory the queue uses, by sampling.", nil, nil),
		up: prometheus.NewDesc("hs2cc_queue_up",
			"1 when the queues could be read from Redis for this scrape.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tasks, c.size, c.groups, c.latency, c.oldest, c.processed, c.failed, c.paused, c.memory, c.up} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	queues, err := c.ins.Queues()
	if err != nil {
		gauge(c.up, 0)
		return
	}
	// Read every queue before sending anything, so that a scrape reports
	// all queues or, with up 0, none: half a picture would look healthy.
	infos := make([]*asynq.QueueInfo, 0, len(queues))
	archived := make(map[string]time.Time, len(queues))
	for _, q := range queues {
		info, err := c.ins.GetQueueInfo(q)
		if err != nil {
			gauge(c.up, 0)
			return
		}
		infos = append(infos, info)
		if info.Archived > 0 {
			// Archived tasks are kept in the order they were archived, so
			// the first is the oldest.
			if ts, err := c.ins.ListArchivedTasks(q, asynq.PageSize(1)); err == nil && len(ts) == 1 {
				archived[q] = ts[0].LastFailedAt
			}
		}
	}
	gauge(c.up, 1)
	now := c.now()
	var memory int64
	for _, info := range infos {
		q := info.Queue
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating} {
			gauge(c.tasks, float64(n), q, state)
		}
		gauge(c.size, float64(info.Size), q)
		gauge(c.groups, float64(info.Groups), q)
		gauge(c.latency, info.Latency.Seconds(), q)
		gauge(c.oldest, info.Latency.Seconds(), q, "pending")
		if t, ok := archived[q]; ok && !t.IsZero() {
			gauge(c.oldest, now.Sub(t).Seconds(), q, "archived")
		}
		ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(info.FailedTotal), q)
		gauge(c.paused, boolFloat(info.Paused), q)
		memory += info.MemoryUsage
	}
	gauge(c.memory, float64(memory))
}

// workerMetrics are what `work` produces: its calls to CC and how long
// enrollments took to get there.
type workerMetrics struct {
	db        *sql.DB
	log       *slog.Logger
	ccCalls   *prometheus.CounterVec
	age       prometheus.Histogram
	hsCalls   *prometheus.CounterVec
	writeback *prometheus.CounterVec
}

func newWorkerMetrics(reg prometheus.Registerer, db *sql.DB, log *slog.Logger) *workerMetrics {
	m := &workerMetrics{
		db: db, log: log,
		ccCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hs2cc_cc_calls_total",
			Help: "HTTP exchanges with the CC v3 API by method, endpoint (as the API reference names it) and status; status \"error\" when no response arrived.",
		}, []string{"method", "endpoint", "status"}),
		age: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hs2cc_enrollment_import_age_seconds",
			Help: "Time from receiving an enrollment's version to CC reporting it imported, observed when its import settles.",
			// From the batching delay of a quiet day to a CC outage of
			// days.
			Buckets: []float64{5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400},
		}),
	}
	m.hsCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hs2cc_hubspot_calls_total",
		Help: "HTTP exchanges with HubSpot's CRM API by method, endpoint and status (429 when HubSpot's limits refused one); status \"error\" when no response arrived.",
	}, []string{"method", "endpoint", "status"})
	m.writeback = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hs2cc_hubspot_writeback_contacts_total",
		Help: "Contacts the HubSpot write-back dealt with, by result: written, missing (deleted in HubSpot, skipped), no_id (the webhook carried no object id), failed (refused 5 times), retry (sent again later).",
	}, []string{"result"})
	reg.MustRegister(m.ccCalls, m.age, m.hsCalls, m.writeback)
	return m
}

// observeHubSpot is the crm Observer.
func (m *workerMetrics) observeHubSpot(method, endpoint string, status int, _ time.Duration) {
	s := "error"
	if status > 0 {
		s = strconv.Itoa(status)
	}
	m.hsCalls.WithLabelValues(method, endpoint, s).Inc()
}

// WritebackDone is the jobs.WritebackMetrics hook.
func (m *workerMetrics) WritebackDone(result string, n int) {
	m.writeback.WithLabelValues(result).Add(float64(n))
}

// observeCC is the ccclient Observer.
func (m *workerMetrics) observeCC(method, pattern string, status int, _ time.Duration) {
	s := "error"
	if status > 0 {
		s = strconv.Itoa(status)
	}
	m.ccCalls.WithLabelValues(method, pattern, s).Inc()
}

// ImportSettled observes the age of every row the import settled as
// imported: from the receipt of the version imported (its accepted
// delivery; the row's first receipt for rows older than their deliveries)
// to imported_at. It reads two times a row, never the rows themselves.
func (m *workerMetrics) ImportSettled(ctx context.Context, importID int64) {
	rows, err := m.db.QueryContext(ctx,
		`SELECT e.imported_at, COALESCE(MAX(d.received_at), e.received_at)
		 FROM enrollments e LEFT JOIN deliveries d ON d.enrollment_id = e.id AND d.verdict = ?
		 WHERE e.import_id = ? AND e.status = ?
		 GROUP BY e.id, e.imported_at, e.received_at`,
		store.VerdictAccepted, importID, store.StatusImported)
	if err != nil {
		m.log.Warn("metrics: could not read an import's enrollment ages", "import_id", importID, "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var imported sql.NullTime
		var since time.Time
		if err := rows.Scan(&imported, &since); err != nil {
			m.log.Warn("metrics: could not read an import's enrollment ages", "import_id", importID, "err", err)
			return
		}
		if imported.Valid {
			m.age.Observe(max(imported.Time.Sub(since).Seconds(), 0))
		}
	}
	if err := rows.Err(); err != nil {
		m.log.Warn("metrics: could not read an import's enrollment ages", "import_id", importID, "err", err)
	}
}
