package store_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

func refused(body []byte) *store.Quarantined {
	h := http.Header{}
	h.Set("X-HubSpot-Signature-v3", "c2lnbmF0dXJlLXRoYXQtZG9lcy1ub3QtbWF0Y2gtYW55dGhpbmc=")
	h.Set("X-HubSpot-Request-Timestamp", "1772366400000")
	h.Set("X-HubSpot-Signature", strings.Repeat("ab", 32))
	h.Set("X-HubSpot-Signature-Version", "v2")
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/)")
	return &store.Quarantined{
		Method: "POST", Scheme: "http", Host: "internal:8080", RequestURI: "/webhooks/hubspot?source=hs%3Aworkflow",
		Header: h, Body: body, Reason: store.QuarantineBadSignature, Detail: "verify v3: signature mismatch",
		SignatureVersion: "v3",
	}
}

// TestQuarantineKeepsWhatReplayNeeds: a refused request is stored with the
// request line, the headers verification reads and its whole body, bounded
// in every other part the sender controls.
func TestQuarantineKeepsWhatReplayNeeds(t *testing.T) {
	ctx := context.Background()
	// JSON-like bytes, so that the driver escapes quotes as it does for a
	// real profile and the insert still fits MariaDB's default 16 MiB
	// max_allowed_packet at the default 8 MiB body limit.
	jsonish := func(n int) []byte {
		unit := []byte(`{"value":"Yll\u00e4","source-type":"FORM","timestamp":1700000000000},`)
		return bytes.Repeat(unit, n/len(unit)+1)[:n]
	}
	profile, limit := jsonish(600_000), jsonish(8<<20)
	cases := []struct {
		name       string
		q          func() *store.Quarantined
		wantBody   []byte
		wantLength int
		wantHeader http.Header
	}{
		{
			name:       "a small body is kept whole",
			q:          func() *store.Quarantined { return refused([]byte(`{"email":"ann@example.com"}`)) },
			wantBody:   []byte(`{"email":"ann@example.com"}`),
			wantLength: 27,
			wantHeader: refused(nil).Header,
		},
		{
			name:       "an empty body",
			q:          func() *store.Quarantined { return refused(nil) },
			wantBody:   []byte{},
			wantHeader: refused(nil).Header,
		},
		{
			name:       "a 600 KB profile with every property's history is kept whole",
			q:          func() *store.Quarantined { return refused(profile) },
			wantBody:   profile,
			wantLength: len(profile),
			wantHeader: refused(nil).Header,
		},
		{
			name:       "a body of the default 8 MiB limit is kept whole",
			q:          func() *store.Quarantined { return refused(limit) },
			wantBody:   limit,
			wantLength: len(limit),
			wantHeader: refused(nil).Header,
		},
		{
			name: "only the signature headers, Content-Type and User-Agent, first value, cut",
			q: func() *store.Quarantined {
				q := refused([]byte(`{}`))
				q.Header = http.Header{
					"X-Hubspot-Signature-V3":   {strings.Repeat("s", 2000), "second"},
					"Cookie":                   {"session=secret"},
					"Authorization":            {"Bearer secret"},
					"X-Hubspot-Correlation-Id": {"9f0c2b1e"},
				}
				return q
			},
			wantBody:   []byte(`{}`),
			wantLength: 2,
			wantHeader: http.Header{"X-Hubspot-Signature-V3": {strings.Repeat("s", 512)}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.MySQL(t)
			q := tc.q()
			if err := db.Quarantine(ctx, q, store.QuarantineCap{}); err != nil {
				t.Fatal(err)
			}
			if q.ID <= 0 || q.ReceivedAt.IsZero() {
				t.Fatalf("id %d received %v", q.ID, q.ReceivedAt)
			}
			got, err := db.GetQuarantined(ctx, q.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Body, tc.wantBody) || got.BodyLength != tc.wantLength || got.BodyBytes != len(tc.wantBody) ||
				got.BodyTruncated {
				t.Errorf("body %d bytes (%d stored), length %d, truncated %v; want %d of %d, whole",
					len(got.Body), got.BodyBytes, got.BodyLength, got.BodyTruncated, len(tc.wantBody), tc.wantLength)
			}
			if len(got.Header) != len(tc.wantHeader) {
				t.Errorf("headers %v, want %v", got.Header, tc.wantHeader)
			}
			for k, v := range tc.wantHeader {
				if !slices.Equal(got.Header[k], v[:1]) {
					t.Errorf("header %s = %.40q, want %.40q", k, got.Header[k], v[:1])
				}
			}
			if got.Method != "POST" || got.Scheme != "http" || got.Host != "internal:8080" ||
				got.RequestURI != "/webhooks/hubspot?source=hs%3Aworkflow" || got.Reason != store.QuarantineBadSignature ||
				got.Detail != "verify v3: signature mismatch" || got.SignatureVersion != "v3" ||
				!got.ReceivedAt.Equal(q.ReceivedAt) || !got.ReplayedAt.IsZero() || got.ReplayOutcome != "" {
				t.Errorf("stored %+v", got)
			}
		})
	}
}

// TestQuarantineCap: at either cap a request is refused and nothing older
// is evicted; the usage counts each body whole.
func TestQuarantineCap(t *testing.T) {
	ctx := context.Background()
	kib := func(n int) []byte { return bytes.Repeat([]byte("b"), n<<10) }
	cases := []struct {
		name      string
		limit     store.QuarantineCap
		bodies    [][]byte
		wantKept  int // the first this many are stored, the rest refused
		wantBytes int64
	}{
		{"row cap", store.QuarantineCap{MaxRows: 2, MaxBytes: 1 << 20}, [][]byte{kib(1), kib(1), kib(1)}, 2, 2 << 10},
		{"byte cap", store.QuarantineCap{MaxRows: 100, MaxBytes: 5 << 10}, [][]byte{kib(2), kib(3), []byte("x")}, 2, 5 << 10},
		{"a large body counts whole", store.QuarantineCap{MaxRows: 100, MaxBytes: 600<<10 + 1}, [][]byte{kib(600), []byte("xx")}, 1, 600 << 10},
		{"a body larger than what is left is refused", store.QuarantineCap{MaxRows: 100, MaxBytes: 1 << 20}, [][]byte{kib(600), kib(600)}, 1, 600 << 10},
		{"zero cap means the defaults", store.QuarantineCap{}, [][]byte{kib(1), kib(1)}, 2, 2 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.MySQL(t)
			var ids []int64
			for i, b := range tc.bodies {
				q := refused(b)
				err := db.Quarantine(ctx, q, tc.limit)
				switch {
				case i < tc.wantKept && err != nil:
					t.Fatalf("request %d: %v", i, err)
				case i >= tc.wantKept && !errors.Is(err, store.ErrQuarantineFull):
					t.Fatalf("request %d: %v, want ErrQuarantineFull", i, err)
				case err == nil:
					ids = append(ids, q.ID)
				}
			}
			u, err := db.QuarantineUsage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if u.Rows != int64(tc.wantKept) || u.Bytes != tc.wantBytes {
				t.Errorf("usage %+v, want %d rows and %d bytes", u, tc.wantKept, tc.wantBytes)
			}
			rows, n, err := db.QuarantineSize(ctx)
			if err != nil || int64(rows) != u.Rows || n != u.Bytes {
				t.Errorf("QuarantineSize = %d, %d, %v; want it to agree with %+v", rows, n, err, u)
			}
			// The oldest evidence is still there.
			for _, id := range ids {
				if _, err := db.GetQuarantined(ctx, id); err != nil {
					t.Errorf("quarantined %d: %v", id, err)
				}
			}
		})
	}
}

// TestQuarantineCapCheckReadsNoBlobs pins the cheap cap check: the count
// and the byte sum come from the body_bytes index alone.
func TestQuarantineCapCheckReadsNoBlobs(t *testing.T) {
	db := storetest.MySQL(t)
	rows, err := db.SQL().Query(`EXPLAIN SELECT COUNT(*), COALESCE(SUM(body_bytes), 0) FROM quarantine`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no plan")
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	plan := map[string]string{}
	for i, c := range cols {
		if b, ok := vals[i].([]byte); ok {
			plan[c] = string(b)
		}
	}
	if plan["key"] != "quarantine_body_bytes" || !strings.Contains(plan["Extra"], "Using index") {
		t.Errorf("plan %v, want a scan of quarantine_body_bytes alone", plan)
	}
}

// TestQuarantineListAndReplayMarks: the listing is newest first and holds
// neither bodies nor headers; marks decide what a replay of all tries again.
func TestQuarantineListAndReplayMarks(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.SetClock(func() time.Time { return clock })
	var ids []int64
	for i := range 5 {
		q := refused([]byte(`{"n":` + string(rune('0'+i)) + `}`))
		if err := db.Quarantine(ctx, q, store.QuarantineCap{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, q.ID)
	}
	list, err := db.ListQuarantine(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, q := range list {
		got = append(got, q.ID)
		if q.Body != nil || q.Header != nil || q.BodyLength != 7 {
			t.Errorf("listed %d with body %q, headers %v, length %d", q.ID, q.Body, q.Header, q.BodyLength)
		}
	}
	if want := []int64{ids[4], ids[3], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}

	marks := []struct{ outcome, detail string }{
		{store.ReplayIngested, ""}, {store.ReplayDuplicate, ""}, {store.ReplayStillInvalid, "verify v3: signature mismatch"},
		{store.VerdictNoEmail, `missing "email"`},
	}
	for i, m := range marks {
		if err := db.MarkReplayed(ctx, ids[i], m.outcome, m.detail); err != nil {
			t.Fatal(err)
		}
	}
	q, err := db.GetQuarantined(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if !q.ReplayedAt.Equal(clock) || q.ReplayOutcome != store.ReplayStillInvalid || q.ReplayDetail != "verify v3: signature mismatch" {
		t.Errorf("marked row: replayed %v outcome %q detail %q", q.ReplayedAt, q.ReplayOutcome, q.ReplayDetail)
	}
	todo, err := db.QuarantineToReplay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Still invalid and never replayed are tried again; the rest reached
	// the webhook's own checks and have their delivery stored.
	if want := []int64{ids[2], ids[4]}; !slices.Equal(todo, want) {
		t.Errorf("to replay %v, want %v", todo, want)
	}
	if _, err := db.GetQuarantined(ctx, ids[4]+100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing id: %v, want ErrNotFound", err)
	}
}
