package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// TestWhatCCReallySends runs the bridge, deployed in the README's order,
// against a sandbox that behaves as CC does where it hurts: it refuses some
// rows of an import one by one, and drops the values of custom fields the
// account does not have.
func TestWhatCCReallySends(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	hs2ccBinary(t)

	// CC refuses one row in a thousand: those rows are rejected with CC's
	// message, every other row is imported and listed, no import is posted
	// again for them, and a replay of failed rows leaves them alone.
	t.Run("refused rows", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, []string{"--cc-reject-rate", "0.001", "--cc-seed", "5"},
			map[string]string{"HS2CC_ROUTES": writeRoutes(t, routesCreating)})
		d.connect()
		d.send(10_000)
		var c map[string]int
		waitFor(t, "every row settled", 3*time.Minute, func() bool {
			c = d.counts()
			return c[store.StatusImported]+c[store.StatusRejected] == d.sent
		})
		st := d.stats()
		t.Logf("enrollments %v; CC refused %d rows; %d imports", c, st.RowsRejected, st.Imports)
		if c[store.StatusRejected] == 0 || c[store.StatusRejected] != st.RowsRejected {
			t.Errorf("%d rows rejected, CC refused %d; want the same, and some", c[store.StatusRejected], st.RowsRejected)
		}
		rows, err := d.db.SQL().Query(`SELECT status_reason FROM enrollments WHERE status = ?`, store.StatusRejected)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var reason string
			if err := rows.Scan(&reason); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(reason, "Constant Contact refused this row: ") || len(reason) < 40 {
				t.Errorf("a rejected row's reason %q does not give CC's message", reason)
			}
		}
		rows.Close()
		if n, _ := d.listed(); n != c[store.StatusImported] {
			t.Errorf("%d contacts on their lists, want every imported row (%d)", n, c[store.StatusImported])
		}
		if st.Requests["POST /v3/activities/contacts_json_import"] != st.Imports {
			t.Errorf("%d imports posted, %d accepted: refused rows must not be posted again", st.Requests["POST /v3/activities/contacts_json_import"], st.Imports)
		}
		var posted int
		if err := d.db.SQL().QueryRow(`SELECT COUNT(*) FROM cc_imports WHERE activity_id IS NOT NULL`).Scan(&posted); err != nil || posted != st.Imports {
			t.Errorf("%d imports recorded (%v), CC accepted %d", posted, err, st.Imports)
		}
		out, err := d.command("replay", "--status", "failed")
		if err != nil || !strings.Contains(out, "0 enrollments match") {
			t.Errorf("replay of failed rows: %v\n%s\nwant nothing to replay: the refused rows are rejected", err, out)
		}
		out, err = d.command("replay", "--status", "rejected", "--dry-run")
		if want := fmt.Sprintf("%d enrollments match", c[store.StatusRejected]); err != nil || !strings.Contains(out, want) {
			t.Errorf("replay --status rejected --dry-run: %v\n%s\nwant %q: they go again only when asked", err, out, want)
		}
		d.stillRunning()
		d.stop()
	})

	// A workflow that "includes all properties" sends the whole contact
	// with each property's history: a 600 KB body is taken, stored whole
	// and imported like any other.
	t.Run("a 600 KB contact", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, nil, map[string]string{"HS2CC_ROUTES": writeRoutes(t, routesCreating)})
		d.connect()
		body := longHistoryBody(t, 62515, 41_000_001, 300)
		if len(body) < 500_000 {
			t.Fatalf("the fixture is %d bytes, want about 600 KB", len(body))
		}
		req, _ := http.NewRequest(http.MethodPost, d.base+"/webhooks/hubspot", bytes.NewReader(body))
		for k, v := range hubspot.Sign(d.secret, http.MethodPost, d.base+"/webhooks/hubspot", body, time.Now()) {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a signed 600 KB body answered %d, want 202", resp.StatusCode)
		}
		d.sent++
		var stored int
		if err := d.db.SQL().QueryRow(`SELECT LENGTH(body) FROM deliveries`).Scan(&stored); err != nil || stored != len(body) {
			t.Errorf("stored %d bytes (%v), want the whole %d", stored, err, len(body))
		}
		d.waitListed(2 * time.Minute)
		d.waitImported()
		d.stop()
	})

	// The rules map a HubSpot property to a custom field the account does
	// not have: created when the rules allow it, else named as attention
	// while the imports wait, until a person creates it in CC.
	fieldRules := func(create bool) string {
		return fmt.Sprintf(`default_lists: ["New Agents"]
create_missing_lists: true
create_missing_fields: %v
fields:
  first_name: "@first_name"
  "cf:agent_tier": agent_tier
`, create)
	}
	tierOf := func(d *deployment) (int, string) {
		var body struct{ Contacts []ccsandbox.SandboxContact }
		d.get(d.ccBase+"/sandbox/contacts", &body)
		n := 0
		for _, c := range body.Contacts {
			switch v := c.CustomFields["agent_tier"]; v {
			case "gold", "silver", "bronze":
				n++
			default:
				return n, fmt.Sprintf("%s has agent_tier %q", c.Email, v)
			}
		}
		return n, ""
	}
	t.Run("a custom field the rules may create", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, nil, map[string]string{"HS2CC_ROUTES": writeRoutes(t, fieldRules(true))})
		d.connect()
		d.send(200)
		d.waitListed(2 * time.Minute)
		if n, wrong := tierOf(d); n != d.sent {
			t.Errorf("%d contacts carry agent_tier, want %d: %s", n, d.sent, wrong)
		}
		d.stop()
	})
	t.Run("a custom field missing in CC", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, nil, map[string]string{"HS2CC_ROUTES": writeRoutes(t, fieldRules(false))})
		d.connect()
		d.send(200)
		var ops struct {
			Attention []struct{ Kind, Subject, Detail string }
		}
		waitFor(t, "/ops to name the missing field", time.Minute, func() bool {
			d.get(d.base+"/ops/status.json", &ops)
			return len(ops.Attention) == 1 && ops.Attention[0].Kind == store.AttentionMissingField &&
				ops.Attention[0].Subject == "agent_tier"
		})
		if out, err := d.command("status"); err == nil || !strings.Contains(out, `CC custom field "agent_tier"`) {
			t.Errorf("hs2cc status exited %v, want 1 naming the field:\n%s", err, out)
		}
		if c := d.counts(); c[store.StatusPending] != d.sent {
			t.Errorf("enrollments %v while the field is missing, want all %d pending: CC would drop the field", c, d.sent)
		}
		if st := d.stats(); st.Imports != 0 {
			t.Errorf("%d imports while the field is missing, want none", st.Imports)
		}
		// A person creates the field in CC, through CC's own API.
		d.inCC(t, "/v3/contact_custom_fields", `{"label":"agent_tier","type":"string"}`)
		d.waitListed(time.Minute)
		if n, wrong := tierOf(d); n != d.sent {
			t.Errorf("%d contacts carry agent_tier, want %d: %s", n, d.sent, wrong)
		}
		d.stop()
	})
}
