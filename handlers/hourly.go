package handlers

import (
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// chartHours is how far back /ops charts, by the hour: two days, so that
// this hour can be set beside the same hour yesterday.
const chartHours = 48

// hourlyReport is the last chartHours UTC hours, the one under way last,
// as /ops charts them and status.json gives them under "hourly". A figure
// that could not be read is null in every hour and named in Errors.
type hourlyReport struct {
	From  time.Time    `json:"from"`
	Hours []hourReport `json:"hours"`
	// CCDailyBudget is the budget the CC calls are spent from; 0 when the
	// CC calls are not counted here.
	CCDailyBudget int `json:"cc_daily_budget,omitempty"`
}

// hourReport is one UTC hour: enrollments received (their current
// version) and imported in it, CC calls made in it, and the age of the
// oldest enrollment waiting for CC at its end (at the time of the answer,
// for the hour under way).
type hourReport struct {
	Hour                 time.Time `json:"hour"`
	Received             *int      `json:"received"`
	Imported             *int      `json:"imported"`
	CCCalls              *int      `json:"cc_calls"`
	OldestWaitingSeconds *int64    `json:"oldest_waiting_seconds"`
}

// hourly reads the hourly series. It runs after enrollments(), whose
// oldest waiting enrollment it extends back by the hour.
func (c *opsCollector) hourly() {
	from := c.now.UTC().Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	h := &hourlyReport{From: from, Hours: make([]hourReport, chartHours)}
	for i := range h.Hours {
		h.Hours[i].Hour = from.Add(time.Duration(i) * time.Hour)
	}
	c.r.Hourly = h
	if received, err := c.cfg.Ops.ReceivedByHour(c.ctx, from, chartHours); err != nil {
		c.fail("hourly_received", err)
	} else {
		for i := range min(len(received), chartHours) {
			h.Hours[i].Received = &received[i].Count
		}
	}
	if imported, err := c.cfg.Ops.ImportedByHour(c.ctx, from, chartHours); err != nil {
		c.fail("hourly_imported", err)
	} else {
		for i := range min(len(imported), chartHours) {
			h.Hours[i].Imported = &imported[i].Count
		}
		if _, failed := c.r.Errors["oldest_unimported"]; !failed {
			var since time.Time
			if o := c.r.OldestUnimported; o != nil {
				since = o.Since
			}
			for i, age := range store.WaitingAges(imported[:min(len(imported), chartHours)], since, c.now) {
				s := int64(age.Seconds())
				h.Hours[i].OldestWaitingSeconds = &s
			}
		}
	}
	if c.cfg.CCBudget == nil {
		return
	}
	h.CCDailyBudget = c.cfg.CCBudget.Budget()
	if calls, err := c.cfg.CCBudget.CallsByHour(c.ctx, from, chartHours); err != nil {
		c.fail("hourly_cc_calls", err)
	} else {
		for i := range min(len(calls), chartHours) {
			h.Hours[i].CCCalls = &calls[i]
		}
	}
}

// Colours of the charts' series, told apart also by their legends.
const (
	colorReceived = "#4e79a7"
	colorImported = "#59a14f"
	colorCCCalls  = "#f28e2b"
	colorBudget   = "#e15759"
	colorWaiting  = "#b07aa1"
)

// chartFigure is one chart of /ops with its caption.
type chartFigure struct {
	Caption, Note string
	// SVG is the drawing, or empty when its figures could not be read.
	SVG template.HTML
}

// Figures draws the charts of /ops from the report: enrollments received
// and imported, CC calls against the budget, and the oldest waiting
// enrollment's age. A chart whose figures could not be read is left
// without a drawing, and the page says so.
func (r opsReport) Figures() []chartFigure {
	h := r.Hourly
	if h == nil {
		return nil
	}
	hours := make([]time.Time, len(h.Hours))
	for i, hr := range h.Hours {
		hours[i] = hr.Hour
	}
	received, okR := hourValues(h, func(hr hourReport) *int { return hr.Received })
	imported, okI := hourValues(h, func(hr hourReport) *int { return hr.Imported })
	calls, okC := hourValues(h, func(hr hourReport) *int { return hr.CCCalls })

	enr := chartFigure{Caption: "Enrollments per hour"}
	if okR && okI {
		c := chart{ID: "chart-enrollments", Title: enr.Caption, Hours: hours,
			Bars: []chartSeries{{"received", colorReceived, received}, {"imported", colorImported, imported}}}
		enr.Note = fmt.Sprintf("%d h: %s received, %s imported", len(hours), count(sum(received)), count(sum(imported)))
		c.Desc = fmt.Sprintf("Enrollments received and imported per hour. In the last %s; the most in one hour: %s received.",
			enr.Note, count(slices.Max(received)))
		enr.SVG = template.HTML(c.svg())
	}

	cc := chartFigure{Caption: "CC calls per hour"}
	if okC && h.CCDailyBudget > 0 {
		pace := float64(h.CCDailyBudget) / 24
		c := chart{ID: "chart-cc-calls", Title: cc.Caption, Hours: hours,
			Bars: []chartSeries{{"CC calls", colorCCCalls, calls}},
			Ref:  &chartRef{Name: "daily budget spread over 24 h (" + count(pace) + "/h)", Color: colorBudget, Value: pace}}
		if r.CCCalls != nil {
			cc.Note = fmt.Sprintf("today (UTC): %s of %s", count(float64(r.CCCalls.Used)), count(float64(r.CCCalls.Budget)))
		}
		c.Desc = fmt.Sprintf("%s CC calls in the last %d h, at most %s in one hour, against an even spend of the daily budget of %s, %s an hour.",
			count(sum(calls)), len(hours), count(slices.Max(calls)), count(float64(h.CCDailyBudget)), count(pace))
		cc.SVG = template.HTML(c.svg())
	}

	wait := chartFigure{Caption: "Oldest waiting for CC"}
	if ages, ok := hourValues(h, func(hr hourReport) *int64 { return hr.OldestWaitingSeconds }); ok {
		wait.Note = "now: none waiting"
		if o := r.OldestUnimported; o != nil {
			wait.Note = fmt.Sprintf("now: %s (enrollment %d, %s)", humanDuration(time.Duration(o.AgeSeconds)*time.Second), o.ID, o.Status)
		}
		c := chart{ID: "chart-waiting", Title: "Age of the oldest enrollment waiting for CC", Hours: hours, Duration: true,
			Empty: "nothing waited at an hour's end",
			Area:  &chartSeries{"age of the oldest waiting, at each hour's end", colorWaiting, ages}}
		c.Desc = "The oldest enrollment waiting for CC, " + wait.Note + "; the longest at an hour's end in the last " +
			strconv.Itoa(len(hours)) + " h: " + c.value(slices.Max(ages)) + "."
		wait.SVG = template.HTML(c.svg())
	}
	return []chartFigure{enr, cc, wait}
}

// hourValues gives one figure of every hour, and false when it is unknown
// in any.
func hourValues[T int | int64](h *hourlyReport, of func(hourReport) *T) ([]float64, bool) {
	v := make([]float64, len(h.Hours))
	for i, hr := range h.Hours {
		p := of(hr)
		if p == nil {
			return nil, false
		}
		v[i] = float64(*p)
	}
	return v, len(v) > 0
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}
