package ccsandbox

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Patterns a client would use to read the two detailed activity_errors
// forms; the tests parse with them to prove the forms can be parsed.
var (
	lineEmailError = regexp.MustCompile(`^Line (\d+): ([^ :]+): (.+)$`)
	emailError     = regexp.MustCompile(`^([^ :]+): (.+)$`)
)

// listEmails returns the emails of the contacts on a list, through the API.
func (e *env) listEmails(listID string) []string {
	e.t.Helper()
	r := e.call(http.MethodGet, "/v3/contacts?limit=500&lists="+listID, nil)
	wantStatus(e.t, r, http.StatusOK)
	var p contactsPage
	r.decode(e.t, &p)
	return p.emails()
}

// sandboxEmails returns the emails /sandbox/contacts lists, in its order.
func (e *env) sandboxEmails() []string {
	e.t.Helper()
	r := e.call(http.MethodGet, "/sandbox/contacts", nil, withToken(""))
	wantStatus(e.t, r, http.StatusOK)
	var got struct {
		Contacts []SandboxContact `json:"contacts"`
	}
	r.decode(e.t, &got)
	out := []string{}
	for _, c := range got.Contacts {
		out = append(out, c.Email)
	}
	return out
}

func TestRejectRateOne(t *testing.T) {
	// Every row but the correctable one is refused. Row 2 is held as
	// correctable, as without RejectRate; row 3 is a contact that exists
	// already and must come out of the import untouched; row 4 has only an
	// SMS number, so it is named by that.
	rows := []map[string]any{
		row("email", "Ann@Example.com", "first_name", "Ann"),
		row("email", "not-an-email"),
		row("email", "old@example.com", "first_name", "New"),
		row("sms_number", "555-123-4567"),
	}
	tests := []struct {
		name       string
		detail     string // sent as reject_detail; "" sends none
		wantErrors []string
	}{
		{"default detail", "", []string{
			"Line 1: ann@example.com: The email address is not valid.",
			"Line 3: old@example.com: The contact could not be saved because the email address is blocked.",
			"Line 4: 5551234567: The SMS number is not valid.",
		}},
		{"line_email", RejectDetailLineEmail, []string{
			"Line 1: ann@example.com: The email address is not valid.",
			"Line 3: old@example.com: The contact could not be saved because the email address is blocked.",
			"Line 4: 5551234567: The SMS number is not valid.",
		}},
		{"email", RejectDetailEmail, []string{
			"ann@example.com: The email address is not valid.",
			"old@example.com: The contact could not be saved because the email address is blocked.",
			"5551234567: The SMS number is not valid.",
		}},
		{"count", RejectDetailCount, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1})
			before, after := e.srv.CreateList("Before").ListID, e.srv.CreateList("After").ListID
			e.importNow(importBody([]string{before}, row("email", "old@example.com", "first_name", "Old")))

			// The fault is switched on at run time, as `hs2cc dev` would.
			patch := `{"reject_rate":1}`
			if tt.detail != "" {
				patch = fmt.Sprintf(`{"reject_rate":1,"reject_detail":%q}`, tt.detail)
			}
			wantStatus(t, e.call(http.MethodPost, "/sandbox/faults", patch, withToken("")), http.StatusOK)
			a := e.importNow(importBody([]string{after}, rows...))

			want := map[string]int{
				"items_total_count": 4, "items_completed_count": 4, "person_count": 0,
				"error_count": 3, "correctable_count": 1, "cannot_add_to_list_count": 0,
			}
			for k, v := range want {
				if a.Status[k] != v {
					t.Errorf("status.%s = %d, want %d (%v)", k, a.Status[k], v, a.Status)
				}
			}
			if a.ActivityErrors == nil || !slices.Equal(a.ActivityErrors, tt.wantErrors) {
				t.Errorf("activity_errors\n got %q\nwant %q", a.ActivityErrors, tt.wantErrors)
			}
			if got := e.sandboxEmails(); !slices.Equal(got, []string{"old@example.com"}) {
				t.Errorf("/sandbox/contacts %q: want only the contact that was there before", got)
			}
			if old, _ := e.contactByEmail("old@example.com"); old.FirstName != "Old" || !slices.Equal(old.ListIDs, []string{before}) {
				t.Errorf("old %+v: a refused row must change no contact and join no list", old)
			}
			if got := e.listEmails(after); len(got) != 0 {
				t.Errorf("list After holds %q, want nobody", got)
			}
			st := e.srv.Stats()
			if st.RowsRejected != 3 || st.ImportRows != 5 {
				t.Errorf("RowsRejected %d, ImportRows %d; want 3, and 5 rows received by the two imports", st.RowsRejected, st.ImportRows)
			}
		})
	}
}

func TestRejectRateFraction(t *testing.T) {
	const n = 200
	var rows []map[string]any
	for i := 1; i <= n; i++ {
		rows = append(rows, row("email", fmt.Sprintf("r%03d@example.com", i), "first_name", fmt.Sprintf("R%d", i)))
	}
	emailOf := func(line int) string { return fmt.Sprintf("r%03d@example.com", line) }

	// run imports the rows with a reject rate of 0.3 and returns the
	// emails that were refused, judged by what is missing afterwards, after
	// checking that every view of the account agrees.
	run := func(t *testing.T, seed uint64, detail string) []string {
		t.Helper()
		e := newEnv(t, Options{ActivityDelay: -1, Seed: seed, RejectRate: 0.3, RejectDetail: detail})
		list := e.srv.CreateList("Agents").ListID
		a := e.importNow(importBody([]string{list}, rows...))

		var refused, kept []string
		for i := 1; i <= n; i++ {
			if _, ok := e.contactByEmail(emailOf(i)); ok {
				kept = append(kept, emailOf(i))
			} else {
				refused = append(refused, emailOf(i))
			}
		}
		// The bounds are about four standard deviations of a fair draw, so
		// only a wrong rate can fail them.
		if len(refused) < 34 || len(refused) > 86 {
			t.Errorf("%d of %d rows refused at a rate of 0.3, want 34 to 86", len(refused), n)
		}
		st := a.Status
		if st["items_total_count"] != n || st["items_completed_count"] != n || st["error_count"] != len(refused) ||
			st["person_count"] != len(kept) || st["correctable_count"] != 0 {
			t.Errorf("status %v: want %d items, %d errors, %d persons", st, n, len(refused), len(kept))
		}
		if got := e.sandboxEmails(); !slices.Equal(got, kept) {
			t.Errorf("/sandbox/contacts has %d contacts, want the %d accepted rows", len(got), len(kept))
		}
		if got := e.listEmails(list); !slices.Equal(got, kept) {
			t.Errorf("the list holds %d contacts, want the %d accepted rows", len(got), len(kept))
		}
		if s := e.srv.Stats(); s.RowsRejected != len(refused) || s.ImportRows != n {
			t.Errorf("RowsRejected %d, ImportRows %d; want %d and %d", s.RowsRejected, s.ImportRows, len(refused), n)
		}

		// The detailed forms name exactly the refused rows, in row order.
		var named []string
		for _, msg := range a.ActivityErrors {
			switch detail {
			case RejectDetailEmail:
				m := emailError.FindStringSubmatch(msg)
				if m == nil {
					t.Fatalf("activity error %q is not <email>: <message>", msg)
				}
				named = append(named, m[1])
			default:
				m := lineEmailError.FindStringSubmatch(msg)
				if m == nil {
					t.Fatalf("activity error %q is not Line N: <email>: <message>", msg)
				}
				line, _ := strconv.Atoi(m[1])
				if m[2] != emailOf(line) {
					t.Errorf("activity error %q: line %d holds %s", msg, line, emailOf(line))
				}
				named = append(named, m[2])
			}
		}
		switch detail {
		case RejectDetailCount:
			if len(a.ActivityErrors) != 0 {
				t.Errorf("activity_errors %q: the count form names no rows", a.ActivityErrors)
			}
		default:
			if !slices.Equal(named, refused) {
				t.Errorf("activity_errors name %d rows, want the %d refused ones:\n%q\n%q", len(named), len(refused), named, refused)
			}
		}
		return refused
	}

	// The detail changes only the wording, never which rows the seed
	// refuses, so every form of one seed must name the same rows.
	var first []string
	for _, detail := range []string{RejectDetailLineEmail, RejectDetailEmail, RejectDetailCount} {
		t.Run(detail, func(t *testing.T) {
			got := run(t, 11, detail)
			if first == nil {
				first = got
			} else if !slices.Equal(got, first) {
				t.Errorf("seed 11 refused other rows with detail %s:\n%q\n%q", detail, got, first)
			}
		})
	}
	t.Run("another seed", func(t *testing.T) {
		if got := run(t, 12, RejectDetailLineEmail); slices.Equal(got, first) {
			t.Error("seeds 11 and 12 refused the same rows")
		}
	})
}

func TestRejectRateEdges(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		rows   []map[string]any
		// Outcome of the import and its expected counters.
		state                           string
		errorCount, person, correctable int
		rowsRejected                    int
		contacts                        []string
	}{
		{
			name:   "rate 0 refuses nothing",
			faults: Faults{RejectDetail: RejectDetailEmail},
			rows:   []map[string]any{row("email", "a@example.com"), row("email", "b@example.com")},
			state:  stateCompleted, person: 2, contacts: []string{"a@example.com", "b@example.com"},
		},
		{
			name:   "correctable rows stay correctable",
			faults: Faults{RejectRate: 1},
			rows: []map[string]any{
				row("email", "bad@"), row("email", "a@example.com", "birthday_month", 13, "birthday_day", 1),
				row("email", "b@example.com", "anniversary", "someday"),
			},
			state: stateCompleted, correctable: 3, contacts: []string{},
		},
		{
			name:   "a failed import refuses no row, it imports none",
			faults: Faults{RejectRate: 1, ImportOutcome: stateFailed},
			rows:   []map[string]any{row("email", "a@example.com")},
			state:  stateFailed, contacts: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1})
			if err := e.srv.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			list := e.srv.CreateList("Agents").ListID
			a := e.postImport(importBody([]string{list}, tt.rows...))
			a = e.activity(a.ActivityID)
			if a.State != tt.state || a.Status["error_count"] != tt.errorCount || a.Status["person_count"] != tt.person ||
				a.Status["correctable_count"] != tt.correctable {
				t.Errorf("activity %s %v, want %s with %d errors, %d persons, %d correctable",
					a.State, a.Status, tt.state, tt.errorCount, tt.person, tt.correctable)
			}
			for _, msg := range a.ActivityErrors {
				if strings.HasPrefix(msg, "Line ") {
					t.Errorf("activity error %q for a row that was not refused", msg)
				}
			}
			if got := e.sandboxEmails(); !slices.Equal(got, tt.contacts) {
				t.Errorf("contacts %q, want %q", got, tt.contacts)
			}
			if n := e.srv.Stats().RowsRejected; n != tt.rowsRejected {
				t.Errorf("RowsRejected %d, want %d", n, tt.rowsRejected)
			}
		})
	}
}
