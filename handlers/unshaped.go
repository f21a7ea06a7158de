package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// unshapedFlushEvery is the least time between two writes of the unshaped
// counts to MySQL, so that a flood of junk costs the database one small
// statement a second however fast it comes.
const unshapedFlushEvery = time.Second

// unshapedTally counts the requests refused for their signature that are
// not shaped like HubSpot's (hubspot.Verifier.CheckShape). They can never
// verify, so they are not kept; each is counted in the metric at once and
// in memory, and the counts are added to MySQL's summary at most once per
// unshapedFlushEvery. Counts whose write fails are kept for the next one,
// so a database outage loses none; those of the last second before the
// process stops are in the metric only.
type unshapedTally struct {
	st      Store
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics
	drops   *dropLog

	mu        sync.Mutex
	pending   map[string]*store.UnshapedCount
	flushedAt time.Time // when the last write began
	scheduled bool      // a write is due by timer
	failing   bool      // the last write failed; logged once until one succeeds
}

func newUnshapedTally(st Store, log *slog.Logger, now func() time.Time, m *Metrics) *unshapedTally {
	return &unshapedTally{
		st: st, log: log, now: now, metrics: m, pending: map[string]*store.UnshapedCount{},
		drops: newDropLog(log, now, "requests not shaped like HubSpot's were answered 401 and counted, not quarantined",
			hubspot.UnshapedReasons),
	}
}

// add counts one unshaped request of reason, received at.
func (u *unshapedTally) add(reason string, at time.Time) {
	u.metrics.countUnshaped(reason)
	u.drops.add(at, reason)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.addLocked(store.UnshapedCount{Reason: reason, Count: 1, FirstSeen: at, LastSeen: at})
}

// addLocked merges c into the pending counts and makes sure a write is due.
func (u *unshapedTally) addLocked(c store.UnshapedCount) {
	p := u.pending[c.Reason]
	switch {
	case p == nil:
		u.pending[c.Reason] = &c
	default:
		p.Count += c.Count
		if c.FirstSeen.Before(p.FirstSeen) {
			p.FirstSeen = c.FirstSeen
		}
		if c.LastSeen.After(p.LastSeen) {
			p.LastSeen = c.LastSeen
		}
	}
	if !u.scheduled {
		u.scheduled = true
		time.AfterFunc(max(u.flushedAt.Add(unshapedFlushEvery).Sub(u.now()), 0), u.flush)
	}
}

// flush writes the pending counts in one statement; on failure it puts
// them back to be written with the next ones.
func (u *unshapedTally) flush() {
	u.mu.Lock()
	counts := make([]store.UnshapedCount, 0, len(u.pending))
	for _, c := range u.pending {
		counts = append(counts, *c)
	}
	clear(u.pending)
	u.flushedAt, u.scheduled = u.now(), false
	u.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), evidenceTimeout)
	defer cancel()
	err := u.st.AddUnshaped(ctx, counts)

	u.mu.Lock()
	defer u.mu.Unlock()
	if err == nil {
		u.failing = false
		return
	}
	if !u.failing {
		u.failing = true
		u.log.Warn("could not add to the counts of unshaped requests; they are kept in memory and written again",
			"err", err)
	}
	for _, c := range counts {
		u.addLocked(c)
	}
}
