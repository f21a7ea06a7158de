package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestCheckColumns: the limits are those of the columns, in the unit each
// counts: VARCHAR in characters, TEXT in bytes.
func TestCheckColumns(t *testing.T) {
	tests := []struct {
		name      string
		change    func(e *store.Enrollment)
		wantField string // "" when it fits
	}{
		{"ordinary values fit", func(*store.Enrollment) {}, ""},
		{"a first name of 65,535 bytes fits", func(e *store.Enrollment) { e.FirstName = strings.Repeat("a", 65535) }, ""},
		{"a first name of 65,536 bytes does not", func(e *store.Enrollment) { e.FirstName = strings.Repeat("a", 65536) }, "first_name"},
		{"a 100 KB last name does not", func(e *store.Enrollment) { e.LastName = strings.Repeat("ä", 50_000) }, "last_name"},
		{"a 100 KB country does not", func(e *store.Enrollment) { e.Country = strings.Repeat("x", 100_000) }, "country"},
		{"an object key of 191 two-byte characters fits", func(e *store.Enrollment) { e.ObjectKey = strings.Repeat("é", 191) }, ""},
		{"an object key of 192 characters does not", func(e *store.Enrollment) { e.ObjectKey = strings.Repeat("k", 192) }, "object_key"},
		{"an email of 255 characters does not", func(e *store.Enrollment) { e.Email = strings.Repeat("e", 243) + "@example.com" }, "email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := enrollment("101", "ann@example.com", "Ann", "h")
			tc.change(e)
			err := store.CheckColumns(e)
			var tooLong *store.FieldTooLongError
			switch {
			case tc.wantField == "" && err != nil:
				t.Errorf("CheckColumns = %v, want nil", err)
			case tc.wantField != "" && (!errors.As(err, &tooLong) || tooLong.Field != tc.wantField || !errors.Is(err, store.ErrFieldTooLong)):
				t.Errorf("CheckColumns = %v, want the field %s too long", err, tc.wantField)
			}
		})
	}
}

// TestIngestFieldTooLong: a value its column cannot hold is refused before
// anything is written, by a workflow body or by a Webhooks API event, so
// that MySQL never fails the write (answered 503, retried for days).
func TestIngestFieldTooLong(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	huge := strings.Repeat("x", 100_000)

	long := enrollment("101", "ann@example.com", huge, "h-long")
	_, err := db.Ingest(ctx, workflowDelivery(long), long)
	var tooLong *store.FieldTooLongError
	if !errors.As(err, &tooLong) || tooLong.Field != "first_name" || tooLong.Size != 100_000 || tooLong.Limit != 65535 {
		t.Fatalf("Ingest = %v, want first_name too long", err)
	}
	if counts, err := db.CountEnrollments(ctx); err != nil || len(counts) != 0 {
		t.Errorf("enrollments %v, %v; want none", counts, err)
	}
	if counts, err := db.CountDeliveries(ctx); err != nil || len(counts) != 0 {
		t.Errorf("deliveries %v, %v; want none", counts, err)
	}

	ok := enrollment("101", "ann@example.com", "Ann", "h")
	if _, err := db.Ingest(ctx, workflowDelivery(ok), ok); err != nil {
		t.Fatal(err)
	}
	res, err := db.IngestEvent(ctx, &store.Delivery{Kind: store.KindWebhooksAPI, Body: []byte(`{"eventId":1}`)}, "k1",
		change(62515, "101", "firstname", huge, 20))
	if err != nil || res.Outcome != store.OutcomeRecorded || res.Version != 1 {
		t.Fatalf("event: %+v, %v; want recorded, version 1 unchanged", res, err)
	}
	d, err := db.GetDelivery(ctx, res.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Verdict != store.VerdictRejected || !strings.Contains(d.Reason, "field_too_long: first_name") {
		t.Errorf("event delivery %q: %q, want rejected for first_name", d.Verdict, d.Reason)
	}
}
