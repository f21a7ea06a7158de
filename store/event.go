package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// PropertyChange is a Webhooks API event's new value of one contact
// property, for IngestEvent to apply to the contact's enrollment.
type PropertyChange struct {
	// PortalID and ObjectKey name the enrollment, as Ingest stored it.
	PortalID  int64
	ObjectKey string
	// Name is the property that changed.
	Name string
	// OccurredAt is when HubSpot changed it; zero when unknown.
	OccurredAt time.Time
	// Apply sets the new value on a copy of the stored enrollment, with the
	// fields, lists and ContentHash that follow from it; the store keeps
	// PortalID, ObjectKey and its own bookkeeping whatever Apply does. It
	// runs inside the transaction, possibly more than once when MySQL asks
	// for a retry, so it must not have side effects. A *Refusal from it
	// records the delivery with the refusal's verdict and leaves the
	// enrollment as it is; any other error fails the whole event.
	Apply func(e *Enrollment) error
}

// Refusal is the error PropertyChange.Apply returns when a change cannot be
// imported as it is, such as an email that is no longer usable.
type Refusal struct {
	Verdict string // the delivery's verdict, e.g. VerdictNoEmail
	Reason  string
}

func (r *Refusal) Error() string { return r.Verdict + ": " + r.Reason }

// IngestEvent stores one Webhooks API event as its own delivery, in one
// transaction with whatever the event changes, so that a 2xx to HubSpot
// means the event is durable. d.Kind, SignatureVersion and Body come from
// the caller; d.Verdict and d.Reason too when change is nil, and IngestEvent
// sets them otherwise. What it records, by d.Verdict:
//
//   - VerdictDuplicate: key is not empty and an event with that key was
//     stored before (HubSpot retries whole batches). Nothing else changes;
//     the result names the enrollment the first one was about, if any.
//   - the caller's verdict (OutcomeRecorded): change is nil, for an event
//     the bridge does not apply, kept so that it can be replayed later.
//   - VerdictUnsupported (OutcomeRecorded): no enrollment has the contact.
//     A row stored under portal 0, from a customised body that carried no
//     portal id, stands for the contact in any portal.
//   - VerdictStale (OutcomeStale): the change is older than the data the
//     row holds for that property, from a body of later date or from a
//     later event of the same property. Events are ordered per property,
//     since HubSpot does not keep their order across or within batches.
//   - the refusal's verdict (OutcomeRecorded): Apply refused the change.
//   - VerdictDuplicate (OutcomeUnchanged): the content is what is stored.
//   - VerdictAccepted (OutcomeUpdated): a new version, pending import.
func (s *DB) IngestEvent(ctx context.Context, d *Delivery, key string, change *PropertyChange) (IngestResult, error) {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = s.utcNow()
	}
	verdict, reason := d.Verdict, d.Reason
	var res IngestResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A retried transaction starts over from what the caller gave.
		d.Verdict, d.Reason, d.EnrollmentID = verdict, reason, 0
		res = IngestResult{Outcome: OutcomeRecorded}
		first := true
		if key != "" {
			var err error
			if first, err = claimEvent(ctx, tx, key, d.ReceivedAt); err != nil {
				return err
			}
		}
		switch {
		case !first:
			if err := repeatOf(ctx, tx, key, d, &res); err != nil {
				return err
			}
		case change != nil:
			if err := applyChange(ctx, tx, s.utcNow(), d, change, &res); err != nil {
				return err
			}
		}
		d.Version = res.Version
		if err := insertDelivery(ctx, tx, d); err != nil {
			return err
		}
		res.DeliveryID = d.ID
		if key != "" && first {
			if _, err := tx.ExecContext(ctx,
				`UPDATE webhook_events SET delivery_id = ? WHERE event_key = ?`, d.ID, key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest event: %w", translate(err))
	}
	return res, nil
}

// claimEvent records key and reports whether it is new. The upsert takes
// the key's row lock, so that a concurrent retry of the same event waits
// for this transaction and then finds the key, instead of both applying it.
func claimEvent(ctx context.Context, tx *sql.Tx, key string, at time.Time) (bool, error) {
	r, err := tx.ExecContext(ctx,
		`INSERT INTO webhook_events (event_key, delivery_id, received_at) VALUES (?, NULL, ?)
		 ON DUPLICATE KEY UPDATE event_key = event_key`, key, at.UTC())
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// repeatOf fills in a repeated event: a duplicate of the delivery that
// stored it first, about the same enrollment. A pending enrollment is named
// in the result with its version and lists, so that the caller queues it
// again, as for a repeated workflow delivery whose enqueue may have failed.
func repeatOf(ctx context.Context, tx *sql.Tx, key string, d *Delivery, res *IngestResult) error {
	var firstID, enrID, version sql.NullInt64
	var status, lists sql.NullString
	if err := tx.QueryRowContext(ctx,
		`SELECT w.delivery_id, e.id, e.version, e.status, e.lists
		 FROM webhook_events w
		 LEFT JOIN deliveries d ON d.id = w.delivery_id
		 LEFT JOIN enrollments e ON e.id = d.enrollment_id
		 WHERE w.event_key = ?`, key).Scan(&firstID, &enrID, &version, &status, &lists); err != nil {
		return err
	}
	d.Verdict = VerdictDuplicate
	d.Reason = fmt.Sprintf("repeat of the event stored as delivery %d", firstID.Int64)
	res.Outcome = OutcomeUnchanged
	if enrID.Valid {
		d.EnrollmentID = enrID.Int64
		res.EnrollmentID, res.Version, res.Status = enrID.Int64, int(version.Int64), status.String
		if err := json.Unmarshal([]byte(lists.String), &res.Lists); err != nil {
			return fmt.Errorf("enrollment %d lists: %w", enrID.Int64, err)
		}
	}
	return nil
}

// applyChange applies a property change to its enrollment, if the bridge
// has one, and says in d and res what became of it.
func applyChange(ctx context.Context, tx *sql.Tx, now time.Time, d *Delivery, c *PropertyChange, res *IngestResult) error {
	id, err := findEnrollment(ctx, tx, c.PortalID, c.ObjectKey)
	if err != nil {
		return err
	}
	if id == 0 {
		d.Verdict = VerdictUnsupported
		d.Reason = fmt.Sprintf("no enrollment for contact %q of portal %d", c.ObjectKey, c.PortalID)
		return nil
	}
	cur, err := lockEnrollment(ctx, tx, id)
	if err != nil {
		return err
	}
	d.EnrollmentID = id
	res.EnrollmentID, res.Version, res.Status, res.Lists = id, cur.Version, cur.Status, cur.Lists

	asOf := propertyAsOf(cur, c.Name)
	if !c.OccurredAt.IsZero() && !asOf.IsZero() && c.OccurredAt.Before(asOf) {
		res.Outcome, d.Verdict = OutcomeStale, VerdictStale
		d.Reason = fmt.Sprintf("change of %q at %s is older than the stored value of %s",
			c.Name, formatMillis(c.OccurredAt), formatMillis(asOf))
		return nil
	}

	next := *cur
	next.Properties = maps.Clone(cur.Properties)
	next.Lists = slices.Clone(cur.Lists)
	next.PropertyTimes = maps.Clone(cur.PropertyTimes)
	if err := c.Apply(&next); err != nil {
		var refusal *Refusal
		if !errors.As(err, &refusal) {
			return fmt.Errorf("apply change of %q: %w", c.Name, err)
		}
		d.Verdict, d.Reason = refusal.Verdict, refusal.Reason
		return nil
	}
	// A value too long for its column would fail the write, and the whole
	// batch with it, every time HubSpot sends it again.
	if err := CheckColumns(&next); err != nil {
		d.Verdict, d.Reason = VerdictRejected, err.Error()
		return nil
	}
	times, timesChanged := timesAfter(cur.PropertyTimes, c, asOf)
	timesCol, err := encodeTimes(times)
	if err != nil {
		return err
	}

	if next.ContentHash == cur.ContentHash {
		res.Outcome, d.Verdict = OutcomeUnchanged, VerdictDuplicate
		if timesChanged {
			_, err := tx.ExecContext(ctx, `UPDATE enrollments SET property_times = ? WHERE id = ?`, timesCol, id)
			return err
		}
		return nil
	}
	res.Outcome, d.Verdict = OutcomeUpdated, VerdictAccepted
	res.Version, res.Status, res.Lists = cur.Version+1, StatusPending, next.Lists
	d.Lists, d.Route = next.Lists, next.Route
	if err := recordVersion(ctx, tx, id, cur, &next, res.Version, d.ReceivedAt); err != nil {
		return err
	}
	return updateEnrollment(ctx, tx, id, &next, res.Version, now, timesCol)
}

// propertyAsOf returns how recent e's data for the property name is: the
// newer of the body it was last stored from and the last change of that
// property, either of which may be zero when unknown.
func propertyAsOf(e *Enrollment, name string) time.Time {
	asOf := e.SourceUpdatedAt
	if t := e.PropertyTimes[name]; t.After(asOf) {
		asOf = t
	}
	return asOf
}

// timesAfter returns the property times once c is applied, and whether
// they differ from times, which it leaves as they are. The change's time
// is kept even when the content stays, so that an older change of the same
// property, arriving later, is known as such.
func timesAfter(times map[string]time.Time, c *PropertyChange, asOf time.Time) (map[string]time.Time, bool) {
	if !c.OccurredAt.After(asOf) {
		return times, false
	}
	times = maps.Clone(times)
	if times == nil {
		times = map[string]time.Time{}
	}
	times[c.Name] = c.OccurredAt.UTC()
	return times, true
}

// updateEnrollment stores e, changed by an event, as the given version of
// enrollment id, pending import again. Its import_id is cleared: the import
// it named carried an older version, and this one waits for its own.
func updateEnrollment(ctx context.Context, tx *sql.Tx, id int64, e *Enrollment, version int, now time.Time, timesCol sql.NullString) error {
	props, err := json.Marshal(nonNilMap(e.Properties))
	if err != nil {
		return err
	}
	lists, err := json.Marshal(nonNilSlice(e.Lists))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		`UPDATE enrollments SET email = ?, first_name = ?, last_name = ?, country = ?, enrolled_at = ?,
		   properties = ?, lists = ?, list_key = ?, content_hash = ?, version = ?, status = ?, status_reason = '',
		   import_id = NULL, updated_at = ?, property_times = ?, version_received_at = ?
		 WHERE id = ?`,
		e.Email, e.FirstName, e.LastName, e.Country, nullTime(e.EnrolledAt), string(props), string(lists),
		ListKey(e.Lists), e.ContentHash, version, StatusPending, now, timesCol, now, id)
	return err
}

// findEnrollment returns the id of the contact's enrollment, or 0. The read
// takes no lock: rows are never deleted, so the id stays valid for the
// locking read by primary key that follows, and a missing contact locks no
// gap that a concurrent first delivery would have to wait for.
func findEnrollment(ctx context.Context, tx *sql.Tx, portalID int64, objectKey string) (int64, error) {
	portals := []int64{portalID}
	if portalID != 0 {
		portals = append(portals, 0)
	}
	for _, p := range portals {
		var id int64
		err := tx.QueryRowContext(ctx,
			`SELECT id FROM enrollments WHERE portal_id = ? AND object_key = ?`, p, objectKey).Scan(&id)
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, sql.ErrNoRows):
			return 0, err
		}
	}
	return 0, nil
}
