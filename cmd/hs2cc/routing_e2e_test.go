package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"net/http/httptest"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

const routesYAML = `default_lists: ["New Agents"]
create_missing_lists: true
routes:
  - when: {country: ["US", "United States", "CA", "Canada"]}
    lists: ["Agents - North America"]
  - when: {property: agent_tier, equals: gold}
    lists: ["Gold Agents"]
fields:
  first_name: "@first_name"
  last_name: "@last_name"
  country: "@country"
  company_name: company
  "cf:agent_tier": agent_tier
`

// TestRoutedImportOf100000 is issue 4's acceptance run: 100,000
// enrollments, routed by country and tier to three CC lists, are stored and
// queued as serve would, and two work processes import them into the
// sandbox. Every contact must end on exactly its lists, rows that cannot be
// sent must be rejected with a reason, and the CC calls spent on imports
// and polls must stay under 20.
func TestRoutedImportOf100000(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	const total = 100_000
	dsn := storetest.MySQLDSN(t)
	redisURL := storetest.RedisURL(t)
	sb := ccsandbox.New(ccsandbox.Options{ActivityDelay: time.Second})
	cc := httptest.NewServer(sb)
	defer cc.Close()
	sb.CreateCustomField("agent_tier")
	access, refresh := sb.IssueToken("contact_data offline_access")
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(routesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"HS2CC_MYSQL_DSN":          dsn,
		"HS2CC_REDIS_URL":          redisURL,
		"HS2CC_CC_API_URL":         cc.URL + "/v3",
		"HS2CC_CC_AUTH_URL":        cc.URL + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID":       ccsandbox.DefaultClientID,
		"HS2CC_CC_CLIENT_SECRET":   ccsandbox.DefaultClientSecret,
		"HS2CC_TOKEN_KEY":          store.NewTokenKey(),
		"HS2CC_ROUTES":             routes,
		"HS2CC_GROUP_MAX_SIZE":     "40000",
		"HS2CC_GROUP_GRACE_PERIOD": "5s",
		"HS2CC_GROUP_MAX_DELAY":    "2m",
		"HS2CC_WORKER_CONCURRENCY": "4",
		"HS2CC_LOG_FORMAT":         "json",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	if err := run(ctx, []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := store.ParseTokenKeys(env["HS2CC_TOKEN_KEY"])
	db.SetTokenKeys(keys)
	if _, err := db.SaveToken(ctx, store.Token{AccessToken: access, RefreshToken: refresh, ExpiresAt: time.Now().Add(24 * time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	rules, err := routing.Parse([]byte(routesYAML))
	if err != nil {
		t.Fatal(err)
	}

	// The enrollments: a spread of countries (codes and names) and tiers,
	// 20 with a first name CC would refuse, and 5 whose contact is already
	// unsubscribed in CC.
	countries := []string{"US", "United States", "ca", "Canada", "GB", "DE", "Mexico", "JP", "BR", "FR"}
	tiers := []string{"gold", "silver", "bronze", "Gold", ""}
	type want struct {
		lists    []string
		rejected bool
	}
	wants := make(map[string]want, total)
	enrollments := make([]*store.Enrollment, total)
	for i := range total {
		email := fmt.Sprintf("agent%06d@example-travel.com", i)
		e := &store.Enrollment{
			PortalID: 62515, ObjectKey: fmt.Sprint(9_000_000 + i), Email: email,
			FirstName: "Agent", LastName: fmt.Sprintf("Number %d", i), Country: countries[i%len(countries)],
			Properties:  map[string]string{"agent_tier": tiers[i%len(tiers)], "company": "Travel Co " + fmt.Sprint(i%97)},
			ContentHash: fmt.Sprintf("h%d", i),
		}
		if i%5000 == 17 {
			e.FirstName = strings.Repeat("Ö", 60)
		}
		lists, err := rules.Lists(e)
		if err != nil {
			t.Fatal(err)
		}
		e.Lists = lists
		enrollments[i] = e
		wants[email] = want{lists: lists, rejected: e.FirstName != "Agent" || i%20011 == 3}
		if i%20011 == 3 {
			sb.Unsubscribe(email)
		}
	}

	opt, _ := store.ParseRedisURL(redisURL)
	client := asynq.NewClient(asynqOpt(opt))
	defer client.Close()
	enq := jobs.NewEnqueuer(client)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var ingestErr atomic.Value
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				e := enrollments[i]
				d := &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte(`{}`)}
				res, err := db.Ingest(ctx, d, e)
				if err == nil {
					err = enq.EnqueueEnrollment(ctx, res.EnrollmentID, res.Version, e.Lists)
				}
				if err != nil {
					ingestErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := ingestErr.Load().(error); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	ingested := time.Since(start)

	// The workers start once the backlog is stored and queued, as after an
	// outage or a backfill: how many CC calls carry it must not depend on
	// how the machine's load spread the ingest over time.
	const workers = 2
	done := make(chan error, workers)
	logs := make([]*syncBuffer, workers)
	for i := range logs {
		logs[i] = &syncBuffer{}
		go func() { done <- run(ctx, []string{"work"}, getenv, logs[i], logs[i]) }()
	}

	waitFor(t, "every enrollment settled", 8*time.Minute, func() bool {
		counts, err := db.CountEnrollments(ctx)
		return err == nil && counts[store.StatusPending] == 0 && counts[store.StatusImporting] == 0 &&
			counts[store.StatusImported]+counts[store.StatusRejected]+counts[store.StatusFailed] == total
	})
	settled := time.Since(start)
	counts, _ := db.CountEnrollments(ctx)

	// Every contact on exactly its lists; rejected ones on none.
	byEmail := map[string]ccsandbox.SandboxContact{}
	for _, c := range sb.Contacts() {
		byEmail[strings.ToLower(c.Email)] = c
	}
	wrong, wantRejected := 0, 0
	for email, w := range wants {
		c, ok := byEmail[email]
		got := []string{}
		if ok {
			got = slices.Sorted(slices.Values(c.ListNames))
		}
		if w.rejected {
			wantRejected++
			if len(got) != 0 {
				wrong++
				if wrong < 5 {
					t.Errorf("rejected contact %s is on lists %v", email, got)
				}
			}
			continue
		}
		if !slices.Equal(got, w.lists) {
			wrong++
			if wrong < 5 {
				t.Errorf("contact %s on lists %v, want %v", email, got, w.lists)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d contacts not on exactly their lists", wrong)
	}
	if counts[store.StatusRejected] != wantRejected || counts[store.StatusFailed] != 0 || counts[store.StatusImported] != total-wantRejected {
		t.Errorf("enrollments by status %v, want %d imported and %d rejected", counts, total-wantRejected, wantRejected)
	}
	var noReason int
	if err := db.SQL().QueryRowContext(ctx,
		`SELECT COUNT(*) FROM enrollments WHERE status = ? AND status_reason = ''`, store.StatusRejected).Scan(&noReason); err != nil {
		t.Fatal(err)
	}
	if noReason != 0 {
		t.Errorf("%d rejected rows carry no reason", noReason)
	}
	var reasons []string
	rows, err := db.SQL().QueryContext(ctx, `SELECT DISTINCT status_reason FROM enrollments WHERE status = ?`, store.StatusRejected)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		_ = rows.Scan(&r)
		reasons = append(reasons, r)
	}
	rows.Close()

	st := sb.Stats()
	imports, polls := st.Requests["POST /v3/activities/contacts_json_import"], st.Requests["GET /v3/activities/{id}"]
	t.Logf("100,000 enrollments: ingested and queued in %s, settled after %s; %v", ingested.Round(time.Millisecond), settled.Round(time.Millisecond), counts)
	t.Logf("CC calls: %d imports + %d polls = %d (all requests %v); import_rows %d", imports, polls, imports+polls, st.Requests, st.ImportRows)
	t.Logf("rejection reasons: %q", reasons)
	if imports+polls >= 20 {
		t.Errorf("imports + polls = %d, want under 20", imports+polls)
	}
	if st.ImportRows != total-wantRejected+5 {
		// The unsubscribed contacts are sent (CC decides), the over-long
		// names are not; nobody is sent twice.
		t.Errorf("sandbox received %d rows in completed imports, want %d", st.ImportRows, total-wantRejected+5)
	}
	cancel()
	for range workers {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("work returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("work did not stop")
		}
	}
}
