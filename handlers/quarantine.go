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

// fullRecheck is how long a full quarantine is taken to stay full before
// the store is asked again; meanwhile a flood costs the database nothing.
const fullRecheck = 10 * time.Second

// quarantine keeps the webhook requests refused for their signature, which
// HubSpot never retries, so that `hs2cc quarantine replay` can ingest them
// once the configuration is fixed. Keeping one never changes the answer:
// a full quarantine, a busy one or a failing database still get a 401.
type quarantine struct {
	st Store
	// verifier judges the shape of a refused request: only one shaped
	// like HubSpot's is kept, and the rest are counted in unshaped.
	verifier *hubspot.Verifier
	unshaped *unshapedTally
	limit    store.QuarantineCap
	log      *slog.Logger
	// now is the verifier's clock, so that received_at is the time the
	// timestamp was judged against and a replay judges it the same way.
	now    func() time.Time
	writes *evidenceWrites
	drops  *dropLog

	mu        sync.Mutex
	fullUntil time.Time // the store is not asked before then
}

// Causes of a refused request not being quarantined, as the drop log
// counts them.
const (
	dropFull = "full" // the quarantine is at a cap
	dropBusy = "busy" // every writer stayed busy for the whole timeout
)

func newQuarantine(cfg Config, st Store) *quarantine {
	now := time.Now
	if cfg.Verifier != nil && cfg.Verifier.Now != nil {
		now = cfg.Verifier.Now
	}
	limit := cfg.QuarantineCap.OrDefault()
	return &quarantine{
		st: st, verifier: cfg.Verifier, unshaped: newUnshapedTally(st, cfg.Logger, now, cfg.WebhookMetrics),
		limit: limit, log: cfg.Logger, now: now, writes: newEvidenceWrites(),
		drops: newDropLog(cfg.Logger, now, "requests refused for their signature were answered 401 but not quarantined",
			[]string{dropFull, dropBusy}, "max_rows", limit.MaxRows, "max_bytes", limit.MaxBytes),
	}
}

// keep stores the request r, refused by verr, with its whole body raw;
// version is what the verifier checked. A request not shaped like
// HubSpot's is only counted: it can never verify, and keeping it would let
// anyone fill the quarantine and crowd out the genuine requests it exists
// for.
func (q *quarantine) keep(r *http.Request, raw []byte, version hubspot.Version, verr error) {
	at := q.now()
	if reason, shaped := q.verifier.CheckShape(r.Header); !shaped {
		q.unshaped.add(reason, at)
		return
	}
	rec := &store.Quarantined{
		ReceivedAt: at, Method: r.Method, Scheme: requestScheme(r), Host: r.Host, RequestURI: r.RequestURI,
		Header: r.Header, Body: raw, Reason: quarantineReason(verr, r.Header, at), Detail: verr.Error(),
		SignatureVersion: claimedVersion(version, r.Header),
	}
	if q.knownFull(at) {
		q.drops.add(at, dropFull)
		return
	}
	err := q.writes.write(r.Context(), func(ctx context.Context) error { return q.st.Quarantine(ctx, rec, q.limit) })
	switch {
	case err == nil:
		q.log.Info("request refused for its signature is quarantined", "quarantine_id", rec.ID, "reason", rec.Reason,
			"body_bytes", len(raw))
	case errors.Is(err, errWritersBusy):
		q.drops.add(at, dropBusy)
	case errors.Is(err, store.ErrQuarantineFull):
		q.mu.Lock()
		q.fullUntil = at.Add(fullRecheck)
		q.mu.Unlock()
		q.drops.add(at, dropFull)
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
