package ccclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Activity states. An import goes initialized → processing → completed;
// cancelled, failed and timed_out are the other final states.
const (
	StateInitialized = "initialized"
	StateProcessing  = "processing"
	StateCompleted   = "completed"
	StateCancelled   = "cancelled"
	StateFailed      = "failed"
	StateTimedOut    = "timed_out"
)

// Activity is CC's status of an asynchronous bulk job (the ActivityImport
// returned by an import and the Activity returned by GetActivity). Decoding
// is tolerant: timestamps with or without milliseconds or a zone, missing or
// unparseable timestamps (left zero), numbers as strings, and
// activity_errors as strings or objects, because failing to decode the 201
// of an import would lose the activity ID of a queued import.
type Activity struct {
	ActivityID     string         `json:"activity_id"`
	State          string         `json:"state"`
	CreatedAt      time.Time      `json:"created_at,omitzero"`
	StartedAt      time.Time      `json:"started_at,omitzero"`
	CompletedAt    time.Time      `json:"completed_at,omitzero"`
	UpdatedAt      time.Time      `json:"updated_at,omitzero"`
	PercentDone    int            `json:"percent_done"`
	ActivityErrors []string       `json:"activity_errors,omitempty"`
	Status         ActivityStatus `json:"status"`
	Links          ActivityLinks  `json:"_links,omitzero"`
	// RowErrors are the activity_errors that name a row of the import (by
	// its line in import_data, its email, or both), read from either form
	// CC may use; errors about the whole import are left out.
	RowErrors []RowError `json:"-"`
}

// RowError is one import row CC refused. CC's exact wording is not
// documented: the Swagger gives activity_errors as strings, an older form
// gave objects with a line number and an email; both are read.
type RowError struct {
	// Line is the row's 1-based position in import_data, 0 when CC did not
	// say.
	Line int
	// Email is the row's address as CC quoted it, "" when it did not.
	Email   string
	Message string
}

// ActivityStatus holds an activity's counters. For an import, any non-zero
// ErrorCount, CorrectableCount or CannotAddToListCount means some rows did
// not make it even when the state is completed.
type ActivityStatus struct {
	ItemsTotalCount      int `json:"items_total_count"`
	ItemsCompletedCount  int `json:"items_completed_count"`
	PersonCount          int `json:"person_count"`
	ErrorCount           int `json:"error_count"`
	CorrectableCount     int `json:"correctable_count"`
	CannotAddToListCount int `json:"cannot_add_to_list_count"`
	ListCount            int `json:"list_count"`
}

// ActivityLinks holds an activity's HATEOAS links.
type ActivityLinks struct {
	Self Link `json:"self,omitzero"`
}

// Link is a CC link; Href is relative and includes "/v3".
type Link struct {
	Href string `json:"href"`
}

// Final reports whether the activity has stopped changing.
func (a *Activity) Final() bool {
	switch a.State {
	case StateCompleted, StateCancelled, StateFailed, StateTimedOut,
		"time_out": // the /activities text spells it so; the enum says timed_out
		return true
	}
	return false
}

// Clean reports a completed activity in which every row made it: no error,
// correctable or cannot-add-to-list counts and no activity_errors.
func (a *Activity) Clean() bool {
	return a.State == StateCompleted &&
		a.Status.ErrorCount == 0 &&
		a.Status.CorrectableCount == 0 &&
		a.Status.CannotAddToListCount == 0 &&
		len(a.ActivityErrors) == 0
}

// UnmarshalJSON decodes CC's activity JSON tolerantly (see Activity).
func (a *Activity) UnmarshalJSON(b []byte) error {
	var w struct {
		ActivityID     flexString      `json:"activity_id"`
		State          flexString      `json:"state"`
		CreatedAt      isoTime         `json:"created_at"`
		StartedAt      isoTime         `json:"started_at"`
		CompletedAt    isoTime         `json:"completed_at"`
		UpdatedAt      isoTime         `json:"updated_at"`
		PercentDone    flexInt         `json:"percent_done"`
		ActivityErrors json.RawMessage `json:"activity_errors"`
		Status         struct {
			ItemsTotalCount      flexInt `json:"items_total_count"`
			ItemsCompletedCount  flexInt `json:"items_completed_count"`
			PersonCount          flexInt `json:"person_count"`
			ErrorCount           flexInt `json:"error_count"`
			CorrectableCount     flexInt `json:"correctable_count"`
			CannotAddToListCount flexInt `json:"cannot_add_to_list_count"`
			ListCount            flexInt `json:"list_count"`
		} `json:"status"`
		Links struct {
			Self struct {
				Href flexString `json:"href"`
			} `json:"self"`
		} `json:"_links"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var errs flexStrings
	if len(w.ActivityErrors) > 0 {
		_ = errs.UnmarshalJSON(w.ActivityErrors)
	}
	*a = Activity{
		ActivityID:     string(w.ActivityID),
		State:          string(w.State),
		CreatedAt:      time.Time(w.CreatedAt),
		StartedAt:      time.Time(w.StartedAt),
		CompletedAt:    time.Time(w.CompletedAt),
		UpdatedAt:      time.Time(w.UpdatedAt),
		PercentDone:    int(w.PercentDone),
		ActivityErrors: []string(errs),
		RowErrors:      rowErrors(w.ActivityErrors),
		Status: ActivityStatus{
			ItemsTotalCount:      int(w.Status.ItemsTotalCount),
			ItemsCompletedCount:  int(w.Status.ItemsCompletedCount),
			PersonCount:          int(w.Status.PersonCount),
			ErrorCount:           int(w.Status.ErrorCount),
			CorrectableCount:     int(w.Status.CorrectableCount),
			CannotAddToListCount: int(w.Status.CannotAddToListCount),
			ListCount:            int(w.Status.ListCount),
		},
		Links: ActivityLinks{Self: Link{Href: string(w.Links.Self.Href)}},
	}
	return nil
}

// GetActivity returns the current status of an activity. CC keeps
// activities for 10 days; after that the 404 matches ErrNotFound.
func (c *Client) GetActivity(ctx context.Context, id string) (*Activity, error) {
	const op = "ccclient: get activity"
	if blank(id) {
		return nil, fmt.Errorf("%s: empty activity id", op)
	}
	req, err := c.newRequest(ctx, "GET", "activities/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var a Activity
	if err := c.do(req, "/activities/{activity_id}", &a); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &a, nil
}

// Activities lists the account's activities of the past 10 days, optionally
// only those in state (processing, completed, cancelled, failed or
// timed_out; CC has no initialized filter), following every page. After an
// import POST timed out, look here (CreatedAt, Status.PersonCount) before
// resending.
func (c *Client) Activities(ctx context.Context, state string) ([]Activity, error) {
	const op = "ccclient: list activities"
	q := url.Values{"limit": {"500"}}
	if state != "" {
		q.Set("state", state)
	}
	var all []Activity
	err := c.pages(ctx, "activities?"+q.Encode(), "/activities", func(raw []byte) (string, error) {
		var page struct {
			Activities []Activity `json:"activities"`
			Links      pageLinks  `json:"_links"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return "", err
		}
		all = append(all, page.Activities...)
		return page.Links.Next.Href, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return all, nil
}

// RecentActivities returns the newest bulk activities, newest first, from
// one page of GET /v3/activities (at most limit, 1 to 500). After an import
// post whose answer was lost, the import, if CC queued it, is among them.
func (c *Client) RecentActivities(ctx context.Context, limit int) ([]Activity, error) {
	const op = "ccclient: recent activities"
	req, err := c.newRequest(ctx, "GET", "activities?"+url.Values{"limit": {strconv.Itoa(min(max(limit, 1), 500))}}.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var page struct {
		Activities []Activity `json:"activities"`
	}
	if err := c.do(req, "/activities", &page); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return page.Activities, nil
}

// rowLine reads a leading "Line 12:" (or "Row 12 -", "line #12,") of an
// activity error, and rowEmail an address anywhere in it.
var (
	rowLine  = regexp.MustCompile(`(?i)^\s*(?:line|row)\s*#?\s*(\d+)\s*[:,.\-]?\s*`)
	rowEmail = regexp.MustCompile(`[^\s:;,<>()"'\[\]@]+@[^\s:;,<>()"'\[\]@]+\.[^\s:;,<>()"'\[\]@]+`)
)

// rowErrors reads activity_errors (strings, objects, or a single one) into
// the errors that name a row.
func rowErrors(raw json.RawMessage) []RowError {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		items = []json.RawMessage{raw}
	}
	var out []RowError
	for _, it := range items {
		var text string
		var re RowError
		if json.Unmarshal(it, &text) != nil {
			var obj struct {
				Message      string     `json:"message"`
				ErrorMessage string     `json:"error_message"`
				Line         flexInt    `json:"line_number"`
				Row          flexInt    `json:"line"`
				Email        flexString `json:"email"`
				EmailAddress flexString `json:"email_address"`
			}
			if json.Unmarshal(it, &obj) != nil {
				continue
			}
			text = cmp.Or(obj.Message, obj.ErrorMessage)
			re = RowError{Line: int(cmp.Or(obj.Line, obj.Row)), Email: string(cmp.Or(obj.EmailAddress, obj.Email))}
		}
		parsed := parseRowError(text)
		if re.Line == 0 {
			re.Line = parsed.Line
		}
		if re.Email == "" {
			re.Email = parsed.Email
		}
		re.Message = parsed.Message
		if re.Line > 0 || re.Email != "" {
			out = append(out, re)
		}
	}
	return out
}

// parseRowError reads a line number and an email out of an error's text:
// "Line 12: ann@example.com: The email address is not valid." gives all
// three; "ann@example.com: …" or "… for ann@example.com" the email alone.
// The message is what follows the line and a leading email.
func parseRowError(text string) RowError {
	var re RowError
	rest := text
	if m := rowLine.FindStringSubmatch(rest); m != nil {
		re.Line, _ = strconv.Atoi(m[1])
		rest = rest[len(m[0]):]
	}
	if head, tail, ok := strings.Cut(rest, ": "); ok && strings.Contains(head, "@") && !strings.ContainsAny(head, " \t") {
		re.Email, rest = head, tail
	} else {
		re.Email = strings.TrimRight(rowEmail.FindString(rest), ".")
	}
	re.Message = strings.TrimSpace(rest)
	return re
}

// isoTime decodes an ISO-8601 timestamp tolerantly; anything it cannot
// read (null, "", garbage) leaves the zero time rather than failing the
// whole object.
type isoTime time.Time

var isoLayouts = []string{
	time.RFC3339Nano,                     // 2026-04-28T21:48:16Z, …16.123Z, …16-05:00
	"2006-01-02T15:04:05.999999999Z0700", // +0000 without a colon
	"2006-01-02T15:04:05.999999999",      // no zone: UTC
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02",
}

func (t *isoTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	*t = isoTime(parseISOTime(s))
	return nil
}

func parseISOTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range isoLayouts {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm
		}
	}
	return time.Time{}
}

// flexInt decodes an integer sent as a number (even 75.0) or a numeric
// string; anything else is 0.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	if i, err := strconv.Atoi(s); err == nil {
		*n = flexInt(i)
		return nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && math.Abs(f) < math.MaxInt32 {
		*n = flexInt(f)
	}
	return nil
}

// flexString decodes a string, or keeps a number's text; anything else is "".
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	var str string
	if json.Unmarshal(b, &str) == nil {
		*s = flexString(str)
		return nil
	}
	var num json.Number
	if json.Unmarshal(b, &num) == nil {
		*s = flexString(num)
	}
	return nil
}

// flexStrings decodes activity_errors, which the spec gives as strings but
// which also has an object form (ActivityErrors); objects become their
// message, or their JSON text.
type flexStrings []string

func (s *flexStrings) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		var one json.RawMessage
		if json.Unmarshal(b, &one) != nil || string(bytes.TrimSpace(one)) == "null" {
			return nil
		}
		raw = []json.RawMessage{one}
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		var str string
		if json.Unmarshal(r, &str) == nil {
			out = append(out, str)
			continue
		}
		var obj struct {
			Message      string `json:"message"`
			ErrorMessage string `json:"error_message"`
		}
		if json.Unmarshal(r, &obj) == nil && (obj.Message != "" || obj.ErrorMessage != "") {
			out = append(out, obj.Message+obj.ErrorMessage)
			continue
		}
		if t := string(bytes.TrimSpace(r)); t != "null" {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	*s = out
	return nil
}
