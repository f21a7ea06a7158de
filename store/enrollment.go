package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Enrollment statuses. A row moves pending → importing → imported, or to
// failed or rejected; a changed version of a contact puts it back to pending.
const (
	StatusPending   = "pending"   // stored, waiting for a CC import
	StatusImporting = "importing" // claimed by one CC import
	StatusImported  = "imported"  // CC reported the import clean
	StatusFailed    = "failed"    // CC refused it or reported errors; replayable
	StatusRejected  = "rejected"  // cannot be sent to CC as it is (e.g. a value over CC's limits)
)

// ListKey names a set of CC lists independently of their order. Enrollments
// with the same key are imported together (it is the asynq group); the key
// is readable unless the names are long or hold the separator, when it
// becomes a hash, so ["a|b"] and ["a","b"] never share one.
func ListKey(lists []string) string {
	sorted := append([]string(nil), lists...)
	sort.Strings(sorted)
	key := "lists:" + strings.Join(sorted, "|")
	if len(key) <= 191 && strings.Count(key, "|") == max(len(sorted)-1, 0) {
		return key
	}
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\x00")))
	return "lists:sha256:" + hex.EncodeToString(sum[:12])
}

// Enrollment is one HubSpot contact as the bridge keeps it.
type Enrollment struct {
	ID           int64
	PortalID     int64
	ObjectKey    string
	Email        string
	FirstName    string
	LastName     string
	Country      string
	EnrolledAt   time.Time // zero when HubSpot sent none
	Properties   map[string]string
	Lists        []string // names of the CC lists this contact belongs on
	ContentHash  string
	Version      int
	Status       string
	StatusReason string
	ImportID     int64
	ReceivedAt   time.Time
	UpdatedAt    time.Time
	ImportedAt   time.Time
	// SourceUpdatedAt is how recent HubSpot's data was in the workflow body
	// the row was last written from; zero when the body did not say. An
	// older body is recorded as stale and changes nothing.
	SourceUpdatedAt time.Time
	// PropertyTimes says when HubSpot changed each property that a Webhooks
	// API event set after that body; the store keeps it and ignores it on
	// input.
	PropertyTimes map[string]time.Time
	// Route says why the rules chose Lists; it is kept with the delivery
	// and the version's history, not on the row.
	Route string
	// SentAt is when HubSpot signed the delivery the row was last written
	// from (its v3 signature's time); zero when that was v1 or v2. It
	// orders deliveries whose data carries no HubSpot time (see decide).
	SentAt time.Time
}

// newestSource is the time of the newest HubSpot data in the row: its body
// or an event applied since, whichever is later; zero when none is known.
func (e *Enrollment) newestSource() time.Time {
	newest := e.SourceUpdatedAt
	for _, t := range e.PropertyTimes {
		if t.After(newest) {
			newest = t
		}
	}
	return newest
}

// Outcome says what an ingest did to the enrollment row.
type Outcome int

// Outcomes of Ingest.
const (
	OutcomeCreated   Outcome = iota + 1 // first delivery for this contact
	OutcomeUpdated                      // changed content: a new version
	OutcomeUnchanged                    // same content as stored: a no-op
	OutcomeStale                        // older than the stored data: recorded, nothing changed
	OutcomeRecorded                     // recorded without changing any enrollment (IngestEvent)
)

func (o Outcome) String() string {
	switch o {
	case OutcomeCreated:
		return "created"
	case OutcomeUpdated:
		return "updated"
	case OutcomeUnchanged:
		return "unchanged"
	case OutcomeStale:
		return "stale"
	case OutcomeRecorded:
		return "recorded"
	}
	return "unknown"
}

// IngestResult tells the webhook handler what to enqueue.
type IngestResult struct {
	EnrollmentID int64
	DeliveryID   int64
	Version      int
	Status       string
	Lists        []string
	Outcome      Outcome
	// Repeat says the delivery was an exact repeat, counted on the stored
	// delivery DeliveryID instead of being stored again.
	Repeat bool
}

// Ingest stores a delivery and upserts its enrollment in one transaction, so
// that a 2xx to HubSpot always means both are durable. The same content is a
// no-op; changed content becomes a new version that is imported again.
//
// An older delivery never overwrites a newer one: when e.SourceUpdatedAt and
// the row's newest data (its body, or an event since) are both known and the
// delivery is older, it is recorded with VerdictStale and OutcomeStale, and
// the row is left as it is. HubSpot retries a workflow delivery for days,
// so a late retry is expected, not an error. When either data time is
// unknown, the times HubSpot signed the two deliveries (e.SentAt and the
// row's) order them the same way when both are known; with neither pair
// known the delivery is applied as if there were no times.
//
// An exact repeat, the body of a delivery stored before about the same
// contact, is counted on that delivery (see repeatOutcome) and stores
// nothing new: a request captured once and replayed, which v1 and v2
// signatures allow for ever, adds no row and rolls nothing back.
//
// A value too long for its column is refused before anything is written,
// with a *FieldTooLongError, since MySQL would refuse the write every time.
//
// The row is written first with INSERT … ON DUPLICATE KEY UPDATE, which takes
// the row lock without the gap locks a SELECT … FOR UPDATE on a missing key
// would take; concurrent first deliveries of one contact then queue on the
// row instead of deadlocking. Deadlocks that still happen are retried.
func (s *DB) Ingest(ctx context.Context, d *Delivery, e *Enrollment) (IngestResult, error) {
	if err := CheckColumns(e); err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", err)
	}
	props, err := json.Marshal(nonNilMap(e.Properties))
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", err)
	}
	lists, err := json.Marshal(nonNilSlice(e.Lists))
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", err)
	}
	if err := checkEncoded(props, lists); err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", err)
	}
	now := s.utcNow()
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = now
	}
	var res IngestResult
	reason := d.Reason
	// inTx is the one place a deadlocked transaction is run again; the
	// delivery's reason is set back each time, since a stale decision of
	// a rolled-back attempt writes it.
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		d.Reason = reason
		var err error
		res, err = ingestTx(ctx, tx, now, d, e, string(props), string(lists))
		return err
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", translate(err))
	}
	return res, nil
}

// decision is what an incoming delivery does to the stored row of its
// contact (see decide).
type decision struct {
	outcome Outcome // OutcomeStale, OutcomeUnchanged or OutcomeUpdated
	reason  string  // why a delivery is stale
	// sourceAt is how recent the row's HubSpot data is after the delivery:
	// for an unchanged row, a newer time than the stored one to keep (zero
	// to keep the row as it is); for a new version, the time to store.
	sourceAt time.Time
}

// decide compares an incoming enrollment with the stored row of its
// contact, with no I/O: data older than the row's newest (its body or an
// event since, when both times are known) is stale and changes nothing; the
// same content is unchanged, keeping only a newer time, so that a late
// delivery of an older change is still known for what it is; anything else
// is a new version. A new version's body replaces every property, so what
// stays of the event times is how new its data is at least, which an
// unknown incoming time cannot lower.
func decide(cur, in *Enrollment) decision {
	newest, incoming := cur.newestSource(), in.SourceUpdatedAt
	bothData := !incoming.IsZero() && !newest.IsZero()
	switch {
	case bothData && incoming.Before(newest):
		return decision{outcome: OutcomeStale, reason: fmt.Sprintf("HubSpot data of %s is older than the stored data of %s",
			formatMillis(incoming), formatMillis(newest))}
	case !bothData && !in.SentAt.IsZero() && in.SentAt.Before(cur.SentAt):
		// A data time is never compared with a send time: HubSpot signs a
		// request long after the data in it changed, and retries re-sign.
		return decision{outcome: OutcomeStale, reason: fmt.Sprintf("signed by HubSpot at %s, before the stored data's delivery of %s",
			formatMillis(in.SentAt), formatMillis(cur.SentAt))}
	case cur.ContentHash == in.ContentHash:
		d := decision{outcome: OutcomeUnchanged}
		if incoming.After(cur.SourceUpdatedAt) {
			d.sourceAt = incoming
		}
		return d
	}
	d := decision{outcome: OutcomeUpdated, sourceAt: incoming}
	if incoming.IsZero() {
		d.sourceAt = newest
	}
	return d
}

// laterSent is the send time a row keeps after a delivery sent at in is
// applied to it: an unknown time cannot lower what is known.
func laterSent(cur, in time.Time) time.Time {
	if in.After(cur) {
		return in
	}
	return cur
}

// repeatOutcome says whether a delivery whose body was stored before about
// the same contact (found is true) is an exact repeat, to be counted on that
// delivery instead of being stored. It is, unless it would make a new
// version with a v3 signature: HubSpot signed that one within the last
// minutes and it is not older than the row, so it is the contact changing
// back to an earlier body, not a replay. A v1 or v2 request proves no time,
// so the same body again is taken for a replay, even when it would change
// the row: that is what rolled contacts back.
func repeatOutcome(found bool, dec decision, in *Enrollment) bool {
	return found && (dec.outcome != OutcomeUpdated || in.SentAt.IsZero())
}

// verdictOf is the delivery verdict of an ingest outcome.
func verdictOf(o Outcome) string {
	switch o {
	case OutcomeUnchanged:
		return VerdictDuplicate
	case OutcomeStale:
		return VerdictStale
	}
	return VerdictAccepted
}

// ingestTx writes one delivery and what it decides for its enrollment, in
// tx. The row is written first with INSERT … ON DUPLICATE KEY UPDATE (see
// Ingest); an existing row is then locked and the decision applied, unless
// the delivery is an exact repeat, which is only counted.
func ingestTx(ctx context.Context, tx *sql.Tx, now time.Time, d *Delivery, e *Enrollment, props, lists string) (IngestResult, error) {
	id, created, err := upsertEnrollment(ctx, tx, now, e, props, lists)
	if err != nil {
		return IngestResult{}, err
	}
	res := IngestResult{EnrollmentID: id, Lists: e.Lists, Outcome: OutcomeCreated, Version: 1, Status: StatusPending}
	if created {
		if err := recordVersion(ctx, tx, id, nil, e, 1, d.ReceivedAt); err != nil {
			return IngestResult{}, err
		}
	} else {
		cur, err := lockEnrollment(ctx, tx, id)
		if err != nil {
			return IngestResult{}, err
		}
		dec := decide(cur, e)
		repeatOf, err := findRepeat(ctx, tx, d, id)
		if err != nil {
			return IngestResult{}, err
		}
		if repeatOutcome(repeatOf != 0, dec, e) {
			return ingestRepeat(ctx, tx, now, d, e, cur, dec, repeatOf)
		}
		res.Outcome, res.Version, res.Status, res.Lists = dec.outcome, cur.Version, cur.Status, cur.Lists
		switch dec.outcome {
		case OutcomeStale:
			d.Reason = dec.reason
		case OutcomeUnchanged:
			// The stored lists are the ones its task was queued with.
			if err := keepNewerTimes(ctx, tx, cur, dec, e.SentAt); err != nil {
				return IngestResult{}, err
			}
		default:
			res.Version, res.Status, res.Lists = cur.Version+1, StatusPending, e.Lists
			// The history comes first: it keeps the outcome the row is
			// about to forget.
			if err := recordVersion(ctx, tx, id, cur, e, res.Version, d.ReceivedAt); err != nil {
				return IngestResult{}, err
			}
			if _, err := tx.ExecContext(ctx,
				`UPDATE enrollments SET email = ?, first_name = ?, last_name = ?, country = ?, enrolled_at = ?,
				   properties = ?, lists = ?, list_key = ?, content_hash = ?, version = ?, status = ?, status_reason = '',
				   import_id = NULL, updated_at = ?, source_updated_at = ?, property_times = NULL, version_received_at = ?,
				   sent_at = ?
				 WHERE id = ?`,
				e.Email, e.FirstName, e.LastName, e.Country, nullTime(e.EnrolledAt), props, lists, ListKey(e.Lists), e.ContentHash,
				res.Version, StatusPending, now, nullTime(dec.sourceAt), now, nullTime(laterSent(cur.SentAt, e.SentAt)), id); err != nil {
				return IngestResult{}, err
			}
		}
	}
	d.EnrollmentID, d.Verdict = id, verdictOf(res.Outcome)
	d.Version, d.Lists, d.Route = res.Version, e.Lists, e.Route
	if err := insertDelivery(ctx, tx, d); err != nil {
		return IngestResult{}, err
	}
	res.DeliveryID = d.ID
	return res, nil
}

// upsertEnrollment inserts e as version 1 of a new contact, or finds and
// row-locks the contact's existing row, and returns its id and whether it
// was created.
func upsertEnrollment(ctx context.Context, tx *sql.Tx, now time.Time, e *Enrollment, props, lists string) (int64, bool, error) {
	r, err := tx.ExecContext(ctx,
		`INSERT INTO enrollments (portal_id, object_key, email, first_name, last_name, country, enrolled_at,
		   properties, lists, list_key, content_hash, version, status, status_reason, received_at, updated_at,
		   source_updated_at, version_received_at, sent_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, '', ?, ?, ?, ?, ?)
		 ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)`,
		e.PortalID, e.ObjectKey, e.Email, e.FirstName, e.LastName, e.Country, nullTime(e.EnrolledAt),
		props, lists, ListKey(e.Lists), e.ContentHash, StatusPending, now, now, nullTime(e.SourceUpdatedAt), now, nullTime(e.SentAt))
	if err != nil {
		return 0, false, err
	}
	id, err := r.LastInsertId()
	if err != nil {
		return 0, false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, false, err
	}
	return id, n == 1, nil
}

// findRepeat returns the id of the newest delivery about enrollment id
// whose body is d's, or 0. It reads the (body_sha256, enrollment_id) index
// alone.
func findRepeat(ctx context.Context, tx *sql.Tx, d *Delivery, id int64) (int64, error) {
	var found int64
	err := tx.QueryRowContext(ctx,
		`SELECT id FROM deliveries WHERE body_sha256 = ? AND enrollment_id = ? ORDER BY id DESC LIMIT 1`,
		d.bodySum(), id).Scan(&found)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return found, err
}

// ingestRepeat counts d as an exact repeat of the stored delivery repeatOf
// and changes nothing else, except that the row keeps the newer times of an
// unchanged repeat. A repeat is stale when decide says so, and otherwise a
// duplicate, whatever its content would have done: no version, no task.
func ingestRepeat(ctx context.Context, tx *sql.Tx, now time.Time, d *Delivery, e, cur *Enrollment, dec decision, repeatOf int64) (IngestResult, error) {
	res := IngestResult{EnrollmentID: cur.ID, Version: cur.Version, Status: cur.Status, Lists: cur.Lists,
		Outcome: OutcomeUnchanged, Repeat: true}
	switch dec.outcome {
	case OutcomeStale:
		res.Outcome, d.Reason = OutcomeStale, dec.reason
	case OutcomeUnchanged:
		if err := keepNewerTimes(ctx, tx, cur, dec, e.SentAt); err != nil {
			return IngestResult{}, err
		}
	}
	d.EnrollmentID, d.Verdict = cur.ID, verdictOf(res.Outcome)
	if err := countRepeat(ctx, tx, d, repeatOf, now); err != nil {
		return IngestResult{}, err
	}
	res.DeliveryID = d.ID
	return res, nil
}

// keepNewerTimes stores, for a delivery that changed nothing, the newer
// data time the decision carries and a newer send time, so that an older
// delivery arriving later is still known for what it is.
func keepNewerTimes(ctx context.Context, tx *sql.Tx, cur *Enrollment, dec decision, sentAt time.Time) error {
	if !dec.sourceAt.IsZero() {
		if _, err := tx.ExecContext(ctx,
			`UPDATE enrollments SET source_updated_at = ?, property_times = NULL WHERE id = ?`,
			dec.sourceAt.UTC(), cur.ID); err != nil {
			return err
		}
	}
	if sentAt.After(cur.SentAt) {
		if _, err := tx.ExecContext(ctx, `UPDATE enrollments SET sent_at = ? WHERE id = ?`, sentAt.UTC(), cur.ID); err != nil {
			return err
		}
	}
	return nil
}

const enrollmentColumns = `id, portal_id, object_key, email, first_name, last_name, country, enrolled_at,
  properties, lists, content_hash, version, status, status_reason, import_id, received_at, updated_at, imported_at,
  source_updated_at, property_times, sent_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanEnrollment(r rowScanner) (*Enrollment, error) {
	var e Enrollment
	var enrolledAt, importedAt, sourceAt, sentAt sql.NullTime
	var importID sql.NullInt64
	var props, lists string
	var times sql.NullString
	if err := r.Scan(&e.ID, &e.PortalID, &e.ObjectKey, &e.Email, &e.FirstName, &e.LastName, &e.Country,
		&enrolledAt, &props, &lists, &e.ContentHash, &e.Version, &e.Status, &e.StatusReason, &importID,
		&e.ReceivedAt, &e.UpdatedAt, &importedAt, &sourceAt, &times, &sentAt); err != nil {
		return nil, err
	}
	e.EnrolledAt, e.ImportedAt, e.ImportID = enrolledAt.Time, importedAt.Time, importID.Int64
	e.SourceUpdatedAt, e.SentAt = sourceAt.Time, sentAt.Time
	if err := json.Unmarshal([]byte(props), &e.Properties); err != nil {
		return nil, fmt.Errorf("enrollment %d properties: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(lists), &e.Lists); err != nil {
		return nil, fmt.Errorf("enrollment %d lists: %w", e.ID, err)
	}
	if times.Valid {
		var ms map[string]int64
		if err := json.Unmarshal([]byte(times.String), &ms); err != nil {
			return nil, fmt.Errorf("enrollment %d property times: %w", e.ID, err)
		}
		e.PropertyTimes = make(map[string]time.Time, len(ms))
		for name, v := range ms {
			e.PropertyTimes[name] = time.UnixMilli(v).UTC()
		}
	}
	return &e, nil
}

// lockEnrollment loads one enrollment and locks its row until the
// transaction ends. It looks the row up by primary key only, so that the
// lock never covers a gap that a concurrent first delivery inserts into.
func lockEnrollment(ctx context.Context, tx *sql.Tx, id int64) (*Enrollment, error) {
	return scanEnrollment(tx.QueryRowContext(ctx,
		`SELECT `+enrollmentColumns+` FROM enrollments WHERE id = ? FOR UPDATE`, id))
}

// encodeTimes renders PropertyTimes for its column, NULL when empty.
func encodeTimes(times map[string]time.Time) (sql.NullString, error) {
	if len(times) == 0 {
		return sql.NullString{}, nil
	}
	ms := make(map[string]int64, len(times))
	for name, t := range times {
		ms[name] = t.UnixMilli()
	}
	b, err := json.Marshal(ms)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// nullTime stores the zero time as NULL and any other in UTC.
func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

// formatMillis renders a HubSpot time for a delivery's reason.
func formatMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// GetEnrollment loads one enrollment by id.
func (s *DB) GetEnrollment(ctx context.Context, id int64) (*Enrollment, error) {
	e, err := scanEnrollment(s.db.QueryRowContext(ctx,
		`SELECT `+enrollmentColumns+` FROM enrollments WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: get enrollment %d: %w", id, translate(err))
	}
	return e, nil
}

// CountEnrollments returns how many enrollments are in each status.
func (s *DB) CountEnrollments(ctx context.Context) (map[string]int, error) {
	counts, err := countBy(ctx, s.db, `SELECT status, COUNT(*) FROM enrollments GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: count enrollments: %w", err)
	}
	return counts, nil
}

// PendingRef is what the sweep needs to enqueue an enrollment again.
type PendingRef struct {
	ID      int64
	Version int
	Lists   []string
}

// StalePending lists enrollments that have waited in pending since before
// the cutoff: their task was lost (Redis restarted, or Redis was down when
// they arrived), so the sweep enqueues them again.
func (s *DB) StalePending(ctx context.Context, before time.Time, limit int) ([]PendingRef, error) {
	refs, err := queryAll(ctx, s.db, func(r rowScanner) (PendingRef, error) {
		var p PendingRef
		var lists string
		if err := r.Scan(&p.ID, &p.Version, &lists); err != nil {
			return p, err
		}
		return p, json.Unmarshal([]byte(lists), &p.Lists)
	}, `SELECT id, version, lists FROM enrollments WHERE status = ? AND updated_at < ? ORDER BY updated_at, id LIMIT ?`,
		StatusPending, before.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: stale pending: %w", err)
	}
	return refs, nil
}

// PendingCursor is where a walk over pending enrollments stands: the
// update time and id of the last row seen.
type PendingCursor struct {
	UpdatedAt time.Time
	ID        int64
}

// PendingPage returns up to limit pending enrollments after the cursor, in
// the order of their last update (the index StalePending uses), and the
// cursor of the last one. A row that changes while the walk goes on moves
// behind the cursor and may be returned twice, never skipped for good; the
// callers enqueue by task id, so a repeat is harmless.
func (s *DB) PendingPage(ctx context.Context, after PendingCursor, limit int) ([]PendingRef, PendingCursor, error) {
	next := after
	refs, err := queryAll(ctx, s.db, func(r rowScanner) (PendingRef, error) {
		var p PendingRef
		var lists string
		if err := r.Scan(&p.ID, &p.Version, &lists, &next.UpdatedAt); err != nil {
			return p, err
		}
		next.ID = p.ID
		return p, json.Unmarshal([]byte(lists), &p.Lists)
	}, `SELECT id, version, lists, updated_at FROM enrollments
	    WHERE status = ? AND (updated_at > ? OR (updated_at = ? AND id > ?))
	    ORDER BY updated_at, id LIMIT ?`,
		StatusPending, after.UpdatedAt.UTC(), after.UpdatedAt.UTC(), after.ID, limit)
	if err != nil {
		return nil, after, fmt.Errorf("store: pending page: %w", err)
	}
	return refs, next, nil
}

// PendingIDs returns up to limit ids of pending enrollments bound for the
// list set listKey, above afterID, in id order.
func (s *DB) PendingIDs(ctx context.Context, listKey string, afterID int64, limit int) ([]int64, error) {
	ids, err := queryAll(ctx, s.db, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT id FROM enrollments WHERE status = ? AND list_key = ? AND id > ? ORDER BY id LIMIT ?`,
		StatusPending, listKey, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending ids: %w", err)
	}
	return ids, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
