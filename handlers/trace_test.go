package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/trace"
)

// fakeTracer answers every email but one as a known contact and records
// what it was asked.
type fakeTracer struct {
	mu    sync.Mutex
	asked []string
}

func (f *fakeTracer) Trace(_ context.Context, key string, live bool) (*trace.Story, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := key
	if live {
		q += " live"
	}
	f.asked = append(f.asked, q)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	if key == "nobody@example.com" {
		return &trace.Story{Query: key, Closest: []string{"nobody1@example.com"}}, nil
	}
	s := &trace.Story{Query: key, Found: true,
		Contacts: []trace.Contact{{EnrollmentID: 7, Email: key, HubSpotID: "101", Version: 2, Status: "rejected",
			StatusReason: "<b>too long</b>", Lists: []string{"Gold Agents"}}},
		Events: []trace.Event{{At: at, Kind: trace.KindDelivery, Text: "delivery 1 (workflow, signature v3): accepted as version 1 of enrollment 7"}}}
	if live {
		s.Live = &trace.Live{CheckedAt: at, Email: key, InCC: true, ContactID: "c-1", EmailStatus: "unsubscribed",
			Lists: []string{}, Expected: []string{"Gold Agents"}, Missing: []string{"Gold Agents"}}
	}
	return s, nil
}

func (f *fakeTracer) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

// TestTracePage: a viewer finds a contact from the search box on /ops, sees
// its story escaped, asks CC from the page's own button, is told about an
// unknown contact with links to the closest; a "check CC now" from another
// site asks nothing of CC; the page runs under the ops CSP, which lets its
// forms submit to the site itself.
func TestTracePage(t *testing.T) {
	ft := &fakeTracer{}
	a := startOps(t, func(c *handlers.Config) { c.Trace = ft })

	home := a.as(t, http.MethodGet, "/ops", viewerName, viewerPass)
	if home.status != http.StatusOK || !strings.Contains(string(home.body), `<form method="get" action="/ops/trace">`) {
		t.Fatalf("/ops: %d, want the search box:\n%s", home.status, home.body)
	}
	tests := []struct {
		name      string
		query     string
		headers   []string
		want      []string
		wantAsked []string
	}{
		{name: "empty", query: "", want: []string{`name="q" value=""`}},
		{name: "known", query: "q=ann@example.com", wantAsked: []string{"ann@example.com"}, want: []string{
			"2026-03-02 09:00:00 UTC", "accepted as version 1 of enrollment 7", "&lt;b&gt;too long&lt;/b&gt;",
			`<input type="hidden" name="live" value="1">`, `value="ann@example.com"`}},
		{name: "live from the page", query: "q=ann@example.com&live=1", headers: []string{"Sec-Fetch-Site", "same-origin"},
			wantAsked: []string{"ann@example.com live"}, want: []string{"Constant Contact now",
				"contact c-1, email status unsubscribed, on lists (none); missing from Gold Agents"}},
		{name: "live from another site", query: "q=ann@example.com&live=1", headers: []string{"Sec-Fetch-Site", "cross-site"},
			wantAsked: []string{"ann@example.com"}, want: []string{"CC was not asked: the request came from another site."}},
		{name: "unknown", query: "q=nobody@example.com", wantAsked: []string{"nobody@example.com"}, want: []string{
			"The bridge has never seen <code>nobody@example.com</code>.", `<a href="/ops/trace?q=nobody1%40example.com">nobody1@example.com</a>`}},
		{name: "too long", query: "q=" + url.QueryEscape(strings.Repeat("a", 255)), want: []string{"longer than any email"}},
	}
	for _, tt := range tests {
		before := len(ft.calls())
		r := a.as(t, http.MethodGet, "/ops/trace?"+tt.query, viewerName, viewerPass, tt.headers...)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d\n%s", tt.name, r.status, r.body)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", tt.name, csp)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(r.body), w) {
				t.Errorf("%s: page lacks %q:\n%s", tt.name, w, r.body)
			}
		}
		if got := ft.calls()[before:]; strings.Join(got, "|") != strings.Join(tt.wantAsked, "|") {
			t.Errorf("%s: asked %q, want %q", tt.name, got, tt.wantAsked)
		}
	}
	if r := a.as(t, http.MethodGet, "/ops/trace?q=x@y.z", viewerName, "wrong"); r.status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", r.status)
	}
}
