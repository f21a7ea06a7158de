package trace_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
	"github.com/hs2cc/hs2cc/trace"
)

// TestTraceLive: the live check reads the contact from the CC sandbox in
// one call and names its lists by the names the bridge's imports gave
// their ids; it tells a contact that unsubscribed in CC, one CC never got,
// and a trace with no CC client apart.
func TestTraceLive(t *testing.T) {
	ctx := t.Context()
	db := storetest.MySQL(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	db.SetClock(clk.now)
	sb := ccsandbox.New(ccsandbox.Options{Now: clk.now, RateLimit: -1, TokenRateLimit: -1, ActivityDelay: -1})
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	access, _ := sb.IssueToken("contact_data offline_access")
	cc, err := ccclient.New(ts.URL+"/v3", ccclient.StaticToken(access), ccclient.WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := routing.Parse([]byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	core := ingest.New(ingest.Config{Router: rules, Logger: slog.New(slog.DiscardHandler)}, db, noQueue{})
	lists := []string{"Gold Agents", "New Agents"}
	ids := []string{sb.CreateList(lists[0]).ListID, sb.CreateList(lists[1]).ListID}

	// Ann and Zoe are imported as far as the bridge knows; CC got Ann only.
	for i, email := range []string{"ann@example.com", "zoe@example.com"} {
		b := fmt.Appendf(nil, `{"portalId":62515,"hs_object_id":"%d","email":%q,"agent_tier":"gold"}`, 200+i, email)
		res, err := core.Ingest(ctx, b, hubspot.Verified{Version: hubspot.V3}, t0)
		if err != nil {
			t.Fatal(err)
		}
		imp, err := db.ClaimImport(ctx, email, store.ListKey(lists), []int64{res.EnrollmentID})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SubmitImport(ctx, imp.ID, lists, ids, "act-"+email, "completed"); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cc.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: []ccclient.ImportContact{{Email: "ann@example.com"}}, ListIDs: ids}); err != nil {
		t.Fatal(err)
	}
	annID := sb.Contacts()[0].ContactID
	head := "CC now (2026-03-02 09:00:00 UTC): "

	tests := []struct {
		name        string
		key         string
		cc          trace.CC
		unsubscribe bool
		want        string
		wantCalls   int
	}{
		{name: "on its lists", key: "ann@example.com", cc: cc, wantCalls: 1,
			want: head + "contact " + annID + ", email status implicit, on lists Gold Agents, New Agents"},
		{name: "by HubSpot id", key: "200", cc: cc, wantCalls: 1,
			want: head + "contact " + annID + ", email status implicit, on lists Gold Agents, New Agents"},
		{name: "unsubscribed in CC", key: "ann@example.com", cc: cc, unsubscribe: true, wantCalls: 1,
			want: head + "contact " + annID + ", email status unsubscribed, on lists (none); missing from Gold Agents, New Agents, which the bridge imported it onto"},
		{name: "never reached CC", key: "zoe@example.com", cc: cc, wantCalls: 1,
			want: head + "no contact with the email zoe@example.com; the bridge imported it onto Gold Agents, New Agents"},
		{name: "no CC client", key: "zoe@example.com", wantCalls: 0,
			want: head + "could not ask: no Constant Contact client is configured"},
	}
	for _, tt := range tests {
		if tt.unsubscribe {
			sb.Unsubscribe(tt.key)
		}
		before := sb.Stats().Requests["GET /v3/contacts"]
		s, err := trace.Build(ctx, db, tt.key, trace.Options{Live: true, CC: tt.cc, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		lines := trace.Lines(s)
		if got := lines[len(lines)-1]; got != tt.want {
			t.Errorf("%s: last line\n%s\nwant\n%s", tt.name, got, tt.want)
		}
		if n := sb.Stats().Requests["GET /v3/contacts"] - before; n != tt.wantCalls {
			t.Errorf("%s: %d CC calls, want %d", tt.name, n, tt.wantCalls)
		}
	}
}
