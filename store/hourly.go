package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// HourBucket is one UTC hour of an hourly series.
type HourBucket struct {
	// Hour is the start of the hour, UTC.
	Hour  time.Time
	Count int
	// OldestReceived is, in ImportedByHour's buckets, the earliest receipt
	// of a version imported in the hour; zero when none was imported.
	OldestReceived time.Time
}

// hourBuckets returns n empty buckets, the first starting at the hour of
// from, so that an hour with nothing in it is a zero and not a gap.
func hourBuckets(from time.Time, n int) []HourBucket {
	start := from.UTC().Truncate(time.Hour)
	b := make([]HourBucket, n)
	for i := range b {
		b[i].Hour = start.Add(time.Duration(i) * time.Hour)
	}
	return b
}

// The hourly queries take the window's start, then its start and end
// again; each reads a range of one index and nothing else (checked by
// BenchmarkHourlyQueries on 300,000 rows).
const (
	receivedByHourSQL = `SELECT TIMESTAMPDIFF(HOUR, ?, version_received_at) AS h, COUNT(*)
		 FROM enrollments WHERE version_received_at >= ? AND version_received_at < ?
		 GROUP BY h`
	importedByHourSQL = `SELECT TIMESTAMPDIFF(HOUR, ?, imported_at) AS h, COUNT(*), MIN(version_received_at)
		 FROM enrollments WHERE imported_at >= ? AND imported_at < ?
		 GROUP BY h`
)

// ReceivedByHour counts, for each of hours hours from the hour of from, the
// enrollments whose current version was received in it. It reads a range of
// the enrollments_version_received index and nothing else. A contact changed
// since counts once, in the hour of its newest version, as ImportedByHour
// counts it once, so that the two series match when the bridge keeps up.
func (s *DB) ReceivedByHour(ctx context.Context, from time.Time, hours int) ([]HourBucket, error) {
	b := hourBuckets(from, hours)
	if hours == 0 {
		return b, nil
	}
	start, end := b[0].Hour, b[0].Hour.Add(time.Duration(hours)*time.Hour)
	rows, err := s.db.QueryContext(ctx, receivedByHourSQL, start, start, end)
	if err != nil {
		return nil, fmt.Errorf("store: enrollments received by hour: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h, n int
		if err := rows.Scan(&h, &n); err != nil {
			return nil, fmt.Errorf("store: enrollments received by hour: %w", err)
		}
		if h >= 0 && h < hours {
			b[h].Count = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: enrollments received by hour: %w", err)
	}
	return b, nil
}

// ImportedByHour counts, for each of hours hours from the hour of from, the
// enrollments CC imported in it, with the earliest receipt among them. It
// reads a range of the enrollments_imported index and nothing else.
func (s *DB) ImportedByHour(ctx context.Context, from time.Time, hours int) ([]HourBucket, error) {
	b := hourBuckets(from, hours)
	if hours == 0 {
		return b, nil
	}
	start, end := b[0].Hour, b[0].Hour.Add(time.Duration(hours)*time.Hour)
	rows, err := s.db.QueryContext(ctx, importedByHourSQL, start, start, end)
	if err != nil {
		return nil, fmt.Errorf("store: enrollments imported by hour: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h, n int
		var oldest sql.NullTime
		if err := rows.Scan(&h, &n, &oldest); err != nil {
			return nil, fmt.Errorf("store: enrollments imported by hour: %w", err)
		}
		if h >= 0 && h < hours {
			b[h].Count = n
			if oldest.Valid {
				b[h].OldestReceived = oldest.Time.UTC()
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: enrollments imported by hour: %w", err)
	}
	return b, nil
}

// WaitingEnrollment is the enrollment that has waited longest for CC.
type WaitingEnrollment struct {
	ID     int64
	Status string
	// Since is when the version that waits was received.
	Since time.Time
}

// OldestWaiting returns the pending, importing or failed enrollment whose
// waiting version was received first, or nil when none waits. Each status
// is one dive into the enrollments_waiting index.
func (s *DB) OldestWaiting(ctx context.Context) (*WaitingEnrollment, error) {
	var w *WaitingEnrollment
	for _, status := range []string{StatusPending, StatusImporting, StatusFailed} {
		var e WaitingEnrollment
		err := s.db.QueryRowContext(ctx,
			`SELECT id, status, version_received_at FROM enrollments
			 WHERE status = ? ORDER BY version_received_at, id LIMIT 1`, status).Scan(&e.ID, &e.Status, &e.Since)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: oldest waiting enrollment: %w", err)
		}
		e.Since = e.Since.UTC()
		if w == nil || e.Since.Before(w.Since) || (e.Since.Equal(w.Since) && e.ID < w.ID) {
			w = &e
		}
	}
	return w, nil
}

// WaitingAges returns, for each bucket of ImportedByHour, the age of the
// oldest enrollment waiting at the end of that hour (at now, for the hour
// now is in); 0 when none waited. waitingSince is the receipt of the oldest
// enrollment waiting now, zero when none waits.
//
// An enrollment waited at a time t when its version was received by t and it
// was imported after t or waits still; so the oldest waiting at t is the
// earliest receipt, if no later than t, among the enrollments waiting now
// and those imported in the hours after t. A row keeps only its newest
// version, so a contact changed since shows the wait of that version alone.
func WaitingAges(imported []HourBucket, waitingSince, now time.Time) []time.Duration {
	ages := make([]time.Duration, len(imported))
	oldest := waitingSince
	for i := len(imported) - 1; i >= 0; i-- {
		at := imported[i].Hour.Add(time.Hour)
		if at.After(now) {
			at = now
		}
		if !oldest.IsZero() && !oldest.After(at) {
			ages[i] = at.Sub(oldest)
		}
		if r := imported[i].OldestReceived; !r.IsZero() && (oldest.IsZero() || r.Before(oldest)) {
			oldest = r
		}
	}
	return ages
}
