package jobs

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// listsEnv is a resolver against a sandbox behind a server whose first
// answers a test can replace with faults, on a fresh MySQL database.
type listsEnv struct {
	db    *store.DB
	sb    *ccsandbox.Server
	srv   *httptest.Server
	cc    *ccclient.Client
	r     *Resolver
	now   time.Time
	slept []time.Duration

	mu     sync.Mutex
	faults []func(w http.ResponseWriter) // answers for the next list calls, in order
}

func newListsEnv(t *testing.T, policy Policy, existing ...string) *listsEnv {
	t.Helper()
	e := &listsEnv{db: storetest.MySQL(t), sb: ccsandbox.New(ccsandbox.Options{RateLimit: -1}),
		now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v3/contact_lists") {
			e.mu.Lock()
			var fault func(http.ResponseWriter)
			if len(e.faults) > 0 {
				fault, e.faults = e.faults[0], e.faults[1:]
			}
			e.mu.Unlock()
			if fault != nil {
				fault(w)
				return
			}
		}
		e.sb.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	for _, name := range existing {
		e.sb.CreateList(name)
	}
	access, _ := e.sb.IssueToken("contact_data offline_access")
	var err error
	if e.cc, err = ccclient.New(e.srv.URL+"/v3", ccclient.StaticToken(access)); err != nil {
		t.Fatal(err)
	}
	// The attention rows' times and the resolver's clock must agree.
	e.db.SetClock(func() time.Time { return e.now })
	e.r = NewResolver(e.cc, e.db, policy, slog.New(slog.DiscardHandler))
	e.r.now = func() time.Time { return e.now }
	e.r.sleep = func(_ context.Context, d time.Duration) error {
		e.slept = append(e.slept, d)
		return nil
	}
	return e
}

// fail queues answers for the next n list calls.
func (e *listsEnv) fail(n int, status int, body string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range n {
		e.faults = append(e.faults, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})
	}
}

func (e *listsEnv) lookups() int { return e.sb.Stats().Requests["GET /v3/contact_lists"] }

func (e *listsEnv) listID(t *testing.T, name string) string {
	t.Helper()
	for _, l := range e.sb.Lists() {
		if l.Name == name {
			return l.ListID
		}
	}
	t.Fatalf("the sandbox has no list %q", name)
	return ""
}

func (e *listsEnv) attention(t *testing.T) []string {
	t.Helper()
	items, err := e.db.ListAttention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range items {
		out = append(out, a.Kind+":"+a.Subject)
	}
	return out
}

const (
	throttled   = `{"error_key":"throttled","error_message":"Too Many Requests"}`
	serverError = `[{"error_key":"server_error","error_message":"boom"}]`
)

// TestResolver covers what can happen to a list name: found, created
// when the rules allow it, missing and recorded as attention when they do
// not, and CC's throttling and 5xx waited out in the process or, when they
// last, handed back as a wait that spends no task retry.
func TestResolver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		create   bool
		existing []string
		faults   func(e *listsEnv)
		// what Resolve(["Agents"]) gives
		wantErr       func(error) bool
		wantCreated   bool
		wantAttention []string
		wantSleeps    int
	}{
		{name: "an existing list is found", existing: []string{"Agents"}},
		{name: "a missing list is created when the rules allow it", create: true, wantCreated: true},
		{name: "a missing list that may not be created is attention, by name",
			wantErr:       func(err error) bool { var m *MissingListError; return errors.As(err, &m) && m.Name == "Agents" },
			wantAttention: []string{"missing_list:Agents"}},
		{name: "throttled twice, then found", existing: []string{"Agents"}, wantSleeps: 2,
			faults: func(e *listsEnv) { e.fail(2, 429, throttled) }},
		{name: "a 500 and a 503, then created", create: true, wantCreated: true, wantSleeps: 2,
			faults: func(e *listsEnv) { e.fail(1, 500, serverError); e.fail(1, 503, serverError) }},
		{name: "faults that last are a wait, not a failure", existing: []string{"Agents"}, wantSleeps: callTries - 1,
			faults:  func(e *listsEnv) { e.fail(callTries, 503, serverError) },
			wantErr: func(err error) bool { var w *waitError; return errors.As(err, &w) && !isFailure(err) }},
		{name: "a 409 on create means another process made it", create: true,
			faults: func(e *listsEnv) {
				// The lookup finds nothing, the create meets a list made
				// meanwhile (the sandbox makes it here), the lookup after
				// the 409 finds it.
				e.mu.Lock()
				e.faults = append(e.faults, nil, func(w http.ResponseWriter) {
					e.sb.CreateList("Agents")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(409)
					_, _ = w.Write([]byte(`[{"error_key":"conflict","error_message":"name taken"}]`))
				})
				e.mu.Unlock()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newListsEnv(t, Policy{Lists: []string{"Agents"}, CreateLists: tc.create}, tc.existing...)
			if tc.faults != nil {
				tc.faults(e)
			}
			ids, err := e.r.Resolve(context.Background(), []string{"Agents"})
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("Resolve: %v (%T), not the error wanted", err, err)
				}
			} else if err != nil {
				t.Fatalf("Resolve: %v", err)
			} else if want := e.listID(t, "Agents"); !slices.Equal(ids, []string{want}) {
				t.Errorf("ids %v, want [%s]", ids, want)
			}
			if created := e.sb.Stats().Requests["POST /v3/contact_lists"] > 0; created != tc.wantCreated {
				t.Errorf("created a list: %v, want %v", created, tc.wantCreated)
			}
			if got := e.attention(t); !slices.Equal(got, tc.wantAttention) {
				t.Errorf("attention %v, want %v", got, tc.wantAttention)
			}
			if len(e.slept) != tc.wantSleeps {
				t.Errorf("waited %v, want %d waits", e.slept, tc.wantSleeps)
			}
		})
	}
}

// TestMissingListLookedForAgain: a missing list costs one CC call per
// recheck interval, whoever asks, and once it exists in CC the next check
// finds it and clears the attention; no restart is needed.
func TestMissingListLookedForAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newListsEnv(t, Policy{Lists: []string{"Agents", "Gold"}}, "Gold")
	var m *MissingListError
	if _, err := e.r.Resolve(ctx, []string{"Agents"}); !errors.As(err, &m) {
		t.Fatalf("Resolve: %v, want a missing list", err)
	}
	// A second process asks within the interval: it reads MySQL, not CC.
	other := NewResolver(e.cc, e.db, e.r.policy, slog.New(slog.DiscardHandler))
	other.now = e.r.now
	for _, r := range []*Resolver{e.r, other} {
		if _, err := r.Resolve(ctx, []string{"Agents"}); !errors.As(err, &m) {
			t.Fatalf("Resolve again: %v, want a missing list", err)
		}
	}
	if n := e.lookups(); n != 1 {
		t.Errorf("%d lookups within the recheck interval, want 1", n)
	}
	e.sb.CreateList("Agents")
	e.now = e.now.Add(recheck)
	ids, err := other.Resolve(ctx, []string{"Gold", "Agents"})
	if err != nil {
		t.Fatalf("Resolve after the list appeared: %v", err)
	}
	// Ids come in the order of the sorted names.
	if want := []string{e.listID(t, "Agents"), e.listID(t, "Gold")}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	if got := e.attention(t); len(got) != 0 {
		t.Errorf("attention %v after the list appeared, want none", got)
	}
}

// TestCheckAll: the check of start-up and connection records every missing
// list, forgets states of lists the rules no longer name, and passes CC not
// connected back for the caller to wait for the connection.
func TestCheckAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newListsEnv(t, Policy{Lists: []string{"A", "B", "C"}}, "B")
	if err := e.db.RaiseAttention(ctx, store.AttentionMissingList, "Old", "from older rules"); err != nil {
		t.Fatal(err)
	}
	missing, err := e.r.CheckAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"A", "C"}) {
		t.Errorf("missing %v, want [A C]", missing)
	}
	if got, want := e.attention(t), []string{"missing_list:A", "missing_list:C"}; !slices.Equal(got, want) {
		t.Errorf("attention %v, want %v", got, want)
	}
	a, err := e.db.GetAttention(ctx, store.AttentionMissingList, "A")
	if err != nil || !strings.Contains(a.Detail, `"A"`) || !strings.Contains(a.Detail, "create_missing_lists") {
		t.Errorf("attention for A: %+v, %v; want a detail naming it and what to do", a, err)
	}

	nc := NewResolver(mustClient(t, e.srv.URL, notConnectedSource{}), e.db, Policy{Lists: []string{"Z"}}, slog.New(slog.DiscardHandler))
	if _, err := nc.CheckAll(ctx); !errors.Is(err, ccauth.ErrNotConnected) || !blocked(err) {
		t.Errorf("CheckAll before CC is connected: %v, want ccauth.ErrNotConnected", err)
	}
}

// TestForgetLooksUpAgain: a list deleted in CC after its id was cached, and
// made again under the same name, is found under its new id once the old
// one is forgotten.
func TestForgetLooksUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newListsEnv(t, Policy{Lists: []string{"Agents"}}, "Agents")
	old, err := e.r.Resolve(ctx, []string{"Agents"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cc.DeleteContactList(ctx, old[0]); err != nil {
		t.Fatal(err)
	}
	e.sb.CreateList("Agents")
	if ids, _ := e.r.Resolve(ctx, []string{"Agents"}); !slices.Equal(ids, old) {
		t.Fatalf("before Forget the cached id %v stays, got %v", old, ids)
	}
	e.r.Forget([]string{"Agents"})
	ids, err := e.r.Resolve(ctx, []string{"Agents"})
	if err != nil {
		t.Fatal(err)
	}
	if want := e.listID(t, "Agents"); ids[0] != want || want == old[0] {
		t.Errorf("after Forget: %v, want the new id %s (old %s)", ids, want, old[0])
	}
}

type notConnectedSource struct{}

func (notConnectedSource) Token(context.Context) (string, error) { return "", ccauth.ErrNotConnected }

func mustClient(t *testing.T, base string, ts ccclient.TokenSource) *ccclient.Client {
	t.Helper()
	c, err := ccclient.New(base+"/v3", ts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCustomFieldsResolved: the custom fields the rules map to must exist
// in CC, since CC drops the value of a field it does not have. One that
// exists costs one call for all of them, once; a missing one is created
// when the rules allow it, and otherwise it is attention, by name, and
// blocks imports until it exists.
func TestCustomFieldsResolved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name          string
		existing      []string // labels of the account's fields
		create        bool
		wantMissing   bool
		wantCreated   int
		wantAttention []string
	}{
		{name: "both exist", existing: []string{"agency_id", "tier"}},
		{name: "one missing, created", existing: []string{"agency_id"}, create: true, wantCreated: 1},
		{name: "one missing, not allowed", existing: []string{"agency_id"}, wantMissing: true,
			wantAttention: []string{"missing_field:tier"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newListsEnv(t, Policy{Lists: []string{"Agents"}, Fields: []string{"agency_id", "tier"}, CreateFields: tc.create}, "Agents")
			for _, l := range tc.existing {
				e.sb.CreateCustomField(l)
			}
			for range 2 {
				_, err := e.r.Resolve(ctx, []string{"Agents"})
				var mf *MissingFieldError
				if got := errors.As(err, &mf) && blocked(err); got != tc.wantMissing {
					t.Fatalf("Resolve: %v, want a missing field: %v", err, tc.wantMissing)
				}
				if !tc.wantMissing && err != nil {
					t.Fatal(err)
				}
			}
			st := e.sb.Stats()
			if n := st.Requests["GET /v3/contact_custom_fields"]; n != 1 {
				t.Errorf("%d reads of the custom fields over two imports, want 1", n)
			}
			if n := st.Requests["POST /v3/contact_custom_fields"]; n != tc.wantCreated {
				t.Errorf("%d fields created, want %d", n, tc.wantCreated)
			}
			if got := e.attention(t); !slices.Equal(got, tc.wantAttention) {
				t.Errorf("attention %v, want %v", got, tc.wantAttention)
			}
			if !tc.wantMissing {
				return
			}
			a, err := e.db.GetAttention(ctx, store.AttentionMissingField, "tier")
			if err != nil || !strings.Contains(a.Detail, "create_missing_fields") || !strings.Contains(a.Detail, "cf:tier") {
				t.Errorf("attention %+v, %v; want what to do, naming cf:tier", a, err)
			}
			// Someone creates it in CC: the next look, once the recheck
			// interval has passed, finds it and clears the attention.
			e.sb.CreateCustomField("tier")
			e.now = e.now.Add(recheck)
			if _, err := e.r.Resolve(ctx, []string{"Agents"}); err != nil {
				t.Fatalf("Resolve once the field exists: %v", err)
			}
			if got := e.attention(t); len(got) != 0 {
				t.Errorf("attention %v once the field exists, want none", got)
			}
		})
	}
}
