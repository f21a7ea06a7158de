package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestQuarantineReplay is the story through run, as an operator
// lives it: HubSpot rotates the app's secret before the bridge is told, so
// serve answers 401 and quarantines, a contact with a long history (600 KB)
// whole; a body over HS2CC_MAX_BODY is answered 413 and recorded, not
// quarantined; `quarantine list` shows what was kept without a body or a
// signature; once both secrets are configured, a dry run changes nothing, a
// replay ingests and queues the genuine requests, the large one included,
// and reports the forged one and one cut before bodies were kept whole, and
// replaying again is harmless.
func TestQuarantineReplay(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	redisURL := storetest.RedisURL(t)
	const (
		publicURL = "https://hooks.example.com"
		oldSecret = "old-secret-0000"
		newSecret = "new-secret-1111"
	)
	addr := freeAddr(t)
	env := map[string]string{
		"HS2CC_MYSQL_DSN":             dsn,
		"HS2CC_REDIS_URL":             redisURL,
		"HS2CC_ADDR":                  addr,
		"HS2CC_PUBLIC_URL":            publicURL,
		"HS2CC_HUBSPOT_CLIENT_SECRET": oldSecret,
		"HS2CC_TOKEN_KEY":             store.NewTokenKey(),
		"HS2CC_LOG_FORMAT":            "json",
		"HS2CC_MAX_BODY":              "1048576",
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()
	var out syncBuffer
	if err := run(ctx, []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}

	// HubSpot signs with the new secret while serve knows only the old one.
	genuine := contactBody(62515, 7001, 0)
	forged := contactBody(62515, 7002, 1)
	large := longHistoryBody(t, 62515, 7003, 300)
	tooLarge := longHistoryBody(t, 62515, 7004, 800)
	if len(large) < 550_000 || len(large) > 700_000 || len(tooLarge) <= 1<<20 {
		t.Fatalf("bodies of %d and %d bytes, want about 600 KB and over 1 MiB", len(large), len(tooLarge))
	}
	requests := []struct {
		secret string
		body   []byte
		status int
	}{
		{newSecret, genuine, http.StatusUnauthorized},
		{"someone-else-entirely", forged, http.StatusUnauthorized},
		{newSecret, large, http.StatusUnauthorized},
		// Over HS2CC_MAX_BODY: refused before its signature is checked.
		{newSecret, tooLarge, http.StatusRequestEntityTooLarge},
	}
	var signatures []string
	serveCtx, stopServe := context.WithCancel(ctx)
	var serveLog syncBuffer
	served := make(chan error, 1)
	go func() { served <- run(serveCtx, []string{"serve"}, getenv, &serveLog, &serveLog) }()
	waitFor(t, "serve", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for i, r := range requests {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/hubspot", bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		h := hubspot.Sign(r.secret, http.MethodPost, publicURL+"/webhooks/hubspot", r.body, time.Now())
		for k, v := range h {
			req.Header[k] = v
		}
		signatures = append(signatures, h.Get(hubspot.HeaderSignatureV3), h.Get(hubspot.HeaderSignature))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.status {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, r.status)
		}
	}
	stopServe()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v\n%s", err, serveLog.String())
	}

	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The body over the limit is on record, with its size and its start.
	if d, err := db.GetDelivery(ctx, 1); err != nil || d.Verdict != store.VerdictTooLarge ||
		d.BodyLength != int64(len(tooLarge)) || d.DeclaredLength != int64(len(tooLarge)) ||
		!bytes.Equal(d.Body, tooLarge[:store.TooLargeHeadMax]) {
		t.Fatalf("delivery 1: %+v, %v; want the body over the limit, recorded too_large", d, err)
	}
	// A request quarantined before bodies were kept whole has its body cut
	// at 64 KiB; it stays listed and is never replayed.
	legacy := []byte(`{"hs_object_id":"7005","email":"legacy@example-travel.com","padding":"` + strings.Repeat("p", 70_000) + `"}`)
	legacyHeader, err := json.Marshal(hubspot.Sign(newSecret, http.MethodPost, publicURL+"/webhooks/hubspot", legacy, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx,
		`INSERT INTO quarantine (received_at, method, scheme, host, request_uri, headers, body, body_bytes,
		   body_length, body_truncated, reason, detail, signature_version, replay_outcome, replay_detail)
		 VALUES (?, 'POST', 'http', ?, '/webhooks/hubspot', ?, ?, ?, ?, 1, 'bad_signature', 'verify v3: signature mismatch', 'v3', '', '')`,
		time.Now().UTC(), addr, string(legacyHeader), legacy[:64<<10], 64<<10, len(legacy)); err != nil {
		t.Fatal(err)
	}
	redisOpt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ins := asynq.NewInspector(redisOpt)
	defer ins.Close()
	// state is everything a replay may change: the quarantine's marks,
	// the enrollments, the deliveries and the queued tasks.
	state := func() string {
		t.Helper()
		var b strings.Builder
		rows, err := db.SQL().Query(`SELECT id, replay_outcome, replayed_at IS NULL FROM quarantine ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var outcome string
			var never bool
			if err := rows.Scan(&id, &outcome, &never); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "quarantined %d %q never=%v; ", id, outcome, never)
		}
		enr, err := db.CountEnrollments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		del, err := db.CountDeliveries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "enrollments %v; deliveries %v; tasks %v", enr, del, tasks(t, ins))
		return b.String()
	}
	quarantine := func(t *testing.T, secrets string, args ...string) (string, error) {
		t.Helper()
		env["HS2CC_HUBSPOT_CLIENT_SECRET"] = secrets
		var out, errOut syncBuffer
		err := run(ctx, append([]string{"quarantine"}, args...), getenv, &out, &errOut)
		if errOut.String() != "" {
			t.Logf("stderr of %v:\n%s", args, errOut.String())
		}
		return out.String(), err
	}
	wantLines := func(t *testing.T, out string, patterns ...string) {
		t.Helper()
		for _, p := range patterns {
			if !regexp.MustCompile(p).MatchString(out) {
				t.Errorf("output lacks %s:\n%s", p, out)
			}
		}
	}

	t.Run("list shows what was kept, never a body or a signature", func(t *testing.T) {
		out, err := quarantine(t, oldSecret, "list")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out,
			`(?m)^ID\s+RECEIVED \(UTC\)\s+REASON\s+SIGNATURE\s+BODY\s+REPLAY$`,
			`(?m)^1\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+bad_signature\s+v3\s+[\d.]+ KiB\s+-$`,
			`(?m)^3\s+\S+\s+bad_signature\s+v3\s+`+regexp.QuoteMeta(byteSize(int64(len(large))))+`\s+-$`,
			`(?m)^4\s+\S+\s+bad_signature\s+v3\s+68\.\d KiB \(cut to 64\.0 KiB\)\s+-$`,
			regexp.QuoteMeta(fmt.Sprintf("Quarantine: 4 of 10000 requests, %s of 100.0 MiB of bodies.",
				byteSize(int64(len(genuine)+len(forged)+len(large)+64<<10)))),
		)
		if strings.Contains(out, "7004") || strings.Count(out, "bad_signature") != 4 {
			t.Errorf("the body over the limit is listed as quarantined:\n%s", out)
		}
		for _, secret := range append(signatures, "example-travel.com", "pppp", "vid", oldSecret, newSecret) {
			if strings.Contains(out, secret) {
				t.Errorf("list output shows %.20q:\n%s", secret, out)
			}
		}
		out, err = quarantine(t, oldSecret, "list", "--limit", "1")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(out, "bad_signature") != 1 || !strings.Contains(out, "the newest 1 shown") {
			t.Errorf("list --limit 1:\n%s", out)
		}
	})

	before := state()
	t.Run("a dry run changes nothing", func(t *testing.T) {
		out, err := quarantine(t, oldSecret+","+newSecret, "replay", "--all", "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out,
			`(?m)^quarantined 1: verifies \(signature v3; it would be ingested\)$`,
			`(?m)^quarantined 2: still_invalid \(verify v3: signature mismatch\)$`,
			`(?m)^quarantined 3: verifies \(signature v3; it would be ingested\)$`,
			`(?m)^quarantined 4: truncated \(only 65536 of its 70\d\d\d body bytes were kept`,
			`Dry run of 4 quarantined requests: verifies 2, still_invalid 1, truncated 1\. Nothing was changed\.`,
		)
		if after := state(); after != before {
			t.Errorf("dry run changed\n%s\nto\n%s", before, after)
		}
	})

	var enrollmentID int64
	// The steps below build on this one.
	ok := t.Run("with both secrets the genuine requests are ingested and queued", func(t *testing.T) {
		out, err := quarantine(t, oldSecret+","+newSecret, "replay", "--all")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out,
			`(?m)^quarantined 1: ingested \(enrollment \d+ version 1\)$`,
			`(?m)^quarantined 2: still_invalid \(verify v3: signature mismatch\)$`,
			`(?m)^quarantined 3: ingested \(enrollment \d+ version 1\)$`,
			`(?m)^quarantined 4: truncated `,
			`Replayed 4 quarantined requests: ingested 2, still_invalid 1, truncated 1\.`,
		)
		ids := regexp.MustCompile(`enrollment (\d+) version`).FindAllStringSubmatch(out, -1)
		if len(ids) != 2 {
			t.Fatalf("enrollments named %v, want two:\n%s", ids, out)
		}
		var wantTasks []string
		for i, want := range []struct {
			quarantined int64
			email       string
			body        []byte
		}{{1, "agent7001@example-travel.com", genuine}, {3, "agent7003@example-travel.com", large}} {
			var id int64
			if _, err := fmt.Sscan(ids[i][1], &id); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				enrollmentID = id
			}
			wantTasks = append(wantTasks, fmt.Sprintf("enrollment:%d:v1", id))
			e, err := db.GetEnrollment(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if e.Email != want.email || e.Status != store.StatusPending || e.Version != 1 || e.PortalID != 62515 {
				t.Errorf("enrollment %+v", e)
			}
			q, err := db.GetQuarantined(ctx, want.quarantined)
			if err != nil {
				t.Fatal(err)
			}
			if q.ReplayOutcome != store.ReplayIngested || q.ReplayedAt.IsZero() {
				t.Errorf("quarantined %d marked %q at %v", want.quarantined, q.ReplayOutcome, q.ReplayedAt)
			}
			var deliveryID int64
			if err := db.SQL().QueryRowContext(ctx, `SELECT id FROM deliveries WHERE enrollment_id = ?`, id).Scan(&deliveryID); err != nil {
				t.Fatal(err)
			}
			d, err := db.GetDelivery(ctx, deliveryID)
			if err != nil {
				t.Fatal(err)
			}
			// The delivery is the whole body, dated when HubSpot sent it,
			// not when it was replayed.
			if d.Verdict != store.VerdictAccepted || !d.ReceivedAt.Equal(q.ReceivedAt) || !bytes.Equal(d.Body, want.body) {
				t.Errorf("delivery verdict %q received %v (quarantined at %v), %d of %d body bytes",
					d.Verdict, d.ReceivedAt, q.ReceivedAt, len(d.Body), len(want.body))
			}
		}
		slices.Sort(wantTasks)
		if got := tasks(t, ins); strings.Join(slices.Sorted(slices.Values(got)), ",") != strings.Join(wantTasks, ",") {
			t.Errorf("tasks %v, want %v", got, wantTasks)
		}
	})

	if !ok {
		t.FailNow()
	}

	t.Run("replaying again is harmless", func(t *testing.T) {
		out, err := quarantine(t, oldSecret+","+newSecret, "replay", "--all")
		if err != nil {
			t.Fatal(err)
		}
		// Only the ones that did not get through are tried again.
		wantLines(t, out, `Replayed 2 quarantined requests: still_invalid 1, truncated 1\.`)
		out, err = quarantine(t, oldSecret+","+newSecret, "replay", "--id", "1")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out, fmt.Sprintf(`(?m)^quarantined 1: duplicate \(enrollment %d version 1\)$`, enrollmentID))
		counts, err := db.CountEnrollments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.StatusPending] != 2 || len(counts) != 1 {
			t.Errorf("enrollments %v, want the two pending", counts)
		}
		if got := tasks(t, ins); len(got) != 2 {
			t.Errorf("tasks %v, want the two", got)
		}
	})

	t.Run("under the old secret alone it is still invalid", func(t *testing.T) {
		out, err := quarantine(t, oldSecret, "replay", "--id", "1", "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out, `(?m)^quarantined 1: still_invalid \(verify v3: signature mismatch\)$`)
	})

	t.Run("list shows the replays", func(t *testing.T) {
		out, err := quarantine(t, oldSecret, "list")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out,
			`(?m)^1\s.*\sduplicate \d{4}-`,
			`(?m)^2\s.*\sstill_invalid \d{4}-`,
			`(?m)^3\s.*\singested \d{4}-`,
			`(?m)^4\s.*\struncated \d{4}-`,
		)
	})
}

// longHistoryBody is contactBody for a contact with a long history: props
// more properties, each with 4 to 18 versions in the shape contactBody gives
// its own, newest first and older than the contact's own data, so that 300
// of them make about 600 KB, what "Include all properties" sends for a
// contact that forms, imports and people have updated for years.
func longHistoryBody(t *testing.T, portal, vid int64, props int) []byte {
	t.Helper()
	head, tail, ok := bytes.Cut(contactBody(portal, vid, 0), []byte(`"properties":{`))
	if !ok {
		t.Fatal("contactBody has no properties")
	}
	values := []string{"Caribbean cruises and river cruises in Europe", "Matkatoimisto Yllä Oy", "gold",
		"https://www.example.com/agents/join?utm_source=newsletter&utm_medium=email", "Français, English, Suomi"}
	var b bytes.Buffer
	b.Write(head)
	b.WriteString(`"properties":{`)
	for i := range props {
		fmt.Fprintf(&b, `"hs_history_%d":{"value":%s,"versions":[`, i, strconv.Quote(values[i%len(values)]))
		for v := range 4 + i*7%15 {
			if v > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"selected":false,"source-id":"form-%d","source-label":null,"source-type":"FORM","timestamp":%d,"updated-by-user-id":null,"value":%s}`,
				v, 1700000000000-int64(v)*86_400_000-int64(i), strconv.Quote(values[(i+v)%len(values)]))
		}
		b.WriteString("]},")
	}
	b.Write(tail)
	return b.Bytes()
}

// tasks lists the ids of every enrollment task waiting in any group.
func tasks(t *testing.T, ins *asynq.Inspector) []string {
	t.Helper()
	groups, err := ins.Groups(jobs.Queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range groups {
		ts, err := ins.ListAggregatingTasks(jobs.Queue, g.Group)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			ids = append(ids, task.ID)
		}
	}
	return ids
}

// TestQuarantineRefusesBadInvocations: a replay without a secret or without
// saying which requests, or an unknown request, is refused before anything
// changes.
func TestQuarantineRefusesBadInvocations(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	base := map[string]string{"HS2CC_MYSQL_DSN": dsn, "HS2CC_REDIS_URL": storetest.RedisURL(t), "HS2CC_HUBSPOT_CLIENT_SECRET": "s"}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, func(k string) string { return base[k] }, &out, &out); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error or the output; usage errors print the usage
	}{
		{"no subcommand", []string{"quarantine"}, nil, "hs2cc quarantine list"},
		{"unknown subcommand", []string{"quarantine", "prune"}, nil, `unknown command "prune"`},
		{"replay of nothing", []string{"quarantine", "replay"}, nil, "--id N | --all"},
		{"replay of one and all", []string{"quarantine", "replay", "--id", "1", "--all"}, nil, "--id N | --all"},
		{"list with a bad limit", []string{"quarantine", "list", "--limit", "0"}, nil, "--limit N"},
		{"replay without a secret", []string{"quarantine", "replay", "--all"}, map[string]string{"HS2CC_HUBSPOT_CLIENT_SECRET": ""}, "HS2CC_HUBSPOT_CLIENT_SECRET is required"},
		{"replay of an unknown request", []string{"quarantine", "replay", "--id", "42"}, nil, "no quarantined request 42"},
		{"list without MySQL", []string{"quarantine", "list"}, map[string]string{"HS2CC_MYSQL_DSN": ""}, "HS2CC_MYSQL_DSN is required"},
		{"a body limit past what a stored body holds", []string{"quarantine", "list"}, map[string]string{"HS2CC_MAX_BODY": "16777216"}, "HS2CC_MAX_BODY: at most 16777215 bytes"},
		{"a body limit that is no number of bytes", []string{"quarantine", "list"}, map[string]string{"HS2CC_MAX_BODY": "8MiB"}, "HS2CC_MAX_BODY: want a positive whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if v, ok := tc.env[k]; ok {
					return v
				}
				return base[k]
			}
			var out bytes.Buffer
			err := run(context.Background(), tc.args, getenv, &out, &out)
			if err == nil {
				t.Fatalf("want an error; output:\n%s", out.String())
			}
			if !strings.Contains(err.Error()+"\n"+out.String(), tc.want) {
				t.Errorf("error %q, output %q: want %q", err, out.String(), tc.want)
			}
		})
	}
}
