package handlers

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// evidenceTimeout bounds keeping what a refused request carried. The 4xx
// waits for it and HubSpot waits for the 4xx, so a slow or absent database
// must cost each answer at most this much.
const evidenceTimeout = time.Second

// evidenceWriters is how many refused requests of one kind one process
// writes at once. A flood of them then holds at most this many of the
// pool's connections, and genuine deliveries keep the rest.
const evidenceWriters = 4

// dropReportEvery is the least time between two log lines about refused
// requests that were not kept, so that a flood cannot flood the log too.
const dropReportEvery = time.Minute

// errWritersBusy means every evidence writer stayed busy for the whole
// timeout, so the write was not attempted.
var errWritersBusy = errors.New("handlers: every evidence writer is busy")

// evidenceWrites bounds the writes that keep a request HubSpot will never
// send again before it is answered with a 4xx: a request refused for its
// signature (the quarantine) or for its size (a too_large delivery). Each
// write waits for one of a few slots and gives up after a timeout that
// covers both the wait and the write, so that a flood of such requests
// neither slows its answers much nor takes the connections genuine
// deliveries need. Each kind of evidence has writes of its own, so that a
// flood of one cannot crowd out the other.
type evidenceWrites struct {
	slots   chan struct{}
	timeout time.Duration
}

func newEvidenceWrites() *evidenceWrites {
	return &evidenceWrites{slots: make(chan struct{}, evidenceWriters), timeout: evidenceTimeout}
}

// write runs fn in a slot, with a context bounded by the timeout. The
// context outlives the request's own, since a sender that hangs up must not
// take the evidence with it. It returns errWritersBusy without running fn
// when no slot frees up in time, and otherwise what fn returns.
func (w *evidenceWrites) write(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return errWritersBusy
	}
	defer func() { <-w.slots }()
	return fn(ctx)
}

// dropLog counts refused requests that were answered but not kept, by
// cause, and logs the counts at most once per dropReportEvery. Drops after
// a report are logged when the next one is due, by a timer if no further
// drop comes, so that the last of a burst is never left unsaid.
type dropLog struct {
	log *slog.Logger
	now func() time.Time
	msg string
	// causes are logged in this order, each with its count, zero or not;
	// attrs follow them.
	causes []string
	attrs  []any

	mu       sync.Mutex
	counts   map[string]int
	reported time.Time // when drops were last logged
	flushing bool      // a report of the drops since then is scheduled
}

func newDropLog(log *slog.Logger, now func() time.Time, msg string, causes []string, attrs ...any) *dropLog {
	return &dropLog{log: log, now: now, msg: msg, causes: causes, attrs: attrs, counts: map[string]int{}}
}

// add counts one request not kept for cause, at now.
func (d *dropLog) add(now time.Time, cause string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[cause]++
	if wait := d.reported.Add(dropReportEvery).Sub(now); wait > 0 {
		if !d.flushing {
			d.flushing = true
			time.AfterFunc(wait, func() {
				d.mu.Lock()
				defer d.mu.Unlock()
				d.flushing = false
				d.reportLocked(d.now())
			})
		}
		return
	}
	d.reportLocked(now)
}

func (d *dropLog) reportLocked(now time.Time) {
	if len(d.counts) == 0 {
		return
	}
	args := make([]any, 0, 2*len(d.causes)+len(d.attrs))
	for _, c := range d.causes {
		args = append(args, c, d.counts[c])
	}
	d.log.Warn(d.msg, append(args, d.attrs...)...)
	clear(d.counts)
	d.reported = now
}
