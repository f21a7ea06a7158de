package store_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestRecordDeliverySizesAndHeaders: every delivery keeps its size, and a
// too_large one also its declared size, whether the size is exact, and the
// headers the quarantine keeps, none other.
func TestRecordDeliverySizesAndHeaders(t *testing.T) {
	ctx := context.Background()
	head := bytes.Repeat([]byte(`{"vid":101,`), store.TooLargeHeadMax/11+1)[:store.TooLargeHeadMax]
	sent := http.Header{
		"X-Hubspot-Signature-V3":      {"c2lnbmF0dXJl"},
		"X-Hubspot-Request-Timestamp": {"1772366400000"},
		"Content-Type":                {"application/json"},
		"User-Agent":                  {"HubSpot Connect 2.0 (http://dev.hubspot.com/)"},
		"Cookie":                      {"session=secret"},
		"X-Hubspot-Correlation-Id":    {"9f0c2b1e"},
	}
	kept := http.Header{
		"X-Hubspot-Signature-V3":      {"c2lnbmF0dXJl"},
		"X-Hubspot-Request-Timestamp": {"1772366400000"},
		"Content-Type":                {"application/json"},
		"User-Agent":                  {"HubSpot Connect 2.0 (http://dev.hubspot.com/)"},
	}
	cases := []struct {
		name string
		d    *store.Delivery
		want store.Delivery // the fields compared besides the body
	}{
		{
			name: "a malformed body keeps its size and no headers",
			d:    &store.Delivery{Kind: store.KindUnknown, SignatureVersion: "v3", Verdict: store.VerdictMalformed, Body: []byte(`{"email":`)},
			want: store.Delivery{BodyLength: 9},
		},
		{
			// Past preparedBodyMin the body travels unescaped in a prepared
			// statement; quotes, backslashes and NULs must survive it.
			name: "a 600 KB body of every byte value is kept whole",
			d: &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Verdict: store.VerdictAccepted,
				Body: everyByte(600_000)},
			want: store.Delivery{BodyLength: 600_000},
		},
		{
			name: "too large, declared and read in full",
			d: &store.Delivery{Kind: store.KindUnknown, Verdict: store.VerdictTooLarge, Body: head, Header: sent,
				DeclaredLength: 9 << 20, BodyLength: 9 << 20},
			want: store.Delivery{DeclaredLength: 9 << 20, BodyLength: 9 << 20, Header: kept},
		},
		{
			name: "too large, chunked, reading stopped",
			d: &store.Delivery{Kind: store.KindUnknown, Verdict: store.VerdictTooLarge, Body: head, Header: http.Header{},
				BodyLength: 32 << 20, BodyLengthAtLeast: true},
			want: store.Delivery{BodyLength: 32 << 20, BodyLengthAtLeast: true, Header: http.Header{}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.MySQL(t)
			if err := db.RecordDelivery(ctx, tc.d); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetDelivery(ctx, tc.d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Body, tc.d.Body) || got.Verdict != tc.d.Verdict || got.DeclaredLength != tc.want.DeclaredLength ||
				got.BodyLength != tc.want.BodyLength || got.BodyLengthAtLeast != tc.want.BodyLengthAtLeast {
				t.Errorf("stored %q with %d body bytes, declared %d, length %d (at least %v); want %d, %d, %v",
					got.Verdict, len(got.Body), got.DeclaredLength, got.BodyLength, got.BodyLengthAtLeast,
					tc.want.DeclaredLength, tc.want.BodyLength, tc.want.BodyLengthAtLeast)
			}
			if (got.Header == nil) != (tc.want.Header == nil) || len(got.Header) != len(tc.want.Header) {
				t.Errorf("headers %v, want %v", got.Header, tc.want.Header)
			}
			for k, v := range tc.want.Header {
				if !slices.Equal(got.Header[k], v) {
					t.Errorf("header %s = %q, want %q", k, got.Header[k], v)
				}
			}
		})
	}
}

// everyByte is n bytes cycling through all 256 values.
func everyByte(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestTooLargeSince counts the too_large deliveries of a window from the
// index and names the newest, whatever else arrived meanwhile.
func TestTooLargeSince(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	now := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	record := func(verdict string, at time.Time, length int64) {
		t.Helper()
		d := &store.Delivery{ReceivedAt: at, Kind: store.KindUnknown, Verdict: verdict, Body: []byte(`{"vid":1`),
			BodyLength: length, DeclaredLength: length}
		if err := db.RecordDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	since := now.Add(-7 * 24 * time.Hour)

	sum, err := db.TooLargeSince(ctx, since)
	if err != nil || sum.Count != 0 || sum.Newest != nil {
		t.Fatalf("empty: %+v, %v; want none", sum, err)
	}
	record(store.VerdictTooLarge, since.Add(-time.Second), 20<<20) // before the window
	record(store.VerdictTooLarge, now.Add(-3*time.Hour), 9<<20)
	record(store.VerdictTooLarge, now.Add(-time.Hour), 12<<20)
	record(store.VerdictMalformed, now.Add(-time.Minute), 10) // newer, not too large
	record(store.VerdictTooLarge, now.Add(-2*time.Hour), 10<<20)

	sum, err = db.TooLargeSince(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count != 3 || sum.Newest == nil {
		t.Fatalf("%+v, want 3 with the newest", sum)
	}
	n := sum.Newest
	if !n.ReceivedAt.Equal(now.Add(-time.Hour)) || n.BodyLength != 12<<20 || n.DeclaredLength != 12<<20 ||
		n.Verdict != store.VerdictTooLarge || n.Body != nil {
		t.Errorf("newest %+v, want the one of an hour ago, 12 MiB, without its body", n)
	}

	// The count reads the (verdict, received_at) index, never the rows.
	var key, extra string
	rows, err := db.SQL().QueryContext(ctx, `EXPLAIN SELECT COUNT(*) FROM deliveries WHERE verdict = ? AND received_at >= ?`,
		store.VerdictTooLarge, since)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				switch c {
				case "key":
					key = string(b)
				case "Extra":
					extra = string(b)
				}
			}
		}
	}
	if key != "deliveries_verdict" || !strings.Contains(extra, "Using index") {
		t.Errorf("plan: key %q extra %q, want deliveries_verdict alone", key, extra)
	}
}
