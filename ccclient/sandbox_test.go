package ccclient_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox/ccspec"
)

// These tests run the real client against the CC sandbox over HTTP, with
// every /v3 request the client sends and every response the sandbox gives
// validated against CC's official spec by ccspec: a violation on either
// side fails the test.

// epoch is where each sandbox clock starts: a weekday noon in UTC. The clock
// stands still unless a test moves it with Advance, so activities, token
// lifetimes, rate limits and quotas only change when a test says so.
var epoch = time.Date(2026, 4, 28, 12, 0, 0, 0, time.UTC)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$`)

// startSandbox starts a sandbox behind the spec recorder. Unless opts says
// otherwise its clock is frozen at epoch and the API and token-endpoint rate
// limits are off, because a frozen clock never refills a bucket.
func startSandbox(t *testing.T, opts ccsandbox.Options) (*ccsandbox.Server, *httptest.Server) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return epoch }
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	if opts.TokenRateLimit == 0 {
		opts.TokenRateLimit = -1
	}
	sb := ccsandbox.New(opts)
	ts := httptest.NewServer(ccspec.New(t).Wrap(sb))
	t.Cleanup(ts.Close) // runs before the recorder reports
	return sb, ts
}

// newClient returns a client for the sandbox's API.
func newClient(t *testing.T, ts *httptest.Server, src ccclient.TokenSource) *ccclient.Client {
	t.Helper()
	c, err := ccclient.New(ts.URL+"/v3", src, ccclient.WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sandboxClient is a fresh sandbox and a client holding a valid token.
func sandboxClient(t *testing.T, opts ccsandbox.Options) (*ccsandbox.Server, *ccclient.Client) {
	t.Helper()
	sb, ts := startSandbox(t, opts)
	access, _ := sb.IssueToken("contact_data offline_access")
	return sb, newClient(t, ts, ccclient.StaticToken(access))
}

// apiError returns err's *APIError, failing the test if there is none.
func apiError(t *testing.T, err error) *ccclient.APIError {
	t.Helper()
	var ae *ccclient.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T): want a *ccclient.APIError", err, err)
	}
	return ae
}

func TestSandboxContactLists(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sb, c := sandboxClient(t, ccsandbox.Options{})

	want := []struct{ name, description string }{
		{"New Agents", "Agents who signed up through HubSpot"},
		{"Agents – Zürich & Genève", ""}, // non-ASCII and & must survive the name filter's query string
		{"Partners/Suppliers 100%", "slash and percent"},
	}
	var created []*ccclient.ContactList
	for _, w := range want {
		l, err := c.CreateContactList(ctx, w.name, w.description)
		if err != nil {
			t.Fatalf("CreateContactList(%q): %v", w.name, err)
		}
		if !uuidRE.MatchString(l.ListID) || l.Name != w.name || l.Description != w.description || !l.CreatedAt.Equal(epoch) {
			t.Errorf("created %+v, want a UUID, name %q, description %q, created at %s", l, w.name, w.description, epoch)
		}
		created = append(created, l)
	}

	_, err := c.CreateContactList(ctx, want[0].name, "again")
	if ae := apiError(t, err); !ae.Conflict() {
		t.Errorf("duplicate name: %v, want a 409 conflict", err)
	}

	lists, err := c.ContactLists(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != len(want) {
		t.Fatalf("ContactLists returned %d lists, want %d: %+v", len(lists), len(want), lists)
	}
	for i, l := range lists {
		if l.ListID != created[i].ListID || l.Name != want[i].name || l.Description != want[i].description {
			t.Errorf("list %d = %+v, want %+v", i, l, *created[i])
		}
	}

	tests := []struct {
		name    string
		wantID  string
		wantErr error
	}{
		{want[0].name, created[0].ListID, nil},
		{want[1].name, created[1].ListID, nil},
		{want[2].name, created[2].ListID, nil},
		{"New", "", ccclient.ErrNotFound},    // a prefix is no match
		{"Absent", "", ccclient.ErrNotFound}, // nothing like it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := c.ContactListByName(ctx, tt.name)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("ContactListByName = %+v, %v; want %v", l, err, tt.wantErr)
				}
				return
			}
			if err != nil || l.ListID != tt.wantID || l.Name != tt.name {
				t.Errorf("ContactListByName = %+v, %v; want list %s named %q", l, err, tt.wantID, tt.name)
			}
		})
	}
	if got := sb.Stats().Requests["unmatched"]; got != 0 {
		t.Errorf("the client called %d routes the sandbox does not serve", got)
	}
}

// TestSandboxDeleteContactList deletes a list whose id the client cached, as
// a person might in CC's UI behind the bridge's back, and checks what the
// client sees afterwards.
func TestSandboxDeleteContactList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sb, ts := startSandbox(t, ccsandbox.Options{ActivityDelay: -1})
	access, _ := sb.IssueToken("contact_data offline_access")
	c := newClient(t, ts, ccclient.StaticToken(access))

	var lists []*ccclient.ContactList
	for _, name := range []string{"Agents", "Brokers"} {
		l, err := c.CreateContactList(ctx, name, "")
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, l)
	}
	agents, brokers := lists[0], lists[1]
	amy := []ccclient.ImportContact{{Email: "amy@example.com"}}
	if _, err := c.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: amy, ListIDs: []string{agents.ListID, brokers.ListID}}); err != nil {
		t.Fatal(err)
	}

	// Refused deletions first; each must leave Agents in place.
	refused := []struct {
		name   string
		client *ccclient.Client
		listID string
		check  func(error) bool
	}{
		{"unknown list", c, "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", func(err error) bool { return errors.Is(err, ccclient.ErrNotFound) }},
		{"invalid token", newClient(t, ts, ccclient.StaticToken("not-a-token")), agents.ListID, func(err error) bool {
			var ae *ccclient.APIError
			return errors.As(err, &ae) && ae.Unauthorized() && !errors.Is(err, ccclient.ErrNotFound)
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.client.DeleteContactList(ctx, tt.listID); !tt.check(err) {
				t.Errorf("DeleteContactList(%s) = %v: wrong error", tt.listID, err)
			}
			if l, err := c.ContactListByName(ctx, "Agents"); err != nil || l.ListID != agents.ListID {
				t.Errorf("Agents after a refused delete: %+v, %v", l, err)
			}
		})
	}

	if err := c.DeleteContactList(ctx, agents.ListID); err != nil {
		t.Fatalf("DeleteContactList: %v", err)
	}
	if l, err := c.ContactListByName(ctx, "Agents"); !errors.Is(err, ccclient.ErrNotFound) {
		t.Errorf("ContactListByName(Agents) after the delete = %+v, %v; want ErrNotFound", l, err)
	}
	all, err := c.ContactLists(ctx)
	if err != nil || len(all) != 1 || all[0].ListID != brokers.ListID {
		t.Errorf("ContactLists after the delete = %+v, %v; want Brokers alone", all, err)
	}
	got, err := c.Contacts(ctx, []string{brokers.ListID})
	if err != nil || len(got) != 1 || !slices.Equal(got[0].ListMemberships, []string{brokers.ListID}) {
		t.Errorf("Contacts after the delete = %+v, %v; want amy on Brokers alone", got, err)
	}
	for _, sc := range sb.Contacts() {
		if slices.Contains(sc.ListIDs, agents.ListID) {
			t.Errorf("sandbox contact %s is still on the deleted list", sc.Email)
		}
	}

	// The cached id is now worthless: imports naming it are refused, and
	// deleting it again is a 404.
	_, err = c.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: amy, ListIDs: []string{agents.ListID}})
	if ae := apiError(t, err); ae.StatusCode != http.StatusBadRequest {
		t.Errorf("import naming the deleted list: %v, want a 400", err)
	}
	if err := c.DeleteContactList(ctx, agents.ListID); !errors.Is(err, ccclient.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}

	again, err := c.CreateContactList(ctx, "Agents", "")
	if err != nil || !uuidRE.MatchString(again.ListID) || again.ListID == agents.ListID {
		t.Errorf("Agents created again = %+v, %v; want a new list_id (the deleted one was %s)", again, err, agents.ListID)
	}
	if got := sb.Stats().Requests["DELETE /v3/contact_lists/{list_id}"]; got != 4 {
		t.Errorf("%d delete requests reached the sandbox, want 4", got)
	}
	if got := sb.Stats().Requests["unmatched"]; got != 0 {
		t.Errorf("the client called %d routes the sandbox does not serve", got)
	}
}

// TestSandboxImportRoundTrip imports contacts with every kind of field the
// bridge sends, follows the activity to completion, and reads the contacts
// back through the client and from the sandbox.
func TestSandboxImportRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const delay = 2 * time.Second
	sb, c := sandboxClient(t, ccsandbox.Options{ActivityDelay: delay})
	agency := sb.CreateCustomField("Agency ID")
	iata := sb.CreateCustomField("IATA")

	var listIDs []string
	for _, name := range []string{"New Agents", "Imported"} {
		l, err := c.CreateContactList(ctx, name, "")
		if err != nil {
			t.Fatal(err)
		}
		listIDs = append(listIDs, l.ListID)
	}
	other, err := c.CreateContactList(ctx, "Untouched", "")
	if err != nil {
		t.Fatal(err)
	}

	contacts := []ccclient.ImportContact{
		{
			Email: "zoe.nunez@example.com", FirstName: "Zoë", LastName: "Núñez-Øster", JobTitle: "Agent <Senior>",
			CompanyName: "Reisebüro Müller & Söhne", Phone: "555-555-0100",
			Street: "Bahnhofstraße 1", Street2: "3. Stock", City: "Zürich", State: "ZH", Zip: "8001", Country: "Schweiz",
			BirthdayMonth: 2, BirthdayDay: 29,
			CustomFields: map[string]string{agency.Name: "A-1001", iata.Name: "日本語 12345678"},
		},
		{Email: "Bo@Example.com", FirstName: "Bo", LastName: "Lee"},
		{Email: "no.name@example.com"},
	}
	a, err := c.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: contacts, ListIDs: listIDs})
	if err != nil {
		t.Fatalf("ImportContacts: %v", err)
	}
	if !uuidRE.MatchString(a.ActivityID) || a.State != ccclient.StateInitialized || a.Final() ||
		a.Links.Self.Href != "/v3/activities/"+a.ActivityID {
		t.Errorf("queued activity %+v: want an initialized activity with a self link", a)
	}

	// Poll as the worker does; the clock moves half the delay between polls.
	var states []string
	for range 5 {
		a, err = c.GetActivity(ctx, a.ActivityID)
		if err != nil {
			t.Fatalf("GetActivity: %v", err)
		}
		states = append(states, a.State)
		if a.Final() {
			break
		}
		sb.Advance(delay / 2)
	}
	if want := []string{ccclient.StateInitialized, ccclient.StateProcessing, ccclient.StateCompleted}; !slices.Equal(states, want) {
		t.Fatalf("activity states %q, want %q", states, want)
	}
	if !a.Clean() || a.PercentDone != 100 || a.Status.PersonCount != len(contacts) ||
		a.Status.ItemsTotalCount != len(contacts) || !a.CompletedAt.Equal(epoch.Add(delay)) {
		t.Errorf("completed activity %+v: want clean, 100%%, %d people, completed at %s", a, len(contacts), epoch.Add(delay))
	}

	_, err = c.GetActivity(ctx, "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a")
	if !errors.Is(err, ccclient.ErrNotFound) {
		t.Errorf("unknown activity: %v, want ErrNotFound", err)
	}

	for _, tt := range []struct {
		state string
		want  bool
	}{{"", true}, {ccclient.StateCompleted, true}, {ccclient.StateProcessing, false}} {
		acts, err := c.Activities(ctx, tt.state)
		if err != nil {
			t.Fatalf("Activities(%q): %v", tt.state, err)
		}
		found := slices.ContainsFunc(acts, func(x ccclient.Activity) bool {
			return x.ActivityID == a.ActivityID && x.State == ccclient.StateCompleted && x.Status.PersonCount == len(contacts)
		})
		if found != tt.want {
			t.Errorf("Activities(%q) = %+v: completed import listed %v, want %v", tt.state, acts, found, tt.want)
		}
	}

	got, err := c.Contacts(ctx, []string{listIDs[0], other.ListID})
	if err != nil {
		t.Fatal(err)
	}
	type view struct{ email, first, last, permission string }
	var views []view
	for _, ct := range got {
		views = append(views, view{ct.Email, ct.FirstName, ct.LastName, ct.PermissionToSend})
		if !uuidRE.MatchString(ct.ContactID) || !slices.Equal(ct.ListMemberships, listIDs) {
			t.Errorf("contact %s: id %q, lists %q; want a UUID and lists %q", ct.Email, ct.ContactID, ct.ListMemberships, listIDs)
		}
	}
	wantViews := []view{
		{"zoe.nunez@example.com", "Zoë", "Núñez-Øster", "implicit"},
		{"bo@example.com", "Bo", "Lee", "implicit"}, // CC keeps addresses lower-cased
		{"no.name@example.com", "", "", "implicit"},
	}
	if !slices.Equal(views, wantViews) {
		t.Errorf("Contacts = %+v, want %+v", views, wantViews)
	}

	// What the API does not show the client, the sandbox does.
	var zoe ccsandbox.SandboxContact
	for _, sc := range sb.Contacts() {
		if sc.Email == contacts[0].Email {
			zoe = sc
		}
	}
	wantFields := map[string]string{
		"job_title": "Agent <Senior>", "company_name": "Reisebüro Müller & Söhne", "phone": "555-555-0100",
		"street": "Bahnhofstraße 1", "street2": "3. Stock", "city": "Zürich", "state": "ZH", "zip": "8001", "country": "Schweiz",
	}
	for k, v := range wantFields {
		if zoe.Fields[k] != v {
			t.Errorf("stored %s = %q, want %q", k, zoe.Fields[k], v)
		}
	}
	if zoe.BirthdayMonth != 2 || zoe.BirthdayDay != 29 {
		t.Errorf("stored birthday %d/%d, want 2/29", zoe.BirthdayMonth, zoe.BirthdayDay)
	}
	if want := contacts[0].CustomFields; !maps.Equal(zoe.CustomFields, want) {
		t.Errorf("stored custom fields %q, want %q", zoe.CustomFields, want)
	}
}

// TestSandboxContactsPaging reads more contacts than fit on one page (500)
// from more lists than one request may name (25): the client must follow
// the sandbox's cursor links and merge the per-chunk results, each contact
// once.
func TestSandboxContactsPaging(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sb, c := sandboxClient(t, ccsandbox.Options{ActivityDelay: -1})

	var lists []string
	for i := range 26 {
		l, err := c.CreateContactList(ctx, fmt.Sprintf("List %02d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, l.ListID)
	}
	rows := func(prefix string, n int) []ccclient.ImportContact {
		var out []ccclient.ImportContact
		for i := range n {
			out = append(out, ccclient.ImportContact{Email: fmt.Sprintf("%s%03d@example.com", prefix, i)})
		}
		return out
	}
	imports := []struct {
		contacts []ccclient.ImportContact
		lists    []string
	}{
		{rows("first", 505), lists[:1]},                  // two pages in the first 25-list chunk
		{rows("both", 1), []string{lists[0], lists[25]}}, // in both chunks
		{rows("last", 4), lists[25:]},                    // only in the second chunk
	}
	var want []string
	for _, im := range imports {
		a, err := c.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: im.contacts, ListIDs: im.lists})
		if err != nil {
			t.Fatal(err)
		}
		if a, err = c.GetActivity(ctx, a.ActivityID); err != nil || !a.Clean() {
			t.Fatalf("activity %+v, %v: want clean and completed", a, err)
		}
		for _, ct := range im.contacts {
			want = append(want, ct.Email)
		}
	}

	before := sb.Stats().Requests["GET /v3/contacts"]
	got, err := c.Contacts(ctx, lists)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, ct := range got {
		emails = append(emails, ct.Email)
	}
	if !slices.Equal(emails, want) {
		t.Errorf("Contacts returned %d contacts, want %d in import order, each once", len(emails), len(want))
	}
	// Chunk 1 (25 lists): 506 contacts on two pages; chunk 2: 5 on one.
	if n := sb.Stats().Requests["GET /v3/contacts"] - before; n != 3 {
		t.Errorf("Contacts made %d requests, want 3", n)
	}
	if got, err := c.Contacts(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Contacts(nil) = %d contacts, %v; want none", len(got), err)
	}
}

// swapToken is a TokenSource that, when told its token is bad, takes the
// next one from mint, as the bridge's store-backed source refreshes.
type swapToken struct {
	mu          sync.Mutex
	tok         string
	mint        func() string
	invalidated []string
}

func (s *swapToken) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok, nil
}

func (s *swapToken) Invalidate(_ context.Context, bad string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, bad)
	if bad == s.tok {
		s.tok = s.mint()
	}
	return nil
}

// TestSandboxUnauthorizedRetry sends an import with an expired token: the
// client must invalidate it and resend the same body once with the fresh
// token, and must not retry when the source has nothing newer.
func TestSandboxUnauthorizedRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		mint         func(sb *ccsandbox.Server, expired string) string
		wantOK       bool
		wantRequests int
	}{
		{"fresh token", func(sb *ccsandbox.Server, _ string) string { a, _ := sb.IssueToken(""); return a }, true, 2},
		{"same token again", func(_ *ccsandbox.Server, expired string) string { return expired }, false, 1},
		{"fresh token also refused", func(*ccsandbox.Server, string) string { return "never-issued" }, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			sb, ts := startSandbox(t, ccsandbox.Options{ActivityDelay: -1})
			list := sb.CreateList("New Agents").ListID
			expired, _ := sb.IssueToken("")
			sb.Advance(ccsandbox.DefaultTokenTTL)
			src := &swapToken{tok: expired}
			src.mint = func() string { return tt.mint(sb, expired) }
			c := newClient(t, ts, src)

			req := &ccclient.ImportRequest{ImportData: []ccclient.ImportContact{{Email: "ann@example.com", FirstName: "Ann"}}, ListIDs: []string{list}}
			a, err := c.ImportContacts(ctx, req)
			if !slices.Equal(src.invalidated, []string{expired}) {
				t.Errorf("invalidated %d tokens, want exactly the expired one", len(src.invalidated))
			}
			st := sb.Stats()
			if n := st.Requests["POST /v3/activities/contacts_json_import"]; n != tt.wantRequests {
				t.Errorf("%d import requests, want %d", n, tt.wantRequests)
			}
			if !tt.wantOK {
				if ae := apiError(t, err); !ae.Unauthorized() || a != nil {
					t.Errorf("ImportContacts = %+v, %v; want a 401", a, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ImportContacts after a token swap: %v", err)
			}
			if st.Unauthorized != 1 {
				t.Errorf("sandbox refused %d calls, want 1", st.Unauthorized)
			}
			// The retried body is the original one.
			if _, err := c.GetActivity(ctx, a.ActivityID); err != nil {
				t.Fatal(err)
			}
			cs := sb.Contacts()
			if len(cs) != 1 || cs[0].Email != "ann@example.com" || cs[0].FirstName != "Ann" || !slices.Equal(cs[0].ListIDs, []string{list}) {
				t.Errorf("sandbox contacts %+v, want Ann on the list", cs)
			}
		})
	}
}

// TestSandboxRateLimits checks that CC's 429s come back as *APIError with
// the right classification, and that the call works once the limit resets.
func TestSandboxRateLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      ccsandbox.Options
		calls     int           // that succeed before the 429
		wait      time.Duration // after which a call succeeds again
		throttled bool          // else quota exceeded
	}{
		{"per-second limit", ccsandbox.Options{RateLimit: 2}, 2, time.Second, true},
		{"daily quota", ccsandbox.Options{DailyQuota: 3}, 3, 12 * time.Hour, false}, // noon to midnight UTC
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			sb, c := sandboxClient(t, tt.opts)
			for i := range tt.calls {
				if _, err := c.ContactLists(ctx); err != nil {
					t.Fatalf("call %d: %v", i+1, err)
				}
			}
			_, err := c.ContactLists(ctx)
			ae := apiError(t, err)
			if ae.StatusCode != http.StatusTooManyRequests || ae.Throttled() != tt.throttled ||
				ae.QuotaExceeded() == tt.throttled || !ae.Temporary() || ae.Unauthorized() {
				t.Errorf("error %v: status %d, throttled %v, quota exceeded %v, temporary %v; want 429, throttled %v",
					ae, ae.StatusCode, ae.Throttled(), ae.QuotaExceeded(), ae.Temporary(), tt.throttled)
			}
			if ae.RequestID == "" {
				t.Error("429 carries no x-amzn-RequestId")
			}
			sb.Advance(tt.wait)
			if _, err := c.ContactLists(ctx); err != nil {
				t.Errorf("after %s: %v", tt.wait, err)
			}
		})
	}
}

// TestSandboxOAuth runs the authorization-code flow through the sandbox's
// OAuth server: consent URL, the redirect back with a code, the exchange,
// and rotating refreshes, whose used refresh token is dead afterwards.
func TestSandboxOAuth(t *testing.T) {
	t.Parallel()
	const redirect = "https://hooks.example.com/oauth/callback"
	tests := []struct {
		name   string
		secret string
		pkce   bool
	}{
		{"confidential client with PKCE", ccsandbox.DefaultClientSecret, true},
		{"confidential client without PKCE", ccsandbox.DefaultClientSecret, false},
		{"public client with PKCE", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			sb, ts := startSandbox(t, ccsandbox.Options{})
			cfg := ccclient.OAuthConfig{
				ClientID:     ccsandbox.DefaultClientID,
				ClientSecret: tt.secret,
				AuthURL:      ts.URL + "/oauth2/default/v1",
				RedirectURL:  redirect,
				HTTPClient:   ts.Client(),
			}
			var verifier string
			if tt.pkce {
				verifier = ccclient.NewVerifier()
			}
			const state = "st-123"

			// The browser's part: the sandbox approves at once and redirects.
			browser := &http.Client{
				Transport:     ts.Client().Transport,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			res, err := browser.Get(cfg.AuthCodeURL(state, verifier))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			loc, err := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusFound || err != nil {
				t.Fatalf("authorize: %d to %q (%v), want 302", res.StatusCode, res.Header.Get("Location"), err)
			}
			back := loc.Query()
			if loc.Scheme+"://"+loc.Host+loc.Path != redirect || back.Get("state") != state || back.Get("code") == "" || back.Get("error") != "" {
				t.Fatalf("redirected to %s: want %s with state %q and a code", loc, redirect, state)
			}

			tok, err := cfg.Exchange(ctx, back.Get("code"), verifier)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Scope != "contact_data offline_access" ||
				!tok.ExpiresAt.After(time.Now()) {
				t.Errorf("exchanged %v (scope %q), want both tokens, the default scopes and an expiry", tok, tok.Scope)
			}
			if _, err := cfg.Exchange(ctx, back.Get("code"), verifier); !ccclient.IsInvalidGrant(err) {
				t.Errorf("second exchange of the code: %v, want invalid_grant", err)
			}

			// Each refresh rotates: the new pair works, the old refresh token is dead.
			prev := tok
			for i := range 2 {
				next, err := cfg.Refresh(ctx, prev.RefreshToken)
				if err != nil {
					t.Fatalf("refresh %d: %v", i+1, err)
				}
				if next.AccessToken == prev.AccessToken || next.RefreshToken == prev.RefreshToken || next.RefreshToken == "" {
					t.Errorf("refresh %d returned the old tokens, want a new pair", i+1)
				}
				if _, err := cfg.Refresh(ctx, prev.RefreshToken); !ccclient.IsInvalidGrant(err) {
					t.Errorf("refresh %d: reusing the old refresh token: %v, want invalid_grant", i+1, err)
				}
				prev = next
			}

			// Both the exchanged and the refreshed access tokens open the API.
			for _, access := range []string{tok.AccessToken, prev.AccessToken} {
				if _, err := newClient(t, ts, ccclient.StaticToken(access)).ContactLists(ctx); err != nil {
					t.Errorf("API call with an issued access token: %v", err)
				}
			}
			if g := sb.Stats().TokenGrants; g["authorization_code"] != 1 || g["refresh_token"] != 2 {
				t.Errorf("sandbox granted %v, want 1 authorization_code and 2 refresh_token", g)
			}
		})
	}
}
