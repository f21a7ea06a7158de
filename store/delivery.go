package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Delivery kinds, by the shape of the body.
const (
	KindWorkflow    = "workflow"
	KindWebhooksAPI = "webhooks_api"
	KindUnknown     = "unknown"
)

// Delivery verdicts: what the webhook handler decided about one request.
const (
	VerdictAccepted    = "accepted"    // stored as a new or changed enrollment
	VerdictDuplicate   = "duplicate"   // same content as the stored enrollment
	VerdictMalformed   = "malformed"   // not JSON we can read (answered 400)
	VerdictNoEmail     = "no_email"    // parsed, but no usable email (answered 422)
	VerdictUnsupported = "unsupported" // a shape this version does not import yet (answered 2xx)
	VerdictNoRoute     = "no_route"    // the routing rules send it to no list (answered 422)
	VerdictStale       = "stale"       // older than the stored data: nothing changed (answered 2xx)
	VerdictTooLarge    = "too_large"   // over the body limit, neither verified nor read whole (answered 413)
	VerdictRejected    = "rejected"    // a value the bridge cannot keep, such as a field too long for its column (answered 422)
)

// TooLargeHeadMax is how much of a body over the limit is kept with its
// too_large delivery: enough to tell whose contact it was and what made it
// large, and little enough that a flood of huge bodies cannot fill MySQL.
const TooLargeHeadMax = 64 << 10

// Delivery is one HubSpot request, kept with its raw body so that it can be
// inspected and replayed later. Every verdict but too_large is of a request
// whose signature verified; a too_large one was refused before its body
// could be read whole, so it is unverified and its Body is only the first
// TooLargeHeadMax bytes.
type Delivery struct {
	ID               int64
	ReceivedAt       time.Time
	Kind             string
	SignatureVersion string
	Verdict          string
	Reason           string
	EnrollmentID     int64 // 0 when the delivery produced no enrollment
	Body             []byte
	// BodyLength is how many body bytes arrived, at least len(Body); 0 in
	// rows stored before it was recorded. BodyLengthAtLeast says that
	// reading stopped before the body ended, so that it is a lower bound.
	BodyLength        int64
	BodyLengthAtLeast bool
	// DeclaredLength is the Content-Length the request declared, kept for
	// too_large deliveries only; 0 when it declared none.
	DeclaredLength int64
	// Header holds the first value of each of KeptHeaders, kept for
	// too_large deliveries only, so that the sender can be told apart
	// from HubSpot; nil for the others.
	Header http.Header
	// Version is the enrollment version the delivery made or was compared
	// with; 0 when it concerned none.
	Version int
	// Lists and Route are the CC lists the rules chose for the delivery's
	// data and why; empty when it was not routed.
	Lists []string
	Route string
	// Email is kept only for a delivery that names a contact but made no
	// enrollment (no_route), so that a trace by email finds it.
	Email string
	// ReplayOf is the delivery that `hs2cc deliveries replay` ran again to
	// make this one; 0 for a delivery HubSpot sent.
	ReplayOf int64
	// SignedAt is when HubSpot signed the request, from its v3 signature;
	// zero for v1 and v2, which carry no time.
	SignedAt time.Time
	// Repeats counts the exact repeats of this delivery (the same body
	// about the same contact) that were counted here instead of being
	// stored again, the last of them at LastRepeatAt.
	Repeats      int
	LastRepeatAt time.Time
	// sum is the SHA-256 of Body, computed once (see bodySum).
	sum []byte
}

// bodySum is the SHA-256 of d's body, by which an exact repeat is found;
// nil for a too_large delivery, whose body is only its head, so that two
// different bodies with the same head are not taken for one.
func (d *Delivery) bodySum() []byte {
	if d.Verdict == VerdictTooLarge {
		return nil
	}
	if d.sum == nil {
		sum := sha256.Sum256(d.Body)
		d.sum = sum[:]
	}
	return d.sum
}

// preparedBodyMin is the body size from which a delivery is inserted by a
// statement prepared on the server rather than one the driver interpolates.
// Interpolating escapes the body into the statement's text and copies it
// three times on the way, some five times the body's size in garbage, which
// for a few hundred KB bodies, many at once, is what bounds serve's memory;
// a prepared statement sends the body as it is, about twice its size, for
// one more round trip, which only bodies this rare and large pay.
const preparedBodyMin = 128 << 10

// execPreparer is what *sql.DB and *sql.Tx share for writes.
type execPreparer interface {
	execer
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

func insertDelivery(ctx context.Context, q execPreparer, d *Delivery) error {
	var enr, declared sql.NullInt64
	if d.EnrollmentID != 0 {
		enr = sql.NullInt64{Int64: d.EnrollmentID, Valid: true}
	}
	if d.DeclaredLength > 0 {
		declared = sql.NullInt64{Int64: d.DeclaredLength, Valid: true}
	}
	d.BodyLength = max(d.BodyLength, int64(len(d.Body)))
	var headers sql.NullString
	if d.Header != nil {
		d.Header = keepHeaders(d.Header)
		b, err := json.Marshal(d.Header)
		if err != nil {
			return fmt.Errorf("store: insert delivery: %w", err)
		}
		headers = sql.NullString{String: string(b), Valid: true}
	}
	tr, err := traceColumns(d)
	if err != nil {
		return fmt.Errorf("store: insert delivery: %w", err)
	}
	const insert = `INSERT INTO deliveries (received_at, kind, signature_version, verdict, reason, enrollment_id, body,
		   headers, declared_length, body_length, body_length_at_least, version, lists, route, email, body_sha256, signed_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	args := []any{d.ReceivedAt.UTC(), d.Kind, d.SignatureVersion, d.Verdict, truncate(d.Reason, 512), enr,
		nonNilBytes(d.Body), headers, declared, d.BodyLength, d.BodyLengthAtLeast, tr.version, tr.lists, tr.route, tr.email,
		d.bodySum(), nullTime(d.SignedAt)}
	var res sql.Result
	if len(d.Body) >= preparedBodyMin {
		res, err = execPrepared(ctx, q, insert, args...)
	} else {
		res, err = q.ExecContext(ctx, insert, args...)
	}
	if err != nil {
		return fmt.Errorf("store: insert delivery: %w", translate(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("store: insert delivery: %w", err)
	}
	d.ID = id
	return nil
}

// RecordDelivery stores a delivery that produced no enrollment (a malformed
// body, one without an email, an unsupported shape, one too large to read),
// so that nothing HubSpot sent is lost without a trace even when it cannot
// be imported. A too_large delivery's Body must already be cut to
// TooLargeHeadMax, since the caller holds no more of it.
//
// An exact repeat of a refusal (the same body refused with the same
// verdict, which a body without a contact can only be) is counted on the
// delivery that stored it, and d takes that delivery's id: a replayed
// request adds no row. Two identical refusals at once may both be stored,
// which costs a row and loses nothing.
func (s *DB) RecordDelivery(ctx context.Context, d *Delivery) error {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = s.utcNow()
	}
	if sum := d.bodySum(); sum != nil && d.EnrollmentID == 0 {
		var id int64
		err := s.db.QueryRowContext(ctx,
			`SELECT id FROM deliveries WHERE body_sha256 = ? AND enrollment_id IS NULL AND verdict = ?
			 ORDER BY id DESC LIMIT 1`, sum, d.Verdict).Scan(&id)
		switch {
		case err == nil:
			return countRepeat(ctx, s.db, d, id, s.utcNow())
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: record delivery: %w", err)
		}
	}
	return insertDelivery(ctx, s.db, d)
}

// countRepeat counts d as an exact repeat of the stored delivery id, at
// now, and gives d that delivery's id: nothing of d is stored but the
// count, since its body and verdict are the stored ones.
func countRepeat(ctx context.Context, q execer, d *Delivery, id int64, now time.Time) error {
	if _, err := q.ExecContext(ctx,
		`UPDATE deliveries SET repeats = repeats + 1, last_repeat_at = ? WHERE id = ?`, now.UTC(), id); err != nil {
		return fmt.Errorf("store: count repeat of delivery %d: %w", id, err)
	}
	d.ID = id
	return nil
}

const deliveryColumns = `id, received_at, kind, signature_version, verdict, reason, enrollment_id, body,
  headers, declared_length, body_length, body_length_at_least, version, lists, route, email, replay_of,
  signed_at, repeats, last_repeat_at`

func scanDelivery(r rowScanner) (*Delivery, error) {
	var d Delivery
	var enr, declared, length sql.NullInt64
	var headers sql.NullString
	var tr deliveryTrace
	var signed, lastRepeat sql.NullTime
	if err := r.Scan(&d.ID, &d.ReceivedAt, &d.Kind, &d.SignatureVersion, &d.Verdict, &d.Reason, &enr, &d.Body,
		&headers, &declared, &length, &d.BodyLengthAtLeast, &tr.version, &tr.lists, &tr.route, &tr.email, &tr.replayOf,
		&signed, &d.Repeats, &lastRepeat); err != nil {
		return nil, err
	}
	if err := tr.fill(&d); err != nil {
		return nil, fmt.Errorf("delivery %d: %w", d.ID, err)
	}
	d.EnrollmentID, d.DeclaredLength, d.BodyLength = enr.Int64, declared.Int64, length.Int64
	d.SignedAt, d.LastRepeatAt = signed.Time, lastRepeat.Time
	if headers.Valid {
		if err := json.Unmarshal([]byte(headers.String), &d.Header); err != nil {
			return nil, fmt.Errorf("delivery %d: headers: %w", d.ID, err)
		}
	}
	return &d, nil
}

// GetDelivery loads one delivery by id.
func (s *DB) GetDelivery(ctx context.Context, id int64) (*Delivery, error) {
	d, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: get delivery %d: %w", id, translate(err))
	}
	return d, nil
}

// DeliveriesToReplay returns up to limit workflow deliveries with this
// verdict, received at or after since, whose bodies are still kept, in id
// order after afterID, so that a caller pages through them with the last
// id it saw.
func (s *DB) DeliveriesToReplay(ctx context.Context, verdict string, since time.Time, afterID int64, limit int) ([]*Delivery, error) {
	out, err := queryAll(ctx, s.db, scanDelivery, `SELECT `+deliveryColumns+`
	    FROM deliveries
	    WHERE kind = ? AND verdict = ? AND received_at >= ? AND id > ? AND purged_at IS NULL
	    ORDER BY id LIMIT ?`, KindWorkflow, verdict, since.UTC(), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries to replay: %w", err)
	}
	return out, nil
}

// CountDeliveries returns how many deliveries carry each verdict.
func (s *DB) CountDeliveries(ctx context.Context) (map[string]int, error) {
	counts, err := countBy(ctx, s.db, `SELECT verdict, COUNT(*) FROM deliveries GROUP BY verdict`)
	if err != nil {
		return nil, fmt.Errorf("store: count deliveries: %w", err)
	}
	return counts, nil
}

// TooLargeSummary is what the deliveries refused for their size since a
// time add up to.
type TooLargeSummary struct {
	Count int
	// Newest is the latest of them, without its body; nil when there was
	// none.
	Newest *Delivery
}

// TooLargeSince counts the too_large deliveries received at or after since
// and loads the newest of them. The count comes from the (verdict,
// received_at) index; only the newest row is read, and not its body.
func (s *DB) TooLargeSince(ctx context.Context, since time.Time) (TooLargeSummary, error) {
	var sum TooLargeSummary
	if err := s.db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM deliveries WHERE verdict = ? AND received_at >= ?`,
		VerdictTooLarge, since.UTC()).Scan(&sum.Count); err != nil {
		return sum, fmt.Errorf("store: too large since: %w", err)
	}
	if sum.Count == 0 {
		return sum, nil
	}
	var d Delivery
	var declared, length sql.NullInt64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, received_at, kind, reason, declared_length, body_length, body_length_at_least
		 FROM deliveries WHERE verdict = ? AND received_at >= ?
		 ORDER BY received_at DESC, id DESC LIMIT 1`, VerdictTooLarge, since.UTC()).
		Scan(&d.ID, &d.ReceivedAt, &d.Kind, &d.Reason, &declared, &length, &d.BodyLengthAtLeast)
	if err != nil {
		return sum, fmt.Errorf("store: too large since: %w", translate(err))
	}
	d.Verdict, d.DeclaredLength, d.BodyLength = VerdictTooLarge, declared.Int64, length.Int64
	sum.Newest = &d
	return sum, nil
}

// execPrepared runs query as a statement prepared on the server, so that
// its arguments travel in the binary protocol instead of being escaped
// into its text.
func execPrepared(ctx context.Context, q execPreparer, query string, args ...any) (sql.Result, error) {
	stmt, err := q.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	return stmt.ExecContext(ctx, args...)
}

// execer is what *sql.DB and *sql.Tx share for writes.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the column never holds broken UTF-8.
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
