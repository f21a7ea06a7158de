package handlers_test

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/handlers"
)

// The hourly figures of the fake bridge, the last of each the hour of
// opsNow: enrollments received and imported, and CC calls.
var (
	fakeReceived = []int{3, 5, 0, 8, 2, 1}
	fakeImported = []int{0, 3, 5, 0, 8, 3}
	fakeCCCalls  = []int{2, 4, 0, 6, 5, 1}
)

// hourlyStatus is the "hourly" object of /ops/status.json.
type hourlyStatus struct {
	From          time.Time `json:"from"`
	CCDailyBudget int       `json:"cc_daily_budget"`
	Hours         []struct {
		Hour                 time.Time `json:"hour"`
		Received             *int      `json:"received"`
		Imported             *int      `json:"imported"`
		CCCalls              *int      `json:"cc_calls"`
		OldestWaitingSeconds *int64    `json:"oldest_waiting_seconds"`
	} `json:"hours"`
}

// column is one figure of the last n hours, -1 where it is null.
func (h *hourlyStatus) column(n int, of func(i int) *int64) []int64 {
	var c []int64
	for i := len(h.Hours) - n; i < len(h.Hours); i++ {
		v := int64(-1)
		if p := of(i); p != nil {
			v = *p
		}
		c = append(c, v)
	}
	return c
}

func i64(p *int) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

// TestOpsHourly: status.json gives 48 UTC hours, the one under way last,
// with each hour's figures, nulls where a figure could not be read, and
// the oldest waiting enrollment's age at each hour's end.
func TestOpsHourly(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*handlers.Config)
		errors []string
		// want are the last seven hours of each figure, -1 for null.
		received, imported, calls, ages []int64
		budget                          int
	}{
		{
			name:     "every figure",
			received: []int64{0, 3, 5, 0, 8, 2, 1}, imported: []int64{0, 0, 3, 5, 0, 8, 3},
			calls: []int64{0, 2, 4, 0, 6, 5, 1}, budget: 8000,
			// Enrollment 4242 waits since 10:30; the fake imports of each
			// hour were received the hour before.
			ages: []int64{0, 3600, 3600, 0, 3600, 5400, 5400},
		},
		{
			name: "MySQL and Redis failing",
			cfg: func(c *handlers.Config) {
				f := newFakeOps()
				f.hourlyErr = errors.New("mysql gone")
				c.Ops = f
				c.CCBudget = fakeBudget{budget: 8000, err: errors.New("redis gone"), hourlyErr: errors.New("redis gone")}
			},
			errors:   []string{"cc_calls", "hourly_cc_calls", "hourly_imported", "hourly_received"},
			received: []int64{-1, -1, -1, -1, -1, -1, -1}, imported: []int64{-1, -1, -1, -1, -1, -1, -1},
			calls: []int64{-1, -1, -1, -1, -1, -1, -1}, ages: []int64{-1, -1, -1, -1, -1, -1, -1}, budget: 8000,
		},
		{
			name:     "CC calls not counted here",
			cfg:      func(c *handlers.Config) { c.CCBudget = nil },
			received: []int64{0, 3, 5, 0, 8, 2, 1}, imported: []int64{0, 0, 3, 5, 0, 8, 3},
			calls: []int64{-1, -1, -1, -1, -1, -1, -1}, ages: []int64{0, 3600, 3600, 0, 3600, 5400, 5400},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*handlers.Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			a := startOps(t, opts...)
			var got opsStatus
			decodeJSON(t, a.as(t, http.MethodGet, "/ops/status.json", viewerName, viewerPass), &got)
			h := got.Hourly
			if h == nil || len(h.Hours) != 48 {
				t.Fatalf("hourly %+v, want 48 hours", h)
			}
			if want := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC); !h.From.Equal(want) || h.CCDailyBudget != tc.budget {
				t.Errorf("from %v budget %d, want %v and %d", h.From, h.CCDailyBudget, want, tc.budget)
			}
			for i, hr := range h.Hours {
				if want := h.From.Add(time.Duration(i) * time.Hour); !hr.Hour.Equal(want) {
					t.Errorf("hour %d is %v, want %v", i, hr.Hour, want)
				}
			}
			cols := []struct {
				name string
				got  []int64
				want []int64
			}{
				{"received", h.column(7, func(i int) *int64 { return i64(h.Hours[i].Received) }), tc.received},
				{"imported", h.column(7, func(i int) *int64 { return i64(h.Hours[i].Imported) }), tc.imported},
				{"cc_calls", h.column(7, func(i int) *int64 { return i64(h.Hours[i].CCCalls) }), tc.calls},
				{"oldest_waiting_seconds", h.column(7, func(i int) *int64 { return h.Hours[i].OldestWaitingSeconds }), tc.ages},
			}
			for _, c := range cols {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s of the last 7 hours %v, want %v", c.name, c.got, c.want)
				}
			}
			var errs []string
			for k := range got.Errors {
				if strings.Contains(k, "hourly") || k == "cc_calls" {
					errs = append(errs, k)
				}
			}
			slices.Sort(errs)
			if !slices.Equal(errs, tc.errors) {
				t.Errorf("errors %v, want %v", got.Errors, tc.errors)
			}
		})
	}
}

// blockedRE finds in a page what its policy would block or what would run
// code: a style attribute, a script, an event handler, a javascript: URL,
// a resource from elsewhere.
var blockedRE = regexp.MustCompile(`(?i)<[^>]*\s(style|on[a-z]+)=|<script|javascript:|<(img|image|use|link|iframe|object)\b`)

// TestOpsCharts: /ops draws its three charts inline, each well-formed SVG
// with an accessible name, under the page's policy unchanged (nothing in
// the page needs a style attribute or a script); a chart whose figures
// could not be read says so instead, and the others are still drawn.
func TestOpsCharts(t *testing.T) {
	svgRE := regexp.MustCompile(`(?s)<svg .*?</svg>`)
	tests := []struct {
		name  string
		cfg   func(*handlers.Config)
		svgs  []string
		unset int
	}{
		{"every figure", nil, []string{"chart-enrollments", "chart-cc-calls", "chart-waiting"}, 0},
		{"MySQL failing", func(c *handlers.Config) {
			f := newFakeOps()
			f.hourlyErr = errors.New("mysql gone")
			c.Ops = f
		}, []string{"chart-cc-calls"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*handlers.Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			a := startOps(t, opts...)
			r := a.as(t, http.MethodGet, "/ops", viewerName, viewerPass)
			page := string(r.body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			if csp := r.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") ||
				strings.Contains(csp, "unsafe") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if bad := blockedRE.FindString(page); bad != "" {
				t.Errorf("page has %q, which the policy would block", bad)
			}
			var ids []string
			for _, s := range svgRE.FindAllString(page, -1) {
				d := xml.NewDecoder(strings.NewReader(s))
				d.Strict = true
				var root struct {
					XMLName xml.Name
					Label   string `xml:"aria-labelledby,attr"`
					Title   string `xml:"title"`
				}
				if err := d.Decode(&root); err != nil {
					t.Errorf("chart is not well-formed XML: %v", err)
					continue
				}
				if _, err := d.Token(); err != io.EOF {
					t.Errorf("chart has trailing content: %v", err)
				}
				if root.Title == "" {
					t.Errorf("chart %s has no title", root.Label)
				}
				ids = append(ids, strings.TrimSuffix(root.Label, "-title"))
			}
			if !slices.Equal(ids, tc.svgs) {
				t.Errorf("charts %v, want %v", ids, tc.svgs)
			}
			if n := strings.Count(page, "n/a: could not be read"); n != tc.unset {
				t.Errorf("%d charts say they could not be read, want %d", n, tc.unset)
			}
			for _, want := range []string{"Last 48 hours", "today (UTC): 120 of 8,000", "now: 1h 30m (enrollment 4242, failed)"} {
				if tc.unset == 0 && !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
		})
	}
}
