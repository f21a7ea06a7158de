package handlers

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// chart is one chart of hourly figures, drawn on the server as inline SVG:
// /ops runs no script, and its Content-Security-Policy allows no style
// attribute, so everything is drawn with SVG's presentation attributes
// (fill, stroke, font-size), which the policy does not govern.
type chart struct {
	// ID makes the chart's element ids unique on the page.
	ID string
	// Title and Desc are the chart's accessible name and description: what
	// a screen reader says in place of the picture, so Desc gives the
	// figures that matter in words.
	Title, Desc string
	// Hours are the starts of the charted UTC hours, one slot each.
	Hours []time.Time
	// Bars are drawn side by side in each hour's slot.
	Bars []chartSeries
	// Area, when set, is a value at the end of each hour, drawn as a
	// filled line over the slots.
	Area *chartSeries
	// Ref, when set, is a dashed horizontal line, such as a budget.
	Ref *chartRef
	// Duration says the values are seconds, labelled as ages.
	Duration bool
	// Empty is said across the plot when no value is above zero; unset,
	// "none in these N hours".
	Empty string
}

// chartSeries is one named series, a value per hour.
type chartSeries struct {
	Name, Color string
	Values      []float64
}

// chartRef is a level to read the values against.
type chartRef struct {
	Name, Color string
	Value       float64
}

// The chart's frame, in SVG user units (CSS pixels at the size drawn): two
// charts fit side by side in the 1280-pixel-wide window of a laptop.
const (
	chartW, chartH       = 580, 214
	chartPadL, chartPadR = 56, 14
	chartPadT, chartPadB = 34, 34
	chartPlotW           = chartW - chartPadL - chartPadR
	chartPlotH           = chartH - chartPadT - chartPadB
	chartTicks           = 4 // at most this many steps above zero
	chartFont            = `font-family="system-ui, sans-serif" font-size="11"`
	chartTextColor       = "#555"
	chartGridColor       = "#e6e6e6"
	chartAxisColor       = "#888"
)

// svg draws the chart. Every text is escaped, so a name cannot become markup.
func (c chart) svg() string {
	var b strings.Builder
	top, step := c.scale()
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="%s-title" aria-describedby="%s-desc" %s>`,
		chartW, chartH, chartW, chartH, c.ID, c.ID, chartFont)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, c.ID, esc(c.Title), c.ID, esc(c.Desc))
	c.grid(&b, top, step)
	c.hourAxis(&b)
	c.bars(&b, top)
	c.area(&b, top)
	if r := c.Ref; r != nil {
		y := c.y(r.Value, top)
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`,
			chartPadL, num(y), chartPadL+chartPlotW, num(y), r.Color)
	}
	if c.empty() {
		say := c.Empty
		if say == "" {
			say = fmt.Sprintf("none in these %d hours", len(c.Hours))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#999">%s</text>`,
			chartPadL+chartPlotW/2, chartPadT+chartPlotH/2, esc(say))
	}
	c.legend(&b)
	b.WriteString(`</svg>`)
	return b.String()
}

// scale picks the top of the value axis and its step: a round step, and a
// top that is a whole number of them, above every value and the reference.
func (c chart) scale() (top, step float64) {
	high := 0.0
	for _, s := range c.series() {
		for _, v := range s.Values {
			high = max(high, v)
		}
	}
	if c.Ref != nil {
		high = max(high, c.Ref.Value)
	}
	if c.Duration {
		// An age axis spans a minute at least, so that a bridge with
		// nothing waiting reads 0 against minutes, not seconds.
		high = max(high, 60)
	}
	step = niceStep(high/chartTicks, c.Duration)
	top = math.Max(step, math.Ceil(high/step)*step)
	return top, step
}

// durationSteps are the steps of an age axis, in seconds: each a whole
// number of a unit a person counts in.
var durationSteps = []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}

// niceStep is the smallest round step at least min: 1, 2 or 5 times a
// power of ten for counts (never below 1, as counts are whole), a step of
// durationSteps, or whole days past them, for ages.
func niceStep(least float64, duration bool) float64 {
	if duration {
		for _, s := range durationSteps {
			if s >= least {
				return s
			}
		}
		return math.Ceil(least/86400) * 86400
	}
	for p := 1.0; ; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if m*p >= least {
				return m * p
			}
		}
	}
}

func (c chart) series() []chartSeries {
	s := append([]chartSeries(nil), c.Bars...)
	if c.Area != nil {
		s = append(s, *c.Area)
	}
	return s
}

// empty says that no series has a value above zero.
func (c chart) empty() bool {
	for _, s := range c.series() {
		for _, v := range s.Values {
			if v > 0 {
				return false
			}
		}
	}
	return true
}

// x is the left edge of slot i; x(len(Hours)) is the right edge of the plot.
func (c chart) x(i int) float64 {
	return chartPadL + float64(i)*chartPlotW/float64(max(len(c.Hours), 1))
}

// y is where value v sits, top being the axis's highest value.
func (c chart) y(v, top float64) float64 { return chartPadT + chartPlotH*(1-v/top) }

// grid draws the value axis: a light line and a label at each step.
func (c chart) grid(b *strings.Builder, top, step float64) {
	for v := 0.0; v <= top+step/2; v += step {
		y := num(c.y(v, top))
		color := chartGridColor
		if v == 0 {
			color = chartAxisColor
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s"/>`, chartPadL, y, chartPadL+chartPlotW, y, color)
		fmt.Fprintf(b, `<text x="%d" y="%s" dy="0.32em" text-anchor="end" fill="%s">%s</text>`,
			chartPadL-6, y, chartTextColor, esc(c.tick(v)))
	}
}

// hourAxis labels every sixth hour, names each new UTC day under its
// midnight and marks that midnight across the plot, since the CC budget and
// CC's own count start again then.
func (c chart) hourAxis(b *strings.Builder) {
	base := chartPadT + chartPlotH
	for i, h := range c.Hours {
		if h.Hour()%6 != 0 {
			continue
		}
		x := num(c.x(i))
		fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`, x, base, x, base+4, chartAxisColor)
		fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle" fill="%s">%s</text>`, x, base+15, chartTextColor, h.Format("15:04"))
		if h.Hour() == 0 {
			fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-dasharray="2 3"/>`, x, chartPadT, x, base, chartAxisColor)
			fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle" font-weight="bold" fill="%s">%s</text>`,
				x, base+28, chartTextColor, h.Format("Jan 2"))
		}
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end" fill="%s">UTC</text>`, chartPadL+chartPlotW, base+28, chartTextColor)
}

// minBar is the least height of a bar above zero, so that a handful of
// calls under a budget of thousands still shows.
const minBar = 2.0

// barHeight is v's share of the plot's height, minBar at least when v > 0.
func barHeight(v, top float64) float64 {
	h := chartPlotH * v / top
	if v > 0 {
		h = max(h, minBar)
	}
	return h
}

// bars draws each series' bar in each hour's slot, with the hour and the
// figure as its tooltip.
func (c chart) bars(b *strings.Builder, top float64) {
	if len(c.Bars) == 0 {
		return
	}
	slot := c.x(1) - c.x(0)
	w := slot * 0.76 / float64(len(c.Bars))
	for i := range c.Hours {
		for j, s := range c.Bars {
			v := s.Values[i]
			x := c.x(i) + slot*0.12 + float64(j)*w
			h := barHeight(v, top)
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`,
				num(x), num(chartPadT+chartPlotH-h), num(w), num(h), s.Color, esc(c.tooltip(i, s.Name, v)))
		}
	}
}

// area draws the Area series as a filled line through each hour's end, and
// an invisible slot per hour that carries its tooltip.
func (c chart) area(b *strings.Builder, top float64) {
	s := c.Area
	if s == nil || len(c.Hours) == 0 {
		return
	}
	var pts []string
	for i, v := range s.Values {
		pts = append(pts, num(c.x(i+1))+","+num(c.y(v, top)))
	}
	base := num(chartPadT + chartPlotH)
	fmt.Fprintf(b, `<path d="M%s,%s L%s L%s,%s Z" fill="%s" fill-opacity="0.18"/>`,
		num(c.x(1)), base, strings.Join(pts, " L"), num(c.x(len(s.Values))), base, s.Color)
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"/>`,
		strings.Join(pts, " "), s.Color)
	for i, v := range s.Values {
		fmt.Fprintf(b, `<rect x="%s" y="%d" width="%s" height="%d" fill="#000" fill-opacity="0"><title>%s</title></rect>`,
			num(c.x(i)), chartPadT, num(c.x(i+1)-c.x(i)), chartPlotH, esc(c.tooltip(i, s.Name, v)))
	}
}

// legend names the series and the reference line above the plot.
func (c chart) legend(b *strings.Builder) {
	x := float64(chartPadL)
	const y = 14
	item := func(mark, name string) {
		b.WriteString(mark)
		fmt.Fprintf(b, `<text x="%s" y="%d" dy="0.32em" fill="#333">%s</text>`, num(x+16), y, esc(name))
		x += 16 + 6.3*float64(len([]rune(name))) + 18
	}
	for _, s := range c.series() {
		item(fmt.Sprintf(`<rect x="%s" y="%d" width="11" height="11" fill="%s"/>`, num(x), y-5, s.Color), s.Name)
	}
	if r := c.Ref; r != nil {
		item(fmt.Sprintf(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`,
			num(x), y, num(x+12), y, r.Color), r.Name)
	}
}

// tooltip says one figure of one hour, e.g. "Mar 4 10:00–11:00 UTC, received: 37".
func (c chart) tooltip(i int, name string, v float64) string {
	h := c.Hours[i]
	return fmt.Sprintf("%s–%s UTC, %s: %s", h.Format("Jan 2 15:04"), h.Add(time.Hour).Format("15:04"), name, c.value(v))
}

// tick labels a step of the value axis.
func (c chart) tick(v float64) string {
	if !c.Duration {
		return count(v)
	}
	d := time.Duration(v) * time.Second
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d > time.Hour:
		return humanDuration(d)
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}

// value writes a figure as a tooltip or a description gives it.
func (c chart) value(v float64) string {
	if c.Duration {
		if v == 0 {
			return "none waiting"
		}
		return humanDuration(time.Duration(v) * time.Second)
	}
	return count(v)
}

// count writes a whole number with thousands separated: 8,000.
func count(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// num writes a coordinate with at most two decimals, which is finer than a
// screen pixel and keeps the page small.
func num(f float64) string { return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64) }

func esc(s string) string { return html.EscapeString(s) }
