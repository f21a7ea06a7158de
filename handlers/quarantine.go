package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// quarantineTimeout bounds keeping one refused request. The 401 waits for
// it and HubSpot waits for the 401, so a slow or absent database must cost
// each answer at most this much.
const quarantineTimeout = time.Second

// quarantineWriters is how many refused requests one process writes at
// once. A flood of bad signatures then holds at most this many of the
// pool's connections, and genuine deliveries keep the rest.
const quarantineWriters = 4

// fullRecheck is how long a full quarantine is taken to stay full before
// the store is asked again; meanwhile a flood costs the database nothing.
const fullRecheck = 10 * time.Second

// dropReportEvery is the least time between two log lines about refused
// requests that were not kept, so that a flood cannot flood the log too.
const dropReportEvery = time.Minute

// quarantine keeps the webhook requests refused for their signature, which
// HubSpot never retries, so that `hs2cc quarantine replay` can ingest them
// once the configuration is fixed. Keeping one never changes the answer:
// a full quarantine, a busy one or a failing database still get a 401.
type quarantine struct {
	st    Store
	limit store.QuarantineCap
	log   *slog.Logger
	// now is the verifier's clock, so that received_at is the time the
	// timestamp was judged against and a replay judges it the same way.
	now   func() time.Time
	slots chan struct{}

	mu        sync.Mutex
	fullUntil time.Time // the store is not asked before then
	dropped   struct{ full, busy int }
	reported  time.Time // when drops were last logged
	flushing  bool      // a report of the drops since then is scheduled
}

func newQuarantine(cfg Config, st Store) *quarantine {
	now := time.Now
	if cfg.Verifier != nil && cfg.Verifier.Now != nil {
		now = cfg.Verifier.Now
	}
	return &quarantine{
		st: st, limit: cfg.QuarantineCap.OrDefault(), log: cfg.Logger, now: now,
		slots: make(chan struct{}, quarantineWriters),
	}
}

// keep stores the request r, refused by verr, with its body raw; version is
// what the verifier checked.
func (q *quarantine) keep(r *http.Request, raw []byte, version hubspot.Version, verr error) {
	at := q.now()
	rec := &store.Quarantined{
		ReceivedAt: at, Method: r.Method, Scheme: requestScheme(r), Host: r.Host, RequestURI: r.RequestURI,
		Header: r.Header, Body: raw, Reason: quarantineReason(verr, r.Header, at), Detail: verr.Error(),
		SignatureVersion: claimedVersion(version, r.Header),
	}
	if q.knownFull(at) {
		q.drop(at, false)
		return
	}
	// The write outlives the request's own context: a sender that hangs up
	// must not take the evidence with it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), quarantineTimeout)
	defer cancel()
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		q.drop(at, true)
		return
	}
	err := q.st.Quarantine(ctx, rec, q.limit)
	<-q.slots
	switch {
	case err == nil:
		q.log.Info("request refused for its signature is quarantined", "quarantine_id", rec.ID, "reason", rec.Reason)
	case errors.Is(err, store.ErrQuarantineFull):
		q.mu.Lock()
		q.fullUntil = at.Add(fullRecheck)
		q.mu.Unlock()
		q.drop(at, false)
	default:
		q.log.Warn("could not quarantine a request refused for its signature; it is answered 401 all the same",
			"reason", rec.Reason, "err", err)
	}
}

func (q *quarantine) knownFull(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return now.Before(q.fullUntil)
}

// drop counts a request that was not kept, because the quarantine is full
// or because every writer stayed busy for quarantineTimeout, and logs the
// count at most once per dropReportEvery. Drops after a report are logged
// when the next one is due, by a timer if no further drop comes.
func (q *quarantine) drop(now time.Time, busy bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if busy {
		q.dropped.busy++
	} else {
		q.dropped.full++
	}
	if wait := q.reported.Add(dropReportEvery).Sub(now); wait > 0 {
		if !q.flushing {
			q.flushing = true
			time.AfterFunc(wait, func() {
				q.mu.Lock()
				defer q.mu.Unlock()
				q.flushing = false
				q.reportLocked(q.now())
			})
		}
		return
	}
	q.reportLocked(now)
}

func (q *quarantine) reportLocked(now time.Time) {
	if q.dropped.full == 0 && q.dropped.busy == 0 {
		return
	}
	q.log.Warn("requests refused for their signature were answered 401 but not quarantined",
		"full", q.dropped.full, "busy", q.dropped.busy,
		"max_rows", q.limit.MaxRows, "max_bytes", q.limit.MaxBytes)
	q.dropped.full, q.dropped.busy = 0, 0
	q.reported = now
}

// quarantineReason names the check that refused a request. A timestamp
// outside the window is told apart by its side of now, since a clock behind
// and a replayed old request call for different fixes.
func quarantineReason(err error, h http.Header, now time.Time) string {
	switch {
	case errors.Is(err, hubspot.ErrMissingSignature):
		return store.QuarantineMissingSignature
	case errors.Is(err, hubspot.ErrBadTimestamp):
		return store.QuarantineBadTimestamp
	case errors.Is(err, hubspot.ErrStaleTimestamp):
		ms, perr := strconv.ParseInt(h.Get(hubspot.HeaderRequestTimestamp), 10, 64)
		if perr == nil && ms > now.UnixMilli() {
			return store.QuarantineFutureTimestamp
		}
		return store.QuarantineStaleTimestamp
	}
	return store.QuarantineBadSignature
}

// claimedVersion is the signature version a refused request claims: the one
// the verifier checked, else the X-HubSpot-Signature-Version it names,
// else "v1/v2" for a bare X-HubSpot-Signature, else "" for none. A value
// that is not a short word is stored as "other": it reaches terminals in
// `hs2cc quarantine list`, so the sender must not choose its bytes.
func claimedVersion(version hubspot.Version, h http.Header) string {
	if version != "" {
		return string(version)
	}
	if h.Get(hubspot.HeaderSignature) == "" {
		return ""
	}
	v := strings.ToLower(h.Get(hubspot.HeaderSignatureVersion))
	if v == "" {
		return "v1/v2"
	}
	if len(v) > 8 || strings.IndexFunc(v, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') }) >= 0 {
		return "other"
	}
	return v
}

// requestScheme is the scheme the request arrived on at this process.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// SignedURI is the URI HubSpot signed for a request received with
// requestURI, its path and query exactly as received: publicURL plus
// requestURI, or, with no public URL, the request's own scheme and host.
// Behind a TLS-terminating proxy the request itself only knows the internal
// scheme and host, which is why the public URL comes from configuration.
// The webhook and `hs2cc quarantine replay` both build the URI here.
func SignedURI(publicURL, scheme, host, requestURI string) string {
	base := strings.TrimSuffix(publicURL, "/")
	if base == "" {
		base = scheme + "://" + host
	}
	return base + requestURI
}
