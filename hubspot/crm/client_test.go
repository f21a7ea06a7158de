package crm_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/hubspot/crm/hssandbox"
)

// clock is a settable sandbox clock, so that rate windows and days pass
// without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start serves a sandbox with o and returns it, a client against it with
// the right token, and the server URL.
func start(t *testing.T, o hssandbox.Options) (*hssandbox.Server, *crm.Client, string) {
	t.Helper()
	sb, err := hssandbox.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	return sb, crm.New(ts.URL, sb.Token(), ts.Client()), ts.URL
}

func deleteContact(t *testing.T, base, token, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, base+"/crm/v3/objects/contacts/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete %s: %d", id, resp.StatusCode)
	}
}

func updates(ids ...string) []crm.ContactUpdate {
	var out []crm.ContactUpdate
	for _, id := range ids {
		out = append(out, crm.ContactUpdate{ID: id, Properties: map[string]string{"firstname": "n" + id}})
	}
	return out
}

func TestBatchUpdateContactsMissingIDs(t *testing.T) {
	cases := []struct {
		name        string
		deleted     []string
		send        []string
		wantUpdated []string
		wantMissing []string
	}{
		{"none missing", nil, []string{"1", "2", "3"}, []string{"1", "2", "3"}, nil},
		{"some missing", []string{"2", "4"}, []string{"1", "2", "3", "4"}, []string{"1", "3"}, []string{"2", "4"}},
		{"all missing", []string{"7"}, []string{"7"}, nil, []string{"7"}},
	}
	modes := []string{hssandbox.MissingMultiStatus, hssandbox.MissingRefuse, hssandbox.MissingRefuseMessage}
	for _, mode := range modes {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				sb, c, base := start(t, hssandbox.Options{Missing: mode})
				for _, id := range tc.deleted {
					deleteContact(t, base, sb.Token(), id)
				}
				res, err := c.BatchUpdateContacts(context.Background(), updates(tc.send...))
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(res.Updated)
				slices.Sort(res.Missing)
				if !slices.Equal(res.Updated, tc.wantUpdated) || !slices.Equal(res.Missing, tc.wantMissing) {
					t.Fatalf("got updated %v missing %v, want %v and %v", res.Updated, res.Missing, tc.wantUpdated, tc.wantMissing)
				}
				var written []string
				for _, ct := range sb.Contacts() {
					if ct.Properties["firstname"] != "n"+ct.ID {
						t.Errorf("contact %s has %v", ct.ID, ct.Properties)
					}
					written = append(written, ct.ID)
				}
				if !slices.Equal(written, tc.wantUpdated) {
					t.Errorf("sandbox holds %v, want %v", written, tc.wantUpdated)
				}
			})
		}
	}
}

func TestBatchUpdateContactsRefusesOversizeBatchUnsent(t *testing.T) {
	sb, c, _ := start(t, hssandbox.Options{})
	ids := make([]string, crm.MaxBatch+1)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	if _, err := c.BatchUpdateContacts(context.Background(), updates(ids...)); err == nil {
		t.Fatal("101 updates: no error")
	}
	if st := sb.Stats(); len(st) != 0 {
		t.Errorf("a request was sent: %v", st)
	}
	if _, err := c.BatchUpdateContacts(context.Background(), updates(ids[:crm.MaxBatch]...)); err != nil {
		t.Errorf("100 updates: %v", err)
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	cases := []struct {
		name         string
		token        string
		props        map[string]string
		wantStatus   int
		wantCategory string
	}{
		{"wrong token", "bad-token", map[string]string{"firstname": "x"}, 401, "INVALID_AUTHENTICATION"},
		{"unknown property", "", map[string]string{"nosuch": "x"}, 400, "VALIDATION_ERROR"},
		{"bad enumeration value", "", map[string]string{crm.PropStatus: "maybe"}, 400, "VALIDATION_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, good, base := start(t, hssandbox.Options{})
			if err := good.EnsureProperties(context.Background()); err != nil {
				t.Fatal(err)
			}
			c := good
			if tc.token != "" {
				c = crm.New(base, tc.token, nil)
			}
			_, err := c.BatchUpdateContacts(context.Background(), []crm.ContactUpdate{{ID: "5", Properties: tc.props}})
			var e *crm.APIError
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *APIError", err)
			}
			if e.StatusCode != tc.wantStatus || e.Category != tc.wantCategory || e.Status != "error" || e.CorrelationID == "" || e.Message == "" {
				t.Errorf("got %+v", e)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error text %q repeats the token", err)
			}
			if _, _, ok := crm.IsRateLimited(err); ok {
				t.Error("IsRateLimited true for a non-429")
			}
			if n := len(sb.Contacts()); n != 0 {
				t.Errorf("%d contacts written by a refused batch", n)
			}
		})
	}
}

func TestIsRateLimited(t *testing.T) {
	midnightIn := 2 * time.Hour
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(-midnightIn)
	cases := []struct {
		name      string
		o         hssandbox.Options
		before    func(*clock) // run between the admitted calls and the refused one
		wantAfter time.Duration
		wantDaily bool
	}{
		{"secondly with Retry-After", hssandbox.Options{Rate: 2, Daily: -1}, func(c *clock) { c.add(3 * time.Second) }, 7 * time.Second, false},
		{"secondly without Retry-After", hssandbox.Options{Rate: 2, Daily: -1, OmitRetryAfter: true}, func(c *clock) { c.add(3 * time.Second) }, 10 * time.Second, false},
		{"daily with Retry-After", hssandbox.Options{Rate: -1, Daily: 2}, func(*clock) {}, midnightIn, true},
		{"daily without Retry-After", hssandbox.Options{Rate: -1, Daily: 2, OmitRetryAfter: true}, func(*clock) {}, midnightIn, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: day}
			tc.o.Now = clk.now
			_, c, _ := start(t, tc.o)
			ctx := context.Background()
			for range 2 {
				if _, err := c.BatchUpdateContacts(ctx, updates("1")); err != nil {
					t.Fatal(err)
				}
			}
			tc.before(clk)
			_, err := c.BatchUpdateContacts(ctx, updates("1"))
			after, daily, ok := crm.IsRateLimited(err)
			if !ok {
				t.Fatalf("got %v, want a 429", err)
			}
			// Without Retry-After the client measures midnight on the real
			// clock, so only the daily flag and a bound can be checked.
			if tc.wantDaily && tc.o.OmitRetryAfter {
				if after <= 0 || after > 24*time.Hour {
					t.Errorf("retry after %v, want until a midnight", after)
				}
			} else if after != tc.wantAfter {
				t.Errorf("retry after %v, want %v", after, tc.wantAfter)
			}
			if daily != tc.wantDaily {
				t.Errorf("daily %v, want %v", daily, tc.wantDaily)
			}
		})
	}
}

// post sends body to the sandbox as a client other than crm would, to set
// up an account that is partly ensured.
func post(base, token, path, body string) error {
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return errors.New(resp.Status)
	}
	return nil
}

// TestEnsureProperties checks that EnsureProperties creates only what is
// missing, that a second call only reads, and that losing a race to create
// (a 409 after a 404) is success.
func TestEnsureProperties(t *testing.T) {
	const postProps = "POST /crm/v3/properties/contacts"
	const postGroups = "POST /crm/v3/properties/contacts/groups"
	const group = "/crm/v3/properties/contacts/groups"
	const props = "/crm/v3/properties/contacts"
	listsProp := `{"name":"hs2cc_cc_lists","label":"l","type":"string","fieldType":"text","groupName":"hs2cc"}`
	cases := []struct {
		name           string
		pre            func(ctx context.Context, c *crm.Client, base, token string) error
		staleReads     bool // every property read answers 404, as if another process created it meanwhile
		wantGroupPosts int
		wantPropPosts  int
		want409        int
	}{
		{"empty account", func(context.Context, *crm.Client, string, string) error { return nil }, false, 1, 4, 0},
		{"already ensured", func(ctx context.Context, c *crm.Client, _, _ string) error { return c.EnsureProperties(ctx) }, false, 0, 0, 0},
		{"group exists", func(_ context.Context, _ *crm.Client, base, token string) error {
			return post(base, token, group, `{"name":"hs2cc","label":"hs2cc"}`)
		}, false, 0, 4, 0},
		{"group and one property exist", func(_ context.Context, _ *crm.Client, base, token string) error {
			if err := post(base, token, group, `{"name":"hs2cc","label":"hs2cc"}`); err != nil {
				return err
			}
			return post(base, token, props, listsProp)
		}, false, 0, 3, 0},
		{"lost the race to create", func(ctx context.Context, c *crm.Client, _, _ string) error { return c.EnsureProperties(ctx) }, true, 0, 0, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := hssandbox.New(hssandbox.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var stale bool
			var mu sync.Mutex
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				s := stale
				mu.Unlock()
				if s && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, props+"/hs2cc_") {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				sb.ServeHTTP(w, r)
			}))
			t.Cleanup(ts.Close)
			c := crm.New(ts.URL, sb.Token(), ts.Client())
			ctx := context.Background()
			if err := tc.pre(ctx, c, ts.URL, sb.Token()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			stale = tc.staleReads
			mu.Unlock()
			before := sb.Stats()
			if err := c.EnsureProperties(ctx); err != nil {
				t.Fatal(err)
			}
			st := sb.Stats()
			delta := func(pattern string, status int) int { return st[pattern][status] - before[pattern][status] }
			if n := delta(postGroups, 201); n != tc.wantGroupPosts {
				t.Errorf("%d groups created, want %d", n, tc.wantGroupPosts)
			}
			if n := delta(postProps, 201); n != tc.wantPropPosts {
				t.Errorf("%d properties created, want %d", n, tc.wantPropPosts)
			}
			if n := delta(postProps, 409) + delta(postGroups, 409); n != tc.want409 {
				t.Errorf("%d creates of something that existed, want %d", n, tc.want409)
			}
			up := crm.ContactUpdate{ID: "3", Properties: map[string]string{
				crm.PropStatus: crm.StatusUnsubscribed, crm.PropLists: "a;b",
				crm.PropSyncedAt: "2026-03-01T10:00:00Z", crm.PropReason: "unsubscribed in CC",
			}}
			if res, err := c.BatchUpdateContacts(ctx, []crm.ContactUpdate{up}); err != nil || len(res.Updated) != 1 {
				t.Errorf("write-back to the ensured properties: %+v, %v", res, err)
			}
		})
	}
}
