package store

import (
	"context"
	"database/sql"
	"fmt"
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
)

// Delivery is one verified HubSpot request, kept with its raw body so that it
// can be inspected and replayed later.
type Delivery struct {
	ID               int64
	ReceivedAt       time.Time
	Kind             string
	SignatureVersion string
	Verdict          string
	Reason           string
	EnrollmentID     int64 // 0 when the delivery produced no enrollment
	Body             []byte
}

func insertDelivery(ctx context.Context, q execer, d *Delivery) error {
	var enr sql.NullInt64
	if d.EnrollmentID != 0 {
		enr = sql.NullInt64{Int64: d.EnrollmentID, Valid: true}
	}
	res, err := q.ExecContext(ctx,
		`INSERT INTO deliveries (received_at, kind, signature_version, verdict, reason, enrollment_id, body)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.ReceivedAt.UTC(), d.Kind, d.SignatureVersion, d.Verdict, truncate(d.Reason, 512), enr, d.Body)
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
// body, one without an email, an unsupported shape), so that nothing HubSpot
// sent is lost even when it cannot be imported.
func (s *DB) RecordDelivery(ctx context.Context, d *Delivery) error {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = s.utcNow()
	}
	return insertDelivery(ctx, s.db, d)
}

// GetDelivery loads one delivery by id.
func (s *DB) GetDelivery(ctx context.Context, id int64) (*Delivery, error) {
	var d Delivery
	var enr sql.NullInt64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, received_at, kind, signature_version, verdict, reason, enrollment_id, body
		 FROM deliveries WHERE id = ?`, id).
		Scan(&d.ID, &d.ReceivedAt, &d.Kind, &d.SignatureVersion, &d.Verdict, &d.Reason, &enr, &d.Body)
	if err != nil {
		return nil, fmt.Errorf("store: get delivery %d: %w", id, translate(err))
	}
	d.EnrollmentID = enr.Int64
	return &d, nil
}

// DeliveriesToReplay returns up to limit workflow deliveries with this
// verdict, received at or after since, whose bodies are still kept, in id
// order after afterID, so that a caller pages through them with the last
// id it saw.
func (s *DB) DeliveriesToReplay(ctx context.Context, verdict string, since time.Time, afterID int64, limit int) ([]*Delivery, error) {
	out, err := queryAll(ctx, s.db, func(r rowScanner) (*Delivery, error) {
		var d Delivery
		var enr sql.NullInt64
		err := r.Scan(&d.ID, &d.ReceivedAt, &d.Kind, &d.SignatureVersion, &d.Verdict, &d.Reason, &enr, &d.Body)
		d.EnrollmentID = enr.Int64
		return &d, err
	}, `SELECT id, received_at, kind, signature_version, verdict, reason, enrollment_id, body
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
