package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// TestDeliveriesReplay: deliveries refused for the rules (no_route) come
// back through the webhook's code with today's configuration; a dry run
// only counts, a second replay is a no-op, --since picks the window,
// purged bodies and other verdicts are left alone, and a body still refused
// is counted on its own delivery, not linked to itself as its replay.
func TestDeliveriesReplay(t *testing.T) {
	ctx := context.Background()
	getenv, db := migratedStore(t)
	now := time.Now().UTC()
	stored := []struct {
		vid     int64
		verdict string
		age     time.Duration
		purged  bool
	}{
		{8001, store.VerdictNoRoute, time.Hour, false},
		{8002, store.VerdictNoRoute, 5 * 24 * time.Hour, false},
		{8003, store.VerdictNoRoute, time.Hour, true},
		{8004, store.VerdictNoEmail, time.Hour, false},
		{8005, store.VerdictNoEmail, time.Hour, false}, // and still without one
	}
	var stillRefused int64
	for i, s := range stored {
		d := &store.Delivery{ReceivedAt: now.Add(-s.age), Kind: store.KindWorkflow, SignatureVersion: "v3",
			Verdict: s.verdict, Reason: "no list", Body: contactBody(62515, s.vid, i)}
		if s.vid == 8005 {
			d.Body = []byte(`{"hs_object_id":"8005","firstname":"Ann"}`)
		}
		if err := db.RecordDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		if s.vid == 8005 {
			stillRefused = d.ID
		}
		if s.purged {
			if _, err := db.SQL().ExecContext(ctx, `UPDATE deliveries SET body = '', purged_at = ? WHERE id = ?`, now, d.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	enrolled := func() int {
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM enrollments WHERE status = 'pending'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	steps := []struct {
		args         []string
		wantOut      string
		wantErr      bool
		wantEnrolled int
	}{
		{[]string{"deliveries", "replay", "--verdict", "no_route", "--dry-run"}, "1 no_route deliveries since", false, 0},
		{[]string{"deliveries", "replay", "--verdict", "no_route"}, "replayed 1 no_route deliveries: accepted (new version) 1", false, 1},
		{[]string{"deliveries", "replay", "--verdict", "no_route"}, "replayed 1 no_route deliveries: duplicate 1", false, 1},
		{[]string{"deliveries", "replay", "--verdict", "no_route", "--since", "168h"},
			"replayed 2 no_route deliveries: accepted (new version) 1, duplicate 1", false, 2},
		{[]string{"deliveries", "replay", "--verdict", "no_email"}, "replayed 2 no_email deliveries: accepted (new version) 1, no_email 1", false, 3},
		{[]string{"deliveries", "replay", "--verdict", "accepted"}, "--verdict must be one of", true, 3},
		{[]string{"deliveries", "list"}, "Usage:", true, 3},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		err := run(ctx, s.args, getenv, &stdout, &stderr)
		if s.wantErr != (err != nil) || (s.wantErr && !errors.Is(err, errUsage)) {
			t.Fatalf("%v: err %v, want an error: %v\n%s%s", s.args, err, s.wantErr, stdout.String(), stderr.String())
		}
		if got := stdout.String() + stderr.String(); !strings.Contains(got, s.wantOut) {
			t.Errorf("%v printed %q, want it to contain %q", s.args, got, s.wantOut)
		}
		if n := enrolled(); n != s.wantEnrolled {
			t.Errorf("%v: %d pending enrollments, want %d", s.args, n, s.wantEnrolled)
		}
	}
	if d, err := db.GetDelivery(ctx, stillRefused); err != nil || d.Repeats != 1 || d.ReplayOf != 0 {
		t.Errorf("delivery still without an email: %+v, %v; want its replay counted as a repeat, and no replay of itself", d, err)
	}
	// The replayed enrollment carries today's default list, and the
	// delivery it stored is dated when HubSpot sent the body.
	var lists string
	var received time.Time
	if err := db.SQL().QueryRowContext(ctx, `SELECT e.lists, d.received_at FROM enrollments e
		JOIN deliveries d ON d.enrollment_id = e.id AND d.verdict = 'accepted'
		WHERE e.email = 'agent8001@example-travel.com'`).Scan(&lists, &received); err != nil {
		t.Fatal(err)
	}
	if lists != `["New Agents"]` || received.Sub(now.Add(-time.Hour)).Abs() > time.Second {
		t.Errorf("replayed enrollment: lists %s, delivery received %s; want [\"New Agents\"] and about %s", lists, received, now.Add(-time.Hour))
	}
}
