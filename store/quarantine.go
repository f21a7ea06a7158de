package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Quarantine reasons: which signature check refused the request.
const (
	QuarantineMissingSignature = "missing_signature" // no signature the policy accepts
	QuarantineBadSignature     = "bad_signature"     // a signature that matches no secret
	QuarantineStaleTimestamp   = "stale_timestamp"   // a genuine v3 signature, too old
	QuarantineFutureTimestamp  = "future_timestamp"  // a genuine v3 signature, too far ahead
	QuarantineBadTimestamp     = "bad_timestamp"     // a v3 timestamp missing or unreadable
)

// Replay outcomes, the replay_outcome of a quarantined request. A request
// that verifies on replay but makes no new version takes the verdict of the
// delivery it was stored as instead, such as malformed, no_email, no_route
// or stale.
const (
	ReplayIngested     = "ingested"      // verified, stored as a new or changed enrollment
	ReplayDuplicate    = "duplicate"     // verified, same content as the stored enrollment
	ReplayStillInvalid = "still_invalid" // does not verify under the current configuration
	ReplayTruncated    = "truncated"     // the body was cut (before bodies were kept whole), so it can never verify
)

// BodyMax is the largest body a delivery or a quarantined request can hold,
// what a MEDIUMBLOB column takes. The webhook refuses bodies over its own
// limit, which configuration keeps at or under this, before they reach the
// store; Quarantine still cuts anything longer, since a cut body can be
// inspected, though never verified again, where an insert that fails keeps
// nothing.
const BodyMax = 1<<24 - 1

// Per-field bounds for the parts of the request line and headers the
// sender controls. HubSpot's signature headers are under 100 bytes and the
// URL it calls is the one we configured, so a longer value is not HubSpot's;
// it is kept cut, and its replay then reports still_invalid.
const (
	quarantineValueMax = 512
	quarantineURIMax   = 8 << 10
)

// KeptHeaders are the request headers kept with a request refused before it
// was ingested, a quarantined one or a too_large delivery: the four that
// verification reads, and two that help tell HubSpot from anyone else. Only
// the first value of each is kept, since that is the one verification reads.
var KeptHeaders = []string{
	"X-HubSpot-Signature", "X-HubSpot-Signature-Version", "X-HubSpot-Signature-v3",
	"X-HubSpot-Request-Timestamp", "Content-Type", "User-Agent",
}

// ErrQuarantineFull means the quarantine is at one of its caps and the
// request was not stored; older evidence is never evicted for newer.
var ErrQuarantineFull = errors.New("store: quarantine is full")

// QuarantineCap bounds what the quarantine holds: rows, and the sum of the
// stored body bytes.
type QuarantineCap struct {
	MaxRows  int64
	MaxBytes int64
}

// DefaultQuarantineCap is the cap when none is configured.
var DefaultQuarantineCap = QuarantineCap{MaxRows: 10000, MaxBytes: 100 << 20}

// OrDefault fills a zero field from DefaultQuarantineCap, so that a
// forgotten setting never means an unbounded quarantine.
func (c QuarantineCap) OrDefault() QuarantineCap {
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultQuarantineCap.MaxRows
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultQuarantineCap.MaxBytes
	}
	return c
}

// QuarantineUsage is what the quarantine holds now.
type QuarantineUsage struct {
	Rows  int64
	Bytes int64 // stored body bytes
}

// Quarantined is one webhook request refused for its signature, kept with
// what is needed to verify it again.
type Quarantined struct {
	ID         int64
	ReceivedAt time.Time
	Method     string
	// Scheme and Host are the request's own; the signed URI is built from
	// them only when no public URL is configured.
	Scheme string
	Host   string
	// RequestURI is the path and query exactly as received.
	RequestURI string
	// Header holds only KeptHeaders, canonical keys, one value each.
	Header http.Header
	// Body is the body as it arrived, whole up to the webhook's limit;
	// BodyLength is how many bytes arrived and BodyBytes how many are
	// stored. BodyTruncated marks a body that was cut, which only requests
	// kept before bodies were kept whole (at 64 KiB) can be. List leaves
	// Body and Header empty.
	Body             []byte
	BodyLength       int
	BodyBytes        int
	BodyTruncated    bool
	Reason           string
	Detail           string
	SignatureVersion string // the version the headers claim, "" for none
	ReplayedAt       time.Time
	ReplayOutcome    string
	ReplayDetail     string
}

// Quarantine stores q unless that would take the quarantine past limit, in
// which case it returns ErrQuarantineFull and stores nothing. It keeps the
// body whole (cut only past BodyMax), keeps only KeptHeaders, and sets q's
// ID, ReceivedAt (when zero), BodyLength, BodyBytes and BodyTruncated.
//
// The cap check is one query over the body_bytes index, about a millisecond
// at the default 10,000 rows and free of the blobs. It is not serialised
// with the insert: concurrent writers can all pass it, so the quarantine
// can exceed its cap by at most the number of concurrent writers, a few rows,
// which is the price of never making writers wait on one another.
func (s *DB) Quarantine(ctx context.Context, q *Quarantined, limit QuarantineCap) error {
	limit = limit.OrDefault()
	if q.ReceivedAt.IsZero() {
		q.ReceivedAt = s.utcNow()
	}
	if q.BodyLength < len(q.Body) {
		q.BodyLength = len(q.Body)
	}
	if len(q.Body) > BodyMax {
		q.Body, q.BodyTruncated = q.Body[:BodyMax], true
	}
	q.BodyBytes = len(q.Body)
	q.Header = keepHeaders(q.Header)
	headers, err := json.Marshal(q.Header)
	if err != nil {
		return fmt.Errorf("store: quarantine: %w", err)
	}
	usage, err := s.QuarantineUsage(ctx)
	if err != nil {
		return fmt.Errorf("store: quarantine: %w", err)
	}
	if usage.Rows+1 > limit.MaxRows || usage.Bytes+int64(len(q.Body)) > limit.MaxBytes {
		return fmt.Errorf("%w: it holds %d of %d rows and %d of %d body bytes",
			ErrQuarantineFull, usage.Rows, limit.MaxRows, usage.Bytes, limit.MaxBytes)
	}
	const insert = `INSERT INTO quarantine (received_at, method, scheme, host, request_uri, headers, body, body_bytes,
		   body_length, body_truncated, reason, detail, signature_version, replay_outcome, replay_detail)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '')`
	args := []any{q.ReceivedAt.UTC(), truncate(q.Method, 16), truncate(q.Scheme, 8), truncate(q.Host, 255),
		truncate(q.RequestURI, quarantineURIMax), string(headers), nonNilBytes(q.Body), len(q.Body),
		q.BodyLength, q.BodyTruncated, truncate(q.Reason, 32), truncate(q.Detail, 512),
		truncate(q.SignatureVersion, 16)}
	var res sql.Result
	if len(q.Body) >= preparedBodyMin {
		// As for a delivery: a large body travels as it is, not escaped.
		res, err = execPrepared(ctx, s.db, insert, args...)
	} else {
		res, err = s.db.ExecContext(ctx, insert, args...)
	}
	if err != nil {
		return fmt.Errorf("store: quarantine: %w", translate(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("store: quarantine: %w", err)
	}
	q.ID = id
	return nil
}

// keepHeaders copies the first value of each of KeptHeaders from h, each
// cut to quarantineValueMax bytes.
func keepHeaders(h http.Header) http.Header {
	out := make(http.Header, len(KeptHeaders))
	for _, name := range KeptHeaders {
		key := http.CanonicalHeaderKey(name)
		if vs := h[key]; len(vs) > 0 {
			out[key] = []string{truncate(vs[0], quarantineValueMax)}
		}
	}
	return out
}

// QuarantineUsage counts the quarantined rows and their stored body bytes.
func (s *DB) QuarantineUsage(ctx context.Context) (QuarantineUsage, error) {
	var u QuarantineUsage
	if err := s.db.QueryRowContext(ctx,
		`SELECT COUNT(*), COALESCE(SUM(body_bytes), 0) FROM quarantine`).Scan(&u.Rows, &u.Bytes); err != nil {
		return u, fmt.Errorf("store: quarantine usage: %w", err)
	}
	return u, nil
}

const quarantineSummaryColumns = `id, received_at, method, scheme, host, request_uri, body_length, body_bytes,
  body_truncated, reason, detail, signature_version, replayed_at, replay_outcome, replay_detail`

func scanQuarantined(r rowScanner, extra ...any) (*Quarantined, error) {
	var q Quarantined
	var replayed sql.NullTime
	dest := append([]any{&q.ID, &q.ReceivedAt, &q.Method, &q.Scheme, &q.Host, &q.RequestURI, &q.BodyLength,
		&q.BodyBytes, &q.BodyTruncated, &q.Reason, &q.Detail, &q.SignatureVersion, &replayed, &q.ReplayOutcome, &q.ReplayDetail}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	q.ReplayedAt = replayed.Time
	return &q, nil
}

// ListQuarantine returns the newest limit quarantined requests, newest
// first, without their bodies and headers: a listing never needs them, and
// leaving them out keeps signatures off terminals.
func (s *DB) ListQuarantine(ctx context.Context, limit int) ([]*Quarantined, error) {
	qs, err := queryAll(ctx, s.db, func(r rowScanner) (*Quarantined, error) { return scanQuarantined(r) },
		`SELECT `+quarantineSummaryColumns+` FROM quarantine ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list quarantine: %w", err)
	}
	return qs, nil
}

// GetQuarantined loads one quarantined request whole.
func (s *DB) GetQuarantined(ctx context.Context, id int64) (*Quarantined, error) {
	var headers string
	var body []byte
	q, err := scanQuarantined(s.db.QueryRowContext(ctx,
		`SELECT `+quarantineSummaryColumns+`, headers, body FROM quarantine WHERE id = ?`, id), &headers, &body)
	if err != nil {
		return nil, fmt.Errorf("store: get quarantined %d: %w", id, translate(err))
	}
	if err := json.Unmarshal([]byte(headers), &q.Header); err != nil {
		return nil, fmt.Errorf("store: get quarantined %d: headers: %w", id, err)
	}
	q.Body = body
	return q, nil
}

// QuarantineToReplay lists, oldest first, the quarantined requests that a
// replay of all should try: those never replayed, and those whose replay
// did not get as far as the webhook's own checks (still_invalid, truncated).
// A request that verified on replay has its delivery stored already.
func (s *DB) QuarantineToReplay(ctx context.Context) ([]int64, error) {
	ids, err := queryAll(ctx, s.db, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT id FROM quarantine WHERE replay_outcome IN ('', ?, ?) ORDER BY id`, ReplayStillInvalid, ReplayTruncated)
	if err != nil {
		return nil, fmt.Errorf("store: quarantine to replay: %w", err)
	}
	return ids, nil
}

// MarkReplayed records the outcome of one replay of a quarantined request.
func (s *DB) MarkReplayed(ctx context.Context, id int64, outcome, detail string) error {
	if _, err := s.db.ExecContext(ctx,
		`UPDATE quarantine SET replayed_at = ?, replay_outcome = ?, replay_detail = ? WHERE id = ?`,
		s.utcNow(), truncate(outcome, 16), truncate(detail, 512), id); err != nil {
		return fmt.Errorf("store: mark quarantined %d replayed: %w", id, translate(err))
	}
	return nil
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// QuarantineSize is QuarantineUsage in the shape the /ops page reads
// (handlers.QuarantineSizer), so that *DB serves it directly.
func (s *DB) QuarantineSize(ctx context.Context) (rows int, bytes int64, err error) {
	u, err := s.QuarantineUsage(ctx)
	return int(u.Rows), u.Bytes, err
}

// UnshapedCount summarises the requests of one reason that were refused
// for their signature and not kept, since they were not shaped like
// HubSpot's (see hubspot.Verifier.CheckShape): how many, and when the first
// and the last of them arrived.
type UnshapedCount struct {
	Reason    string
	Count     int64
	FirstSeen time.Time
	LastSeen  time.Time
}

// AddUnshaped adds counts to the summary of unshaped requests in one
// statement: each count is added to its reason's row, which keeps the
// earliest first and the latest last sighting. The reasons are a fixed few,
// so the table never holds more rows than there are reasons.
func (s *DB) AddUnshaped(ctx context.Context, counts []UnshapedCount) error {
	if len(counts) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO quarantine_unshaped (reason, count, first_seen, last_seen) VALUES `)
	args := make([]any, 0, 4*len(counts))
	for i, c := range counts {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?)")
		args = append(args, truncate(c.Reason, 32), c.Count, c.FirstSeen.UTC(), c.LastSeen.UTC())
	}
	q.WriteString(` ON DUPLICATE KEY UPDATE count = count + VALUES(count),
	  first_seen = LEAST(first_seen, VALUES(first_seen)), last_seen = GREATEST(last_seen, VALUES(last_seen))`)
	if _, err := s.db.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("store: add unshaped counts: %w", translate(err))
	}
	return nil
}

// UnshapedCounts returns the summary of unshaped requests, one entry per
// reason seen, by reason.
func (s *DB) UnshapedCounts(ctx context.Context) ([]UnshapedCount, error) {
	cs, err := queryAll(ctx, s.db, func(r rowScanner) (UnshapedCount, error) {
		var c UnshapedCount
		return c, r.Scan(&c.Reason, &c.Count, &c.FirstSeen, &c.LastSeen)
	}, `SELECT reason, count, first_seen, last_seen FROM quarantine_unshaped ORDER BY reason`)
	if err != nil {
		return nil, fmt.Errorf("store: unshaped counts: %w", err)
	}
	return cs, nil
}

// PurgeBatch is how many quarantined requests one DELETE removes, so that a
// purge of a full quarantine never holds its locks, or the webhook's
// writes, for long.
const PurgeBatch = 500

// ErrPurgeUnfiltered means a purge named neither All nor a filter; deleting
// everything must be asked for by name.
var ErrPurgeUnfiltered = errors.New("store: purge needs All, a reason or a time")

// QuarantinePurge selects what PurgeQuarantine deletes: everything with All,
// else the quarantined requests of Reason (when set) received before Before
// (when set), and likewise the unshaped counts of Reason last seen before
// Before.
type QuarantinePurge struct {
	All    bool
	Reason string
	Before time.Time
}

// PurgeResult is how much a purge deleted: quarantined requests, and
// reasons' rows of the unshaped summary.
type PurgeResult struct {
	Requests int64
	Unshaped int64
}

// PurgeQuarantine deletes what p selects, the quarantined requests in
// batches of PurgeBatch, oldest first, calling progress (when not nil) with
// the running total after each batch. A purge stopped half-way has deleted
// whole batches only, and running it again finishes it.
func (s *DB) PurgeQuarantine(ctx context.Context, p QuarantinePurge, progress func(requests int64)) (PurgeResult, error) {
	var res PurgeResult
	where, args, err := p.where("received_at", "last_seen")
	if err != nil {
		return res, err
	}
	for {
		r, err := s.db.ExecContext(ctx, `DELETE FROM quarantine`+where[0]+` ORDER BY id LIMIT ?`,
			append(args, PurgeBatch)...)
		if err != nil {
			return res, fmt.Errorf("store: purge quarantine: %w", translate(err))
		}
		n, err := r.RowsAffected()
		if err != nil {
			return res, fmt.Errorf("store: purge quarantine: %w", err)
		}
		res.Requests += n
		if progress != nil && n > 0 {
			progress(res.Requests)
		}
		if n < PurgeBatch {
			break
		}
	}
	r, err := s.db.ExecContext(ctx, `DELETE FROM quarantine_unshaped`+where[1], args...)
	if err != nil {
		return res, fmt.Errorf("store: purge unshaped counts: %w", translate(err))
	}
	if res.Unshaped, err = r.RowsAffected(); err != nil {
		return res, fmt.Errorf("store: purge unshaped counts: %w", err)
	}
	return res, nil
}

// where builds the WHERE clauses of p for the quarantine (its time column
// requestTime) and the unshaped summary (summaryTime), which share args.
func (p QuarantinePurge) where(requestTime, summaryTime string) (clauses [2]string, args []any, err error) {
	if p.All {
		return clauses, nil, nil
	}
	if p.Reason == "" && p.Before.IsZero() {
		return clauses, nil, ErrPurgeUnfiltered
	}
	var conds [2][]string
	if p.Reason != "" {
		conds[0], conds[1] = append(conds[0], "reason = ?"), append(conds[1], "reason = ?")
		args = append(args, p.Reason)
	}
	if !p.Before.IsZero() {
		conds[0], conds[1] = append(conds[0], requestTime+" < ?"), append(conds[1], summaryTime+" < ?")
		args = append(args, p.Before.UTC())
	}
	for i := range clauses {
		clauses[i] = " WHERE " + strings.Join(conds[i], " AND ")
	}
	return clauses, args, nil
}
