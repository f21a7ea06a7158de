package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// deliveryTrace holds the columns of a delivery that a trace reads, as
// they come from and go to MySQL.
type deliveryTrace struct {
	version  sql.NullInt64
	lists    sql.NullString
	route    sql.NullString
	email    sql.NullString
	replayOf sql.NullInt64
}

// traceColumns renders what d says for a trace; a column is NULL when the
// delivery has nothing to say there, so that deliveries that concern no
// enrollment cost nothing more.
func traceColumns(d *Delivery) (deliveryTrace, error) {
	var tr deliveryTrace
	if d.Version > 0 {
		tr.version = sql.NullInt64{Int64: int64(d.Version), Valid: true}
	}
	if len(d.Lists) > 0 {
		b, err := json.Marshal(d.Lists)
		if err != nil {
			return tr, err
		}
		tr.lists = sql.NullString{String: string(b), Valid: true}
	}
	if d.Route != "" {
		tr.route = sql.NullString{String: truncate(d.Route, 1024), Valid: true}
	}
	if d.Email != "" && d.EnrollmentID == 0 {
		tr.email = sql.NullString{String: truncate(d.Email, 254), Valid: true}
	}
	return tr, nil
}

// fill copies the trace columns into d.
func (tr deliveryTrace) fill(d *Delivery) error {
	d.Version, d.Route, d.Email, d.ReplayOf = int(tr.version.Int64), tr.route.String, tr.email.String, tr.replayOf.Int64
	if tr.lists.Valid {
		if err := json.Unmarshal([]byte(tr.lists.String), &d.Lists); err != nil {
			return fmt.Errorf("lists: %w", err)
		}
	}
	return nil
}

// Why an attempt at importing a version ended before its outcome was
// forgotten by the enrollment row.
const (
	EndedByNewVersion = "new_version" // a newer version replaced it
	EndedByReplay     = "replay"      // `hs2cc replay` queued the version again
)

// recordVersion keeps version of enrollment id in its history: when it
// arrived, the fields that changed from prev (nil for a first version),
// its lists and why. Before a newer version replaces prev, the outcome
// prev reached is kept as an attempt, since the row forgets it.
func recordVersion(ctx context.Context, tx *sql.Tx, id int64, prev, next *Enrollment, version int, at time.Time) error {
	changed := []string{}
	if prev != nil {
		if err := archiveAttempts(ctx, tx, EndedByNewVersion, at, []any{id}); err != nil {
			return err
		}
		changed = changedFields(prev, next)
	}
	ch, err := json.Marshal(changed)
	if err != nil {
		return err
	}
	lists, err := json.Marshal(nonNilSlice(next.Lists))
	if err != nil {
		return err
	}
	// A retried delivery can meet a version already recorded (an
	// enrollment made before this table existed has no row for version 1,
	// but never a later one); the first record of a version stands.
	_, err = tx.ExecContext(ctx,
		`INSERT INTO enrollment_history (enrollment_id, version, received_at, changed, lists, route)
		 VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE version = version`,
		id, version, at.UTC(), string(ch), string(lists), truncate(next.Route, 1024))
	return err
}

// archiveAttempts keeps the outcome of the enrollments ids as attempts
// ended for the reason by, when they reached one: a row still pending and
// never claimed has nothing to keep.
func archiveAttempts(ctx context.Context, tx *sql.Tx, by string, at time.Time, ids []any) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO enrollment_attempts (enrollment_id, version, import_id, status, status_reason, imported_at, ended_at, ended_by)
		 SELECT id, version, import_id, status, status_reason, imported_at, ?, ?
		 FROM enrollments WHERE id IN (`+placeholders(len(ids))+`) AND (status <> ? OR import_id IS NOT NULL)`,
		append(append([]any{at.UTC(), by}, ids...), StatusPending)...)
	return err
}

// changedFields names what differs between two versions of a contact:
// its fields by their column names, "lists", and each HubSpot property
// by "property:" and its name, sorted.
func changedFields(a, b *Enrollment) []string {
	out := []string{}
	for _, f := range []struct {
		name string
		same bool
	}{
		{"email", a.Email == b.Email},
		{"first_name", a.FirstName == b.FirstName},
		{"last_name", a.LastName == b.LastName},
		{"country", a.Country == b.Country},
		{"enrolled_at", a.EnrolledAt.Equal(b.EnrolledAt)},
		{"lists", slices.Equal(a.Lists, b.Lists)},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	var props []string
	for name, v := range a.Properties {
		if w, ok := b.Properties[name]; !ok || w != v {
			props = append(props, "property:"+name)
		}
	}
	for name := range b.Properties {
		if _, ok := a.Properties[name]; !ok {
			props = append(props, "property:"+name)
		}
	}
	slices.Sort(props)
	return append(out, props...)
}

// LinkReplay records that delivery id was made by replaying the stored
// delivery of, so that a trace shows the one as the replay of the other.
func (s *DB) LinkReplay(ctx context.Context, id, of int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE deliveries SET replay_of = ? WHERE id = ?`, of, id); err != nil {
		return fmt.Errorf("store: link replay of delivery %d: %w", of, translate(err))
	}
	return nil
}

// LinkQuarantined records the delivery that replaying the quarantined
// request id stored.
func (s *DB) LinkQuarantined(ctx context.Context, id, deliveryID int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE quarantine SET delivery_id = ? WHERE id = ?`, deliveryID, id); err != nil {
		return fmt.Errorf("store: link quarantined %d: %w", id, translate(err))
	}
	return nil
}

// VersionRecord is one version of an enrollment as its history keeps it.
type VersionRecord struct {
	EnrollmentID int64
	Version      int
	ReceivedAt   time.Time
	// Changed names the fields that differ from the version before;
	// empty for a first version.
	Changed []string
	Lists   []string
	Route   string
}

// Attempt is the outcome one version reached before the enrollment row
// forgot it (see EndedByNewVersion and EndedByReplay).
type Attempt struct {
	EnrollmentID int64
	Version      int
	ImportID     int64
	Status       string
	StatusReason string
	ImportedAt   time.Time
	EndedAt      time.Time
	EndedBy      string
}

// QuarantineLink is a quarantined request whose replay stored a delivery.
type QuarantineLink struct {
	ID          int64
	ReceivedAt  time.Time
	Reason      string
	Detail      string
	ReplayedAt  time.Time
	DeliveryID  int64
	SigVersion  string
	ReplayState string
}

// ContactRecords is everything the bridge keeps about one contact, read
// for a trace: its enrollments (one per portal that sent it), every
// delivery about it (bodies left out), its versions, the attempts that
// ended, the imports that carried it, and the quarantined requests whose
// replay stored one of its deliveries.
type ContactRecords struct {
	Enrollments []*Enrollment
	Deliveries  []*Delivery
	Versions    []VersionRecord
	Attempts    []Attempt
	Imports     map[int64]*Import
	Quarantined []QuarantineLink
	// Writebacks are the HubSpot write-back's rows for the enrollments;
	// none while the write-back was off.
	Writebacks []WritebackRecord
}

// WritebackRecord is what the HubSpot write-back did for one enrollment.
type WritebackRecord struct {
	EnrollmentID   int64
	State          string
	QueuedAt       time.Time
	LastError      string
	WrittenStatus  string
	WrittenAt      time.Time
	UnsubscribedAt time.Time
	RemovedAt      time.Time
	UpdatedAt      time.Time
}

// traceLimit bounds each kind of record a trace reads, so that a contact
// HubSpot sent a million times cannot make a lookup read them all.
const traceLimit = 1000

// ContactRecords reads what the bridge keeps about the contact with this
// email (when key holds an @) or this HubSpot object id, in id order.
// Nothing found is an empty result, not an error.
func (s *DB) ContactRecords(ctx context.Context, key string) (*ContactRecords, error) {
	key = strings.TrimSpace(key)
	out := &ContactRecords{Imports: map[int64]*Import{}}
	if key == "" {
		return out, nil
	}
	if err := s.traceEnrollments(ctx, key, out); err != nil {
		return nil, fmt.Errorf("store: contact records: %w", err)
	}
	for _, step := range []func(context.Context, string, *ContactRecords) error{
		s.traceDeliveries, s.traceVersions, s.traceImports, s.traceQuarantine, s.traceWriteback,
	} {
		if err := step(ctx, key, out); err != nil {
			return nil, fmt.Errorf("store: contact records: %w", err)
		}
	}
	return out, nil
}

// traceEnrollments finds the contact's enrollments. By object id, the
// portals are read first from the unique index's prefix, so that the
// lookup is a few index probes rather than a scan.
func (s *DB) traceEnrollments(ctx context.Context, key string, out *ContactRecords) error {
	var err error
	if strings.Contains(key, "@") {
		out.Enrollments, err = queryAll(ctx, s.db, scanEnrollment,
			`SELECT `+enrollmentColumns+` FROM enrollments WHERE email = ? ORDER BY id LIMIT ?`, key, traceLimit)
		return err
	}
	portals, err := queryAll(ctx, s.db, func(r rowScanner) (any, error) {
		var p int64
		return p, r.Scan(&p)
	}, `SELECT DISTINCT portal_id FROM enrollments`)
	if err != nil || len(portals) == 0 {
		return err
	}
	out.Enrollments, err = queryAll(ctx, s.db, scanEnrollment,
		`SELECT `+enrollmentColumns+` FROM enrollments WHERE portal_id IN (`+placeholders(len(portals))+`) AND object_key = ?
		 ORDER BY id LIMIT ?`, append(portals, key, traceLimit)...)
	return err
}

// traceDeliveryColumns are a delivery's columns without its body.
const traceDeliveryColumns = `id, received_at, kind, signature_version, verdict, reason, enrollment_id,
  COALESCE(body_length, LENGTH(body)), version, lists, route, email, replay_of`

func scanTraceDelivery(r rowScanner) (*Delivery, error) {
	var d Delivery
	var enr sql.NullInt64
	var tr deliveryTrace
	if err := r.Scan(&d.ID, &d.ReceivedAt, &d.Kind, &d.SignatureVersion, &d.Verdict, &d.Reason, &enr, &d.BodyLength,
		&tr.version, &tr.lists, &tr.route, &tr.email, &tr.replayOf); err != nil {
		return nil, err
	}
	d.EnrollmentID = enr.Int64
	return &d, tr.fill(&d)
}

// traceDeliveries reads the deliveries of the contact's enrollments and
// those kept by its email without one (refused for want of a route).
func (s *DB) traceDeliveries(ctx context.Context, key string, out *ContactRecords) error {
	emails := map[string]bool{}
	if strings.Contains(key, "@") {
		emails[strings.ToLower(key)] = true
	}
	var ids []any
	for _, e := range out.Enrollments {
		ids = append(ids, e.ID)
		emails[strings.ToLower(e.Email)] = true
	}
	var conds []string
	var args []any
	if len(ids) > 0 {
		conds = append(conds, `enrollment_id IN (`+placeholders(len(ids))+`)`)
		args = append(args, ids...)
	}
	for _, em := range slices.Sorted(maps.Keys(emails)) {
		conds = append(conds, `email = ?`)
		args = append(args, em)
	}
	if len(conds) == 0 {
		return nil
	}
	var err error
	out.Deliveries, err = queryAll(ctx, s.db, scanTraceDelivery,
		`SELECT `+traceDeliveryColumns+` FROM deliveries WHERE `+strings.Join(conds, " OR ")+` ORDER BY id LIMIT ?`,
		append(args, traceLimit)...)
	return err
}

// traceVersions reads the history and the ended attempts of the contact's
// enrollments.
func (s *DB) traceVersions(ctx context.Context, _ string, out *ContactRecords) error {
	ids := enrollmentIDs(out)
	if len(ids) == 0 {
		return nil
	}
	var err error
	out.Versions, err = queryAll(ctx, s.db, func(r rowScanner) (VersionRecord, error) {
		var v VersionRecord
		var changed, lists string
		if err := r.Scan(&v.EnrollmentID, &v.Version, &v.ReceivedAt, &changed, &lists, &v.Route); err != nil {
			return v, err
		}
		if err := json.Unmarshal([]byte(changed), &v.Changed); err != nil {
			return v, err
		}
		return v, json.Unmarshal([]byte(lists), &v.Lists)
	}, `SELECT enrollment_id, version, received_at, changed, lists, route FROM enrollment_history
	    WHERE enrollment_id IN (`+placeholders(len(ids))+`) ORDER BY enrollment_id, version LIMIT ?`, append(ids, traceLimit)...)
	if err != nil {
		return err
	}
	out.Attempts, err = queryAll(ctx, s.db, func(r rowScanner) (Attempt, error) {
		var a Attempt
		var imp sql.NullInt64
		var importedAt sql.NullTime
		err := r.Scan(&a.EnrollmentID, &a.Version, &imp, &a.Status, &a.StatusReason, &importedAt, &a.EndedAt, &a.EndedBy)
		a.ImportID, a.ImportedAt = imp.Int64, importedAt.Time
		return a, err
	}, `SELECT enrollment_id, version, import_id, status, status_reason, imported_at, ended_at, ended_by
	    FROM enrollment_attempts WHERE enrollment_id IN (`+placeholders(len(ids))+`) ORDER BY id LIMIT ?`, append(ids, traceLimit)...)
	return err
}

// traceImports reads the CC imports that carried any version of the
// contact.
func (s *DB) traceImports(ctx context.Context, _ string, out *ContactRecords) error {
	seen := map[int64]bool{}
	var ids []any
	add := func(id int64) {
		if id != 0 && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, e := range out.Enrollments {
		add(e.ImportID)
	}
	for _, a := range out.Attempts {
		add(a.ImportID)
	}
	if len(ids) == 0 {
		return nil
	}
	imps, err := queryAll(ctx, s.db, scanImport,
		`SELECT `+importColumns+` FROM cc_imports WHERE id IN (`+placeholders(len(ids))+`)`, ids...)
	for _, imp := range imps {
		out.Imports[imp.ID] = imp
	}
	return err
}

// traceQuarantine reads the quarantined requests whose replay stored one
// of the contact's deliveries.
func (s *DB) traceQuarantine(ctx context.Context, _ string, out *ContactRecords) error {
	var ids []any
	for _, d := range out.Deliveries {
		ids = append(ids, d.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	var err error
	out.Quarantined, err = queryAll(ctx, s.db, func(r rowScanner) (QuarantineLink, error) {
		var q QuarantineLink
		var replayed sql.NullTime
		err := r.Scan(&q.ID, &q.ReceivedAt, &q.Reason, &q.Detail, &replayed, &q.DeliveryID, &q.SigVersion, &q.ReplayState)
		q.ReplayedAt = replayed.Time
		return q, err
	}, `SELECT id, received_at, reason, detail, replayed_at, delivery_id, signature_version, replay_outcome
	    FROM quarantine WHERE delivery_id IN (`+placeholders(len(ids))+`) ORDER BY id`, ids...)
	return err
}

// traceWriteback reads the HubSpot write-back's rows of the contact's
// enrollments.
func (s *DB) traceWriteback(ctx context.Context, _ string, out *ContactRecords) error {
	ids := enrollmentIDs(out)
	if len(ids) == 0 {
		return nil
	}
	var err error
	out.Writebacks, err = queryAll(ctx, s.db, func(r rowScanner) (WritebackRecord, error) {
		var w WritebackRecord
		var written, unsub, removed sql.NullTime
		err := r.Scan(&w.EnrollmentID, &w.State, &w.QueuedAt, &w.LastError, &w.WrittenStatus, &written, &unsub, &removed, &w.UpdatedAt)
		w.WrittenAt, w.UnsubscribedAt, w.RemovedAt = written.Time, unsub.Time, removed.Time
		return w, err
	}, `SELECT enrollment_id, state, queued_at, last_error, written_status, written_at, unsubscribed_at, removed_at, updated_at
	    FROM hubspot_writeback WHERE enrollment_id IN (`+placeholders(len(ids))+`)`, ids...)
	return err
}

func enrollmentIDs(out *ContactRecords) []any {
	ids := make([]any, 0, len(out.Enrollments))
	for _, e := range out.Enrollments {
		ids = append(ids, e.ID)
	}
	return ids
}

// closestPerProbe bounds each of the two probes of SimilarEmails.
const closestPerProbe = 200

// SimilarEmails returns the stored emails that share the first three
// characters of email or its domain, distinct and sorted: a cheap
// prefilter for ranking the closest matches of an unknown contact. The
// prefix is a range of the email index; the domain is a scan of that
// index alone, never of the rows.
func (s *DB) SimilarEmails(ctx context.Context, email string) ([]string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	local, domain, _ := strings.Cut(email, "@")
	prefix := local
	if len(prefix) > 3 {
		prefix = prefix[:3]
	}
	found := map[string]bool{}
	probes := []string{}
	if prefix != "" {
		probes = append(probes, likeEscape(prefix)+"%")
	}
	if domain != "" {
		probes = append(probes, "%@"+likeEscape(domain))
	}
	for _, p := range probes {
		emails, err := queryAll(ctx, s.db, func(r rowScanner) (string, error) {
			var e string
			return e, r.Scan(&e)
		}, `SELECT DISTINCT email FROM enrollments WHERE email LIKE ? LIMIT ?`, p, closestPerProbe)
		if err != nil {
			return nil, fmt.Errorf("store: similar emails: %w", err)
		}
		for _, e := range emails {
			found[strings.ToLower(e)] = true
		}
	}
	return slices.Sorted(maps.Keys(found)), nil
}

// likeEscape makes s match itself in a LIKE pattern.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
