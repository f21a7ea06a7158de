package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/hs2cc/hs2cc/cmd/hs2cc/devstack"
	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

func bcryptHash(t *testing.T, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// HS2CC_OPS_USERS is read whole or refused whole, naming every faulty entry
// by position and name and never echoing a hash.
func TestParseOpsUsers(t *testing.T) {
	good := bcryptHash(t, "a long passphrase", bcrypt.DefaultCost)
	cheap := bcryptHash(t, "a long passphrase", bcrypt.MinCost)
	// A $2y$ hash, as htpasswd writes them, is the same algorithm.
	apache := "$2y$" + strings.TrimPrefix(good, "$2a$")
	cases := []struct {
		name       string
		value      string
		simpleUser string
		want       []handlers.OpsAccount // names and roles only
		wantErr    []string
	}{
		{name: "unset", value: ""},
		{name: "blanks and empty entries", value: " , ,"},
		{
			name:  "an admin and a viewer, spaces around entries",
			value: " alice:admin:" + good + " , bob:viewer:" + apache,
			want:  []handlers.OpsAccount{{Name: "alice", Role: handlers.RoleAdmin}, {Name: "bob", Role: handlers.RoleViewer}},
		},
		{name: "too few fields", value: "alice:" + good, wantErr: []string{"entry 1: want name:role:bcrypt-hash, got 2 fields"}},
		{name: "a plain password", value: "alice:admin:hunter2", wantErr: []string{`entry 1: user "alice": the password is not a bcrypt hash`}},
		{name: "a cut hash", value: "alice:admin:" + good[:50], wantErr: []string{`user "alice": the password is not a bcrypt hash`}},
		{name: "an unknown role", value: "alice:root:" + good, wantErr: []string{`entry 1: user "alice": role "root", want admin or viewer`}},
		{name: "an empty name", value: ":viewer:" + good, wantErr: []string{"entry 1: the name is empty"}},
		{name: "a name twice", value: "alice:admin:" + good + ",alice:viewer:" + good, wantErr: []string{`entry 2: user "alice" is named twice`}},
		{name: "the simple login's name", value: "ops:viewer:" + good, simpleUser: "ops", wantErr: []string{`user "ops" is also HS2CC_OPS_USER`}},
		{name: "a cheap hash", value: "alice:admin:" + cheap, wantErr: []string{`user "alice": bcrypt cost 4, want at least 10`}},
		{
			name:    "every fault at once, good entries too",
			value:   "alice:admin:" + good + ",bob:boss:" + good + ",carol:viewer:x,dave",
			wantErr: []string{`entry 2: user "bob"`, `entry 3: user "carol"`, "entry 4: want name:role:bcrypt-hash"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOpsUsers(tc.value, tc.simpleUser)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted as %+v, want an error", got)
				}
				for _, w := range append(tc.wantErr, "HS2CC_OPS_USERS: ") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				for _, secret := range []string{good[7:], cheap[7:], "hunter2"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q echoes a password or hash", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d accounts, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].Name != w.Name || got[i].Role != w.Role || bcrypt.CompareHashAndPassword(got[i].Hash, []byte("a long passphrase")) != nil {
					t.Errorf("account %d: %s %s, want %s %s with the hash kept", i, got[i].Name, got[i].Role, w.Name, w.Role)
				}
			}
		})
	}

	t.Run("through the config", func(t *testing.T) {
		env := map[string]string{"HS2CC_OPS_USER": "ops", "HS2CC_OPS_PASSWORD": "pw", "HS2CC_OPS_USERS": "ops:admin:" + good,
			"HS2CC_GROUP_MAX_SIZE": "0"}
		_, err := loadConfig(func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), "HS2CC_OPS_USERS") || !strings.Contains(err.Error(), "HS2CC_GROUP_MAX_SIZE") {
			t.Errorf("config error %v, want HS2CC_OPS_USERS named among the others", err)
		}
		env = map[string]string{"HS2CC_OPS_USERS": "viewer:viewer:" + good, "HS2CC_METRICS_TOKEN": "t0ken", "HS2CC_METRICS_ADDR": ":9091"}
		c, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if len(c.OpsAccounts) != 1 || c.OpsAccounts[0].Role != handlers.RoleViewer || c.MetricsToken != "t0ken" || c.MetricsAddr != ":9091" {
			t.Errorf("config %+v", c)
		}
	})
}

// backends are the databases the bridge runs on: MariaDB (as MySQL 8 in
// production) and the embedded server of `hs2cc dev`. The hand-written
// queries of /ops and of the metrics must work on both.
func backends(t *testing.T) map[string]func(t *testing.T) *store.DB {
	return map[string]func(t *testing.T) *store.DB{
		"mariadb": func(t *testing.T) *store.DB { return storetest.MySQL(t) },
		"embedded": func(t *testing.T) *store.DB {
			dsn, stop, err := devstack.MySQL(context.Background(), "127.0.0.1:0", "hs2cc")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			db, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return db
		},
	}
}

// testClock is a settable clock for the store.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

// ingestAt stores one delivery of contact key with content hash at the
// clock's time, and returns the enrollment's id.
func ingestAt(t *testing.T, db *store.DB, key, hash string) int64 {
	t.Helper()
	// The body stands for the content, as a real one does: the same body
	// about the same contact would be an exact repeat, and change nothing.
	body := []byte(fmt.Sprintf(`{"key":%q,"hash":%q}`, key, hash))
	res, err := db.Ingest(context.Background(), &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: body},
		&store.Enrollment{PortalID: 1, ObjectKey: key, Email: key + "@example.com", Lists: []string{"New Agents"}, ContentHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return res.EnrollmentID
}

func setStatus(t *testing.T, db *store.DB, id int64, status string) {
	t.Helper()
	if _, err := db.SQL().Exec(`UPDATE enrollments SET status = ? WHERE id = ?`, status, id); err != nil {
		t.Fatal(err)
	}
}

// The oldest unimported enrollment is the one whose waiting version was
// received first: a changed contact counts from its change, not from its
// first receipt.
func TestOldestUnimported(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)
			clock := &testClock{t: t0}
			db.SetClock(clock.now)
			ops := opsData{db}

			if o, err := ops.OldestUnimported(ctx); err != nil || o != nil {
				t.Fatalf("empty store: %+v, %v; want none", o, err)
			}
			ann := ingestAt(t, db, "ann", "v1") // first received at t0 …
			setStatus(t, db, ann, store.StatusImported)
			clock.t = t0.Add(time.Hour)
			bob := ingestAt(t, db, "bob", "v1")
			setStatus(t, db, bob, store.StatusFailed)
			clock.t = t0.Add(2 * time.Hour)
			cat := ingestAt(t, db, "cat", "v1")
			setStatus(t, db, cat, store.StatusRejected)
			clock.t = t0.Add(3 * time.Hour)
			ingestAt(t, db, "ann", "v2") // … and changed at t0+3h
			ingestAt(t, db, "bob", "v1") // a duplicate changes nothing

			steps := []struct {
				name   string
				before func()
				id     int64
				status string
				since  time.Time
			}{
				{"failed bob waits longest", func() {}, bob, store.StatusFailed, t0.Add(time.Hour)},
				{"then changed ann, from her change", func() { setStatus(t, db, bob, store.StatusImported) }, ann, store.StatusPending, t0.Add(3 * time.Hour)},
				{"importing counts too", func() { setStatus(t, db, ann, store.StatusImporting) }, ann, store.StatusImporting, t0.Add(3 * time.Hour)},
				{"rejected rows never wait", func() { setStatus(t, db, ann, store.StatusImported) }, 0, "", time.Time{}},
			}
			for _, st := range steps {
				st.before()
				o, err := ops.OldestUnimported(ctx)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				switch {
				case st.id == 0 && o != nil:
					t.Errorf("%s: %+v, want none", st.name, o)
				case st.id != 0 && (o == nil || o.ID != st.id || o.Status != st.status || !o.Since.Equal(st.since)):
					t.Errorf("%s: %+v, want id %d %s since %s", st.name, o, st.id, st.status, st.since)
				}
			}
		})
	}
}

// An import settled clean is observed once per row, from the receipt of
// the version imported to the settle.
func TestImportAgeMetric(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)
			clock := &testClock{t: t0}
			db.SetClock(clock.now)
			reg := prometheus.NewRegistry()
			wm := newWorkerMetrics(reg, db.SQL(), slog.New(slog.NewTextHandler(io.Discard, nil)))

			ann := ingestAt(t, db, "ann", "v1") // received t0
			clock.t = t0.Add(10 * time.Minute)
			bob := ingestAt(t, db, "bob", "v1")
			setStatus(t, db, bob, store.StatusImported)
			clock.t = t0.Add(20 * time.Minute)
			ingestAt(t, db, "bob", "v2") // bob's waiting version: t0+20m
			clock.t = t0.Add(30 * time.Minute)
			imp, err := db.ClaimImport(ctx, "import:test", store.ListKey([]string{"New Agents"}), []int64{ann, bob})
			if err != nil || imp == nil {
				t.Fatalf("claim: %+v, %v", imp, err)
			}
			clock.t = t0.Add(time.Hour)
			if err := db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
				t.Fatal(err)
			}
			wm.ImportSettled(ctx, imp.ID)

			h := histogram(t, reg, "hs2cc_enrollment_import_age_seconds")
			// ann waited 60 minutes, bob's second version 40.
			if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-6000) > 0.001 {
				t.Errorf("%d observations summing %vs, want 2 summing 6000s", h.GetSampleCount(), h.GetSampleSum())
			}
		})
	}
}

func histogram(t *testing.T, reg *prometheus.Registry, name string) interface {
	GetSampleCount() uint64
	GetSampleSum() float64
} {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}

// CC calls are counted by method, endpoint pattern and status; a call that
// got no answer is status "error".
func TestCCCallMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	wm := newWorkerMetrics(reg, nil, nil)
	for _, c := range []struct {
		method, pattern string
		status          int
	}{
		{"POST", "/activities/contacts_json_import", 201},
		{"POST", "/activities/contacts_json_import", 201},
		{"GET", "/activities/{activity_id}", 429},
		{"GET", "/contact_lists", 0},
	} {
		wm.observeCC(c.method, c.pattern, c.status, time.Millisecond)
	}
	var got []string
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "hs2cc_cc_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got = append(got, fmt.Sprintf("%s %s %s %v", l["method"], l["endpoint"], l["status"], m.GetCounter().GetValue()))
		}
	}
	slices.Sort(got)
	want := "GET /activities/{activity_id} 429 1|GET /contact_lists error 1|POST /activities/contacts_json_import 201 2"
	if strings.Join(got, "|") != want {
		t.Errorf("hs2cc_cc_calls_total:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.ReplaceAll(want, "|", "\n"))
	}
}
