package handlers

import (
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svgNode is an element of a drawn chart, read back as XML.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []svgNode  `xml:",any"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n svgNode) float(t *testing.T, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return f
}

// walk visits n and every element below it.
func (n svgNode) walk(visit func(svgNode)) {
	visit(n)
	for _, c := range n.Children {
		c.walk(visit)
	}
}

// parseSVG reads a drawn chart strictly as XML: a chart that is not
// well-formed fails here, though an HTML parser would have forgiven it.
func parseSVG(t *testing.T, s string) svgNode {
	t.Helper()
	var root svgNode
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	if err := d.Decode(&root); err != nil {
		t.Fatalf("chart is not well-formed XML: %v\n%s", err, s)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("chart has more than one root element: %v", err)
	}
	return root
}

// cspSafe fails on anything in a chart that the /ops Content-Security-Policy
// (default-src 'none', styles only by hash) would block or that runs code:
// a style element or attribute, a script, an event handler, a link or an
// embedded resource.
func cspSafe(t *testing.T, root svgNode) {
	t.Helper()
	root.walk(func(n svgNode) {
		switch n.XMLName.Local {
		case "style", "script", "foreignObject", "image", "use", "a":
			t.Errorf("chart has a <%s> element", n.XMLName.Local)
		}
		for _, a := range n.Attrs {
			name := strings.ToLower(a.Name.Local)
			if name == "style" || strings.HasPrefix(name, "on") || name == "href" || strings.Contains(a.Value, "url(") {
				t.Errorf("<%s> has %s=%q", n.XMLName.Local, a.Name.Local, a.Value)
			}
		}
	})
}

func hoursFrom(start time.Time, n int) []time.Time {
	h := make([]time.Time, n)
	for i := range h {
		h[i] = start.Add(time.Duration(i) * time.Hour)
	}
	return h
}

// TestChartSVG draws charts of known figures and reads them back: each is
// well-formed XML that the page's policy lets through, bars stand as high as
// their values in proportion, every bar says its hour and figure, the
// budget line sits at its value, and names cannot inject markup.
func TestChartSVG(t *testing.T) {
	start := time.Date(2026, 3, 3, 21, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		chart chart
		// bars are the values of the bars in drawing order: hour by hour,
		// series by series.
		bars     []float64
		ref      float64
		tooltips []string
		texts    []string
	}{
		{
			name: "two series",
			chart: chart{ID: "c1", Title: "Received <and> imported", Desc: "d & d", Hours: hoursFrom(start, 4),
				Bars: []chartSeries{{"received", "#111", []float64{10, 0, 35, 7}}, {"imp<orted>", "#222", []float64{5, 20, 35, 0}}}},
			bars:     []float64{10, 5, 0, 20, 35, 35, 7, 0},
			tooltips: []string{"Mar 3 21:00–22:00 UTC, received: 10", "Mar 4 00:00–01:00 UTC, imp<orted>: 0"},
			texts:    []string{"Received <and> imported", "d & d", "imp<orted>", "Mar 4", "00:00", "0", "10", "20", "30", "40"},
		},
		{
			name: "a budget line above every bar",
			chart: chart{ID: "c2", Title: "CC calls", Hours: hoursFrom(start, 3),
				Bars: []chartSeries{{"CC calls", "#333", []float64{120, 1500, 80}}},
				Ref:  &chartRef{Name: "budget", Color: "#f00", Value: 8000.0 / 24}},
			bars:     []float64{120, 1500, 80},
			ref:      8000.0 / 24,
			tooltips: []string{"Mar 3 22:00–23:00 UTC, CC calls: 1,500"},
			texts:    []string{"budget", "1,500"},
		},
		{
			name: "a few calls under a large budget stay visible",
			chart: chart{ID: "c5", Title: "CC calls", Hours: hoursFrom(start, 2),
				Bars: []chartSeries{{"CC calls", "#333", []float64{0, 5}}},
				Ref:  &chartRef{Name: "budget", Color: "#f00", Value: 10000.0 / 24}},
			bars: []float64{0, 5},
			ref:  10000.0 / 24,
		},
		{
			name: "nothing waiting",
			chart: chart{ID: "c6", Title: "oldest", Hours: hoursFrom(start, 3), Duration: true, Empty: "nothing waited",
				Area: &chartSeries{"oldest waiting", "#444", []float64{0, 0, 0}}},
			texts: []string{"nothing waited", "0", "15s", "1m"},
		},
		{
			name: "nothing at all",
			chart: chart{ID: "c3", Title: "quiet", Hours: hoursFrom(start, 48),
				Bars: []chartSeries{{"received", "#111", make([]float64, 48)}}},
			bars:  make([]float64, 48),
			texts: []string{"none in these 48 hours", "1"},
		},
		{
			name: "ages",
			chart: chart{ID: "c4", Title: "oldest", Hours: hoursFrom(start, 3), Duration: true,
				Area: &chartSeries{"oldest waiting", "#444", []float64{0, 5400, 600}}},
			tooltips: []string{"Mar 3 21:00–22:00 UTC, oldest waiting: none waiting", "Mar 3 22:00–23:00 UTC, oldest waiting: 1h 30m"},
			texts:    []string{"0", "30m", "1h", "1h 30m"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := parseSVG(t, tc.chart.svg())
			cspSafe(t, root)
			if root.XMLName.Local != "svg" || root.attr("role") != "img" {
				t.Fatalf("root <%s role=%q>, want an svg image", root.XMLName.Local, root.attr("role"))
			}
			top, _ := tc.chart.scale()
			var bars []svgNode
			var tooltips, texts []string
			var title, desc string
			root.walk(func(n svgNode) {
				switch n.XMLName.Local {
				case "rect":
					if n.attr("fill-opacity") != "0" && len(n.Children) > 0 {
						bars = append(bars, n)
					}
					for _, c := range n.Children {
						tooltips = append(tooltips, c.Text)
					}
				case "text":
					texts = append(texts, n.Text)
				}
			})
			for _, c := range root.Children {
				switch c.XMLName.Local {
				case "title":
					title = c.Text
				case "desc":
					desc = c.Text
				}
			}
			if title != tc.chart.Title || desc != tc.chart.Desc || root.attr("aria-labelledby") != tc.chart.ID+"-title" {
				t.Errorf("title %q, desc %q, labelled by %q", title, desc, root.attr("aria-labelledby"))
			}
			if len(bars) != len(tc.bars) {
				t.Fatalf("%d bars, want %d", len(bars), len(tc.bars))
			}
			// Each bar's height is its value's share of the axis (a bar
			// above zero stays visible), and it stands on the axis.
			for i, b := range bars {
				h, y := b.float(t, "height"), b.float(t, "y")
				want := chartPlotH * tc.bars[i] / top
				if tc.bars[i] > 0 {
					want = max(want, minBar)
				}
				if math.Abs(h-want) > 0.01 {
					t.Errorf("bar %d (value %v) is %v high, want %v", i, tc.bars[i], h, want)
				}
				if math.Abs(y+h-(chartPadT+chartPlotH)) > 0.02 {
					t.Errorf("bar %d ends at %v, not on the axis at %v", i, y+h, chartPadT+chartPlotH)
				}
			}
			if tc.ref > 0 {
				var found bool
				root.walk(func(n svgNode) {
					if n.XMLName.Local == "line" && n.attr("stroke-dasharray") == "6 4" && n.attr("x2") != n.attr("x1") &&
						math.Abs(n.float(t, "y1")-tc.chart.y(tc.ref, top)) < 0.01 && n.float(t, "x2")-n.float(t, "x1") > 100 {
						found = true
					}
				})
				if !found {
					t.Errorf("no dashed line across the plot at %v", tc.ref)
				}
			}
			for _, want := range tc.tooltips {
				if !contains(tooltips, want) {
					t.Errorf("no tooltip %q among %q", want, tooltips)
				}
			}
			for _, want := range tc.texts {
				if !contains(texts, want) && title != want && desc != want {
					t.Errorf("no text %q among %q", want, texts)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestNiceStep: axis steps are round, for counts and for ages.
func TestNiceStep(t *testing.T) {
	tests := []struct {
		least    float64
		duration bool
		want     float64
	}{
		{0, false, 1}, {0.3, false, 1}, {1.2, false, 2}, {3, false, 5}, {7, false, 10}, {375, false, 500}, {2001, false, 5000},
		{0, true, 1}, {40, true, 60}, {1350, true, 1800}, {4000, true, 7200}, {90000, true, 172800},
	}
	for _, tc := range tests {
		if got := niceStep(tc.least, tc.duration); got != tc.want {
			t.Errorf("niceStep(%v, %v) = %v, want %v", tc.least, tc.duration, got, tc.want)
		}
	}
}
