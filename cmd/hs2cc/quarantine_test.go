package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
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
// serve answers 401 and quarantines; `quarantine list` shows what was kept
// without a body or a signature; once both secrets are configured, a dry
// run changes nothing, a replay ingests and queues the genuine request and
// reports the forged and the cut ones, and replaying again is harmless.
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
	large := []byte(`{"hs_object_id":"7003","email":"large@example-travel.com","padding":"` + strings.Repeat("p", 70_000) + `"}`)
	requests := []struct {
		secret string
		body   []byte
	}{
		{newSecret, genuine},
		{"someone-else-entirely", forged},
		{newSecret, large},
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
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d: status %d, want 401", i, resp.StatusCode)
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
			`(?m)^3\s+\S+\s+bad_signature\s+v3\s+68\.\d KiB \(cut to 64\.0 KiB\)\s+-$`,
			regexp.QuoteMeta(fmt.Sprintf("Quarantine: 3 of 10000 requests, %s of 100.0 MiB of bodies.",
				byteSize(int64(len(genuine)+len(forged)+store.QuarantineBodyMax)))),
		)
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
			`(?m)^quarantined 3: truncated \(only 65536 of its 70\d\d\d body bytes were kept`,
			`Dry run of 3 quarantined requests: verifies 1, still_invalid 1, truncated 1\. Nothing was changed\.`,
		)
		if after := state(); after != before {
			t.Errorf("dry run changed\n%s\nto\n%s", before, after)
		}
	})

	var enrollmentID int64
	// The steps below build on this one.
	ok := t.Run("with both secrets the genuine request is ingested and queued", func(t *testing.T) {
		out, err := quarantine(t, oldSecret+","+newSecret, "replay", "--all")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out,
			`(?m)^quarantined 1: ingested \(enrollment \d+ version 1\)$`,
			`(?m)^quarantined 2: still_invalid \(verify v3: signature mismatch\)$`,
			`(?m)^quarantined 3: truncated `,
			`Replayed 3 quarantined requests: ingested 1, still_invalid 1, truncated 1\.`,
		)
		ids := regexp.MustCompile(`enrollment (\d+) version`).FindStringSubmatch(out)
		if ids == nil {
			t.Fatalf("no enrollment named:\n%s", out)
		}
		if _, err := fmt.Sscan(ids[1], &enrollmentID); err != nil {
			t.Fatal(err)
		}
		e, err := db.GetEnrollment(ctx, enrollmentID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Email != "agent7001@example-travel.com" || e.Status != store.StatusPending || e.Version != 1 || e.PortalID != 62515 {
			t.Errorf("enrollment %+v", e)
		}
		if got, want := tasks(t, ins), []string{fmt.Sprintf("enrollment:%d:v1", enrollmentID)}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("tasks %v, want %v", got, want)
		}
		q, err := db.GetQuarantined(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if q.ReplayOutcome != store.ReplayIngested || q.ReplayedAt.IsZero() {
			t.Errorf("quarantined 1 marked %q at %v", q.ReplayOutcome, q.ReplayedAt)
		}
		d, err := db.GetDelivery(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		// The delivery is dated when HubSpot sent it, not when it was replayed.
		if d.Verdict != store.VerdictAccepted || !d.ReceivedAt.Equal(q.ReceivedAt) || !bytes.Equal(d.Body, genuine) {
			t.Errorf("delivery verdict %q received %v (quarantined at %v)", d.Verdict, d.ReceivedAt, q.ReceivedAt)
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
		if counts[store.StatusPending] != 1 || len(counts) != 1 {
			t.Errorf("enrollments %v, want the one pending", counts)
		}
		if got := tasks(t, ins); len(got) != 1 {
			t.Errorf("tasks %v, want the one", got)
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
			`(?m)^3\s.*\struncated \d{4}-`,
		)
	})
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
		{"unknown subcommand", []string{"quarantine", "purge"}, nil, `unknown command "purge"`},
		{"replay of nothing", []string{"quarantine", "replay"}, nil, "--id N | --all"},
		{"replay of one and all", []string{"quarantine", "replay", "--id", "1", "--all"}, nil, "--id N | --all"},
		{"list with a bad limit", []string{"quarantine", "list", "--limit", "0"}, nil, "--limit N"},
		{"replay without a secret", []string{"quarantine", "replay", "--all"}, map[string]string{"HS2CC_HUBSPOT_CLIENT_SECRET": ""}, "HS2CC_HUBSPOT_CLIENT_SECRET is required"},
		{"replay of an unknown request", []string{"quarantine", "replay", "--id", "42"}, nil, "no quarantined request 42"},
		{"list without MySQL", []string{"quarantine", "list"}, map[string]string{"HS2CC_MYSQL_DSN": ""}, "HS2CC_MYSQL_DSN is required"},
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
