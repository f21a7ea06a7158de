package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
)

func TestGroupKey(t *testing.T) {
	long := func(prefix string) []string {
		return []string{prefix + strings.Repeat("a", 100), prefix + strings.Repeat("b", 100)}
	}
	hashed := regexp.MustCompile(`^lists:sha256:[0-9a-f]{24}$`)
	tests := []struct {
		name       string
		a, b       []string
		same       bool   // whether a and b must share a group
		wantA      string // exact key of a, when readable
		wantHashed bool   // a's key must be the hashed form
	}{
		{name: "one list is readable", a: []string{"New Agents"}, b: []string{"New Agents"}, same: true,
			wantA: "lists:New Agents"},
		{name: "order does not matter", a: []string{"Newsletter", "Agents West"}, b: []string{"Agents West", "Newsletter"},
			same: true, wantA: "lists:Agents West|Newsletter"},
		{name: "different sets differ", a: []string{"Agents East"}, b: []string{"Agents West"}, wantA: "lists:Agents East"},
		{name: "a subset differs", a: []string{"A"}, b: []string{"A", "B"}, wantA: "lists:A"},
		{name: "no lists", a: nil, b: []string{}, same: true, wantA: "lists:"},
		{name: "exactly 191 bytes (the column) stays readable", a: []string{strings.Repeat("x", 185)}, b: []string{strings.Repeat("x", 185)},
			same: true, wantA: "lists:" + strings.Repeat("x", 185)},
		{name: "192 bytes is hashed", a: []string{strings.Repeat("x", 186)}, b: []string{strings.Repeat("x", 186)},
			same: true, wantHashed: true},
		{name: "long keys are hashed and stable across order", a: long("p"), b: []string{long("p")[1], long("p")[0]},
			same: true, wantHashed: true},
		{name: "long keys of different sets differ", a: long("p"), b: long("q"), wantHashed: true},
		{name: "a name holding the separator is not two lists", a: []string{"a|b"}, b: []string{"a", "b"},
			wantHashed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.a)
			ka, kb := GroupKey(tc.a), GroupKey(tc.b)
			if !slices.Equal(in, tc.a) {
				t.Errorf("GroupKey reordered its argument: %q, was %q", tc.a, in)
			}
			if (ka == kb) != tc.same {
				t.Errorf("GroupKey(%q) = %q, GroupKey(%q) = %q; same = %v, want %v", tc.a, ka, tc.b, kb, ka == kb, tc.same)
			}
			if ka != GroupKey(tc.a) {
				t.Errorf("GroupKey(%q) is not stable", tc.a)
			}
			switch {
			case tc.wantHashed && !hashed.MatchString(ka):
				t.Errorf("GroupKey(%q) = %q, want the hashed form", tc.a, ka)
			case tc.wantA != "" && ka != tc.wantA:
				t.Errorf("GroupKey(%q) = %q, want %q", tc.a, ka, tc.wantA)
			}
			if len(ka) > 200 {
				t.Errorf("GroupKey(%q) is %d bytes, want at most 200", tc.a, len(ka))
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	task := func(payload string) *asynq.Task { return asynq.NewTask(TypeEnrollmentSync, []byte(payload)) }
	tests := []struct {
		name  string
		tasks []*asynq.Task
		want  []int64
	}{
		{name: "ids in task order", tasks: []*asynq.Task{task(`{"enrollment_id":3}`), task(`{"enrollment_id":1}`), task(`{"enrollment_id":2}`)},
			want: []int64{3, 1, 2}},
		{name: "an id queued twice is imported once", tasks: []*asynq.Task{task(`{"enrollment_id":7}`), task(`{"enrollment_id":7}`), task(`{"enrollment_id":8}`)},
			want: []int64{7, 8}},
		{name: "unreadable and empty payloads are dropped", tasks: []*asynq.Task{task(`{`), task(`{}`), task(`{"enrollment_id":0}`), task(`{"enrollment_id":9}`)},
			want: []int64{9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := aggregate("lists:A", tc.tasks)
			if got.Type() != TypeCCImport {
				t.Fatalf("type %q, want %q", got.Type(), TypeCCImport)
			}
			var p struct {
				EnrollmentIDs []int64 `json:"enrollment_ids"`
			}
			if err := json.Unmarshal(got.Payload(), &p); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.EnrollmentIDs, tc.want) {
				t.Errorf("enrollment_ids %v, want %v", p.EnrollmentIDs, tc.want)
			}
		})
	}
}

// TestMalformedPayloadsSkipRetry: a payload that cannot be decoded will
// never decode, so every handler archives it at once.
func TestMalformedPayloadsSkipRetry(t *testing.T) {
	im := newImporter(nil, nil, nil, nil, Config{})
	handlers := map[string]func(context.Context, *asynq.Task) error{
		TypeEnrollmentSync: im.handleEnrollment,
		TypeCCImport:       im.handleImport,
		TypeCCActivity:     im.handleActivity,
	}
	for typ, h := range handlers {
		err := h(context.Background(), asynq.NewTask(typ, []byte(`{"enrollment_ids":"nope","import_id":"x","enrollment_id":[]}`)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s with a malformed payload: %v, want SkipRetry", typ, err)
		}
	}
}

// rowsStore is a Store whose one import holds rows; it hands them out as
// EachImportRow does and has no other method.
type rowsStore struct {
	Store
	rows func() []*store.Enrollment
}

func (s rowsStore) EachImportRow(_ context.Context, _ int64, fn func(*store.Enrollment) error) error {
	for _, r := range s.rows() {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func TestContactsFor(t *testing.T) {
	row := func(id int64, email, first string) *store.Enrollment {
		return &store.Enrollment{ID: id, Email: email, FirstName: first, LastName: "Lee", Country: "United States"}
	}
	// rowAt is a row received after a fixed time; its id need not follow.
	rowAt := func(id int64, email, first string, after time.Duration) *store.Enrollment {
		r := row(id, email, first)
		r.ReceivedAt = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).Add(after)
		return r
	}
	tests := []struct {
		name         string
		rows         []*store.Enrollment
		wantEmail    []string
		wantFirst    []string
		wantRejected map[int64]string // id → a word the reason must hold
	}{
		{name: "one contact per row", rows: []*store.Enrollment{row(1, "a@x.com", "Ann"), row(2, "b@x.com", "Bob")},
			wantEmail: []string{"a@x.com", "b@x.com"}, wantFirst: []string{"Ann", "Bob"}},
		{name: "the same email in another case keeps the newest row in the first slot",
			rows:      []*store.Enrollment{row(1, "a@x.com", "Ann"), row(2, "b@x.com", "Bob"), row(3, "A@X.com", "Anna")},
			wantEmail: []string{"A@X.com", "b@x.com"}, wantFirst: []string{"Anna", "Bob"}},
		{name: "an older row listed after a newer one, as ExtendImport adds it, does not win",
			rows:      []*store.Enrollment{rowAt(7, "a@x.com", "Anna", time.Hour), row(2, "b@x.com", "Bob"), rowAt(3, "A@X.com", "Ann", 0)},
			wantEmail: []string{"a@x.com", "b@x.com"}, wantFirst: []string{"Anna", "Bob"}},
		{name: "a name over 50 characters is rejected with its reason, not cut",
			rows:      []*store.Enrollment{row(1, "a@x.com", strings.Repeat("é", 51)), row(2, "b@x.com", "Bob")},
			wantEmail: []string{"b@x.com"}, wantFirst: []string{"Bob"}, wantRejected: map[int64]string{1: "first_name is 51 characters"}},
		{name: "an email over 50 characters is rejected",
			rows:         []*store.Enrollment{row(1, strings.Repeat("x", 45)+"@example.com", "Ann")},
			wantRejected: map[int64]string{1: "email is 57 characters"}},
		{name: "exactly 50 characters is kept",
			rows:      []*store.Enrollment{row(1, "a@x.com", strings.Repeat("n", 50))},
			wantEmail: []string{"a@x.com"}, wantFirst: []string{strings.Repeat("n", 50)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im := &Importer{store: rowsStore{rows: func() []*store.Enrollment { return tc.rows }}}
			set, err := im.contactsFor(context.Background(), 1, len(tc.rows))
			if err != nil {
				t.Fatal(err)
			}
			got, rejected := set.contacts, set.rejected
			// What budgetHold needs covers every row, rejected ones too.
			oldest := tc.rows[0].ReceivedAt
			for _, r := range tc.rows {
				if r.ReceivedAt.Before(oldest) {
					oldest = r.ReceivedAt
				}
			}
			if set.rows != len(tc.rows) || !set.oldest.Equal(oldest) {
				t.Errorf("%d rows, oldest %v; want %d, %v", set.rows, set.oldest, len(tc.rows), oldest)
			}
			// Every row is behind exactly one contact or rejected.
			var owned []int64
			for _, o := range set.owners {
				owned = append(owned, o...)
			}
			for id := range rejected {
				owned = append(owned, id)
			}
			slices.Sort(owned)
			var all []int64
			for _, r := range tc.rows {
				all = append(all, r.ID)
			}
			slices.Sort(all)
			if len(set.owners) != len(got) || !slices.Equal(owned, all) {
				t.Errorf("owners %v and rejected %v, want each of rows %v once", set.owners, rejected, all)
			}
			var emails, firsts []string
			for _, c := range got {
				emails = append(emails, c.Email)
				firsts = append(firsts, c.FirstName)
				if c.LastName != "Lee" || c.Country != "United States" {
					t.Errorf("contact %s: last %q country %q", c.Email, c.LastName, c.Country)
				}
			}
			if !slices.Equal(emails, tc.wantEmail) || !slices.Equal(firsts, tc.wantFirst) {
				t.Errorf("contacts %q %q, want %q %q", emails, firsts, tc.wantEmail, tc.wantFirst)
			}
			if len(rejected) != len(tc.wantRejected) {
				t.Errorf("rejected %v, want %v", rejected, tc.wantRejected)
			}
			for id, word := range tc.wantRejected {
				if !strings.Contains(rejected[id], word) {
					t.Errorf("row %d rejected for %q, want a reason with %q", id, rejected[id], word)
				}
			}
		})
	}
}

// TestContactsForKeepsNoRow: once an import's rows are mapped, nothing
// holds on to them (each carries every HubSpot property of its contact),
// only to the contacts made of them; the rows become garbage while the
// result is still in use.
func TestContactsForKeepsNoRow(t *testing.T) {
	var handed []weak.Pointer[store.Enrollment]
	rows := func() []*store.Enrollment {
		var out []*store.Enrollment
		for i := range 50 {
			props := make(map[string]string, 60)
			for k := range 60 {
				props[fmt.Sprintf("property_%02d", k)] = strings.Repeat("v", 40)
			}
			// Every fifth row repeats an email and every seventh is
			// rejected, so that each path of the mapping is taken.
			email := fmt.Sprintf("agent%d@example.com", i-i%5/4)
			first := "Ann"
			if i%7 == 6 {
				first = strings.Repeat("x", 51)
			}
			r := &store.Enrollment{ID: int64(i + 1), Email: email, FirstName: first, Properties: props,
				Lists: []string{"Agents"}, ReceivedAt: time.Unix(int64(i), 0)}
			handed = append(handed, weak.Make(r))
			out = append(out, r)
		}
		return out
	}
	im := &Importer{store: rowsStore{rows: rows}, maxContacts: 100}
	set, err := im.contactsFor(context.Background(), 1, 50)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	kept := 0
	for _, w := range handed {
		if w.Value() != nil {
			kept++
		}
	}
	if kept > 0 {
		t.Errorf("%d of %d rows still reachable after contactsFor returned", kept, len(handed))
	}
	if len(set.contacts) == 0 || len(set.rejected) == 0 || set.rows != 50 {
		t.Errorf("%d contacts, %d rejected of %d rows; the rows did not take every path", len(set.contacts), len(set.rejected), set.rows)
	}
	runtime.KeepAlive(set)
}
