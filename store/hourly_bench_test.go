package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// benchRows is how many enrollments the hourly benchmark reads.
const benchRows = 300_000

// seedEnrollments writes n enrollments straight into the table, received
// over the span before now, nearly all imported minutes later and one in a
// hundred still waiting. Rows are written in bulk, not through Ingest, which
// would take minutes at this size; the hourly queries read only columns
// Ingest and the import's settle write, set here as they set them.
func seedEnrollments(tb testing.TB, db *sql.DB, n int, now time.Time, span time.Duration) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	const batch = 1000
	for start := 0; start < n; start += batch {
		var q strings.Builder
		q.WriteString(`INSERT INTO enrollments (portal_id, object_key, email, first_name, last_name, country, properties,
		  lists, list_key, content_hash, version, status, status_reason, received_at, updated_at, imported_at, version_received_at) VALUES `)
		var args []any
		for i := start; i < min(start+batch, n); i++ {
			if i > start {
				q.WriteString(",")
			}
			q.WriteString("(1, ?, ?, 'A', 'B', 'US', '{}', '[\"New Agents\"]', 'New Agents', 'h', 1, ?, '', ?, ?, ?, ?)")
			received := now.Add(-time.Duration(rng.Int64N(int64(span))))
			status, imported := store.StatusImported, sql.NullTime{Time: received.Add(time.Duration(rng.Int64N(int64(20*time.Minute))) + time.Minute), Valid: true}
			if rng.IntN(100) == 0 {
				status, imported = store.StatusPending, sql.NullTime{}
			}
			args = append(args, fmt.Sprint("c-", i), fmt.Sprintf("c%d@example.com", i), status, received, received, imported, received)
		}
		if _, err := db.Exec(q.String(), args...); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := db.Exec(`ANALYZE TABLE enrollments`); err != nil {
		tb.Fatal(err)
	}
}

// usesIndexOnly fails unless MySQL plans query as a read of the named index
// alone ("Using index"), never of the table's rows.
func usesIndexOnly(tb testing.TB, db *sql.DB, index, query string, args ...any) {
	tb.Helper()
	rows, err := db.Query("EXPLAIN "+query, args...)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		plan := map[string]string{}
		for i, c := range cols {
			plan[c] = vals[i].String
		}
		if plan["key"] != index || !strings.Contains(plan["Extra"], "Using index") {
			tb.Errorf("plan of %q: key %q, extra %q; want %s alone", query, plan["key"], plan["Extra"], index)
		}
	}
}

// BenchmarkHourlyQueries times what /ops reads for its charts on 300,000
// enrollments: each hourly series over 48 hours, and the oldest waiting
// enrollment. The rows span a month (20,000 in the charts' 48 hours, a
// bridge at 10,000 a day) or three days (200,000 in them, the worst case:
// each series reads every index entry of its window). It first checks that
// each series is planned as a read of its index alone.
func BenchmarkHourlyQueries(b *testing.B) {
	for _, span := range []struct {
		name string
		d    time.Duration
	}{{"month", 30 * 24 * time.Hour}, {"3days", 72 * time.Hour}} {
		b.Run(span.name, func(b *testing.B) { benchmarkHourly(b, span.d) })
	}
}

func benchmarkHourly(b *testing.B, span time.Duration) {
	ctx := context.Background()
	db := storetest.MySQL(b)
	now := time.Now().UTC()
	seedEnrollments(b, db.SQL(), benchRows, now, span)
	from := now.Truncate(time.Hour).Add(-47 * time.Hour)
	end := from.Add(48 * time.Hour)
	usesIndexOnly(b, db.SQL(), "enrollments_version_received", store.ReceivedByHourSQL, from, from, end)
	usesIndexOnly(b, db.SQL(), "enrollments_imported", store.ImportedByHourSQL, from, from, end)

	queries := []struct {
		name string
		run  func() error
	}{
		{"ReceivedByHour", func() error { _, err := db.ReceivedByHour(ctx, from, 48); return err }},
		{"ImportedByHour", func() error { _, err := db.ImportedByHour(ctx, from, 48); return err }},
		{"OldestWaiting", func() error { _, err := db.OldestWaiting(ctx); return err }},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				if err := q.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
