package statuspage

import (
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/thingsync/thingsync/load"
)

//go:embed page.html
var pageFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":      when,
	"whenp":     whenp,
	"bytes":     humanBytes,
	"num":       number,
	"dur":       duration,
	"age":       age,
	"device":    deviceHref,
	"day":       func(t time.Time) string { return t.Format(time.DateOnly) },
	"f1":        func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"drillRows": func() int { return DrillRows },
}).ParseFS(pageFS, "page.html"))

// view is what the templates render.
type view struct {
	At      time.Time
	From    From
	Problem string

	Status      load.Status
	LastSuccess map[string]time.Time
	Heat        []heatmap
	Runs        []runRow
	Rate        *rateView
	Fleet       fleetView
	Top         []TopDevice
	Month       string

	Day    *DayDrill
	Device *DeviceDrill
}

// Chart geometry, in SVG user units.
const (
	chartW   = 960
	heatRowH = 16
	labelW   = 90
)

var stateColours = [4]string{"#1a7f37", "#57a6e8", "#9a6dd7", "#d1242f"}

type heatmap struct {
	Stream   string
	From, To string
	W, H     int
	Labels   []heatLabel
	Cols     []heatCol
}

type heatLabel struct {
	Y      int
	State  string
	Colour string
}

type heatCol struct {
	Day    string
	X      float64
	W      float64
	Href   string
	Counts [4]int64
	Total  int64
	Cells  []heatCell
	Title  string
}

type heatCell struct {
	Y       int
	State   string
	N       int64
	Colour  string
	Opacity string
}

// heatmaps draws each stream's ledger as a grid: a column per day, a row
// per state, each cell's colour as strong as the share of devices in that
// state that day.
func heatmaps(cov []StreamCoverage) []heatmap {
	var out []heatmap
	for _, sc := range cov {
		if len(sc.Days) == 0 {
			continue
		}
		n := len(sc.Days)
		cw := math.Min(24, float64(chartW-labelW)/float64(n))
		h := heatmap{Stream: sc.Stream, From: sc.Days[0].Day.Format(time.DateOnly), To: sc.Days[n-1].Day.Format(time.DateOnly),
			W: labelW + int(math.Ceil(cw*float64(n))), H: 4 * heatRowH}
		for i, s := range coverageStates {
			h.Labels = append(h.Labels, heatLabel{Y: i*heatRowH + heatRowH - 4, State: s, Colour: stateColours[i]})
		}
		for i, d := range sc.Days {
			day := d.Day.Format(time.DateOnly)
			c := heatCol{Day: day, X: labelW + cw*float64(i), W: cw, Counts: d.Counts, Total: d.Total(),
				Href: "day?" + url.Values{"stream": {sc.Stream}, "day": {day}}.Encode()}
			var parts []string
			for j, s := range coverageStates {
				op := "0"
				if c.Total > 0 && d.Counts[j] > 0 {
					op = strconv.FormatFloat(0.15+0.85*float64(d.Counts[j])/float64(c.Total), 'f', 3, 64)
				}
				c.Cells = append(c.Cells, heatCell{Y: j * heatRowH, State: s, N: d.Counts[j], Colour: stateColours[j], Opacity: op})
				parts = append(parts, fmt.Sprintf("%s %d", s, d.Counts[j]))
			}
			c.Title = fmt.Sprintf("%s %s: %s of %d devices", sc.Stream, day, strings.Join(parts, ", "), c.Total)
			h.Cols = append(h.Cols, c)
		}
		out = append(out, h)
	}
	return out
}

type runRow struct {
	Run
	Took    time.Duration
	BarW    float64
	Class   string
	Running bool
}

func runRows(runs []Run, now time.Time, redact func(string) string) []runRow {
	var longest time.Duration
	for _, r := range runs {
		longest = max(longest, r.Duration(now))
	}
	out := make([]runRow, 0, len(runs))
	for _, r := range runs {
		r.Error = oneLine(redact(r.Error), 300)
		row := runRow{Run: r, Took: r.Duration(now), Class: "st-" + statusClass(r.Status), Running: r.Finished == nil}
		if longest > 0 {
			row.BarW = 120 * float64(row.Took) / float64(longest)
		}
		out = append(out, row)
	}
	return out
}

// statusClass names a run status for the styles; unknown text gets none.
func statusClass(s string) string {
	switch s {
	case "ok", "partial", "failed", "budget", "interrupted", "running", "abandoned":
		return s
	}
	return "other"
}

type rateView struct {
	Run        Run
	W, H       int
	Minutes    int
	Requests   int64
	Throttled  int64
	PeakRate   float64
	Ceiling    float64
	RatePoints string
	CeilPoints string
	Throttles  []point
	YMax       float64
	YTicks     []tick
}

type point struct {
	X, Y float64
	N    int
}

type tick struct {
	Y     float64
	Label string
}

// rateChart draws the run's requests per second, minute by minute,
// against the ceiling the client kept; minutes with throttled answers are
// marked.
func rateChart(run Run, mins []load.RateMinute) *rateView {
	rv := &rateView{Run: run, W: chartW, H: 180, Minutes: len(mins)}
	if len(mins) == 0 {
		return rv
	}
	for _, m := range mins {
		r := float64(m.Requests) / 60
		rv.Requests += int64(m.Requests)
		rv.Throttled += int64(m.Throttled)
		rv.PeakRate = max(rv.PeakRate, r)
		rv.Ceiling = max(rv.Ceiling, m.RateLimit)
	}
	rv.YMax = niceCeil(math.Max(rv.PeakRate, rv.Ceiling) * 1.1)
	plotW, plotH, top := float64(chartW-labelW-10), 150.0, 10.0
	x := func(i int) float64 {
		if len(mins) == 1 {
			return labelW + plotW/2
		}
		return labelW + plotW*float64(i)/float64(len(mins)-1)
	}
	y := func(v float64) float64 { return top + plotH - plotH*v/rv.YMax }
	var rp, cp []string
	for i, m := range mins {
		rp = append(rp, fmt.Sprintf("%.1f,%.1f", x(i), y(float64(m.Requests)/60)))
		cp = append(cp, fmt.Sprintf("%.1f,%.1f", x(i), y(m.RateLimit)))
		if m.Throttled > 0 {
			rv.Throttles = append(rv.Throttles, point{X: x(i), Y: y(float64(m.Requests) / 60), N: m.Throttled})
		}
	}
	rv.RatePoints, rv.CeilPoints = strings.Join(rp, " "), strings.Join(cp, " ")
	for i := 0; i <= 4; i++ {
		v := rv.YMax * float64(i) / 4
		rv.YTicks = append(rv.YTicks, tick{Y: y(v), Label: strconv.FormatFloat(v, 'g', 3, 64) + "/s"})
	}
	return rv
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

type fleetView struct {
	Days       int
	Choices    []int
	From, To   string
	TotalBytes int64
	TotalSMS   int64
	Bytes      barChart
	SMS        barChart
	Rows       []FleetDay
}

type barChart struct {
	W, H int
	Max  string
	Bars []bar
}

type bar struct {
	X, Y, W, H float64
	Day        string
	V          int64
	Title      string
}

func fleetCharts(days []FleetDay, n int) fleetView {
	fv := fleetView{Days: n, Choices: FleetDays, Rows: days}
	if len(days) == 0 {
		return fv
	}
	fv.From, fv.To = days[0].Day.Format(time.DateOnly), days[len(days)-1].Day.Format(time.DateOnly)
	var bs, ss []int64
	for _, d := range days {
		fv.TotalBytes += d.Bytes
		fv.TotalSMS += d.SMS
		bs, ss = append(bs, d.Bytes), append(ss, d.SMS)
	}
	fv.Bytes = bars(days, bs, humanBytes)
	fv.SMS = bars(days, ss, func(v int64) string { return thousands(v) + " SMS" })
	return fv
}

func bars(days []FleetDay, vals []int64, label func(int64) string) barChart {
	bc := barChart{W: chartW, H: 120}
	var top int64
	for _, v := range vals {
		top = max(top, v)
	}
	bc.Max = label(top)
	plotW, plotH := float64(chartW-labelW), 110.0
	w := plotW / float64(len(vals))
	for i, v := range vals {
		h := 0.0
		if top > 0 {
			h = plotH * float64(v) / float64(top)
		}
		day := days[i].Day.Format(time.DateOnly)
		bc.Bars = append(bc.Bars, bar{X: labelW + w*float64(i), W: math.Max(w-1, 0.5), Y: 5 + plotH - h, H: h, Day: day, V: v,
			Title: day + ": " + label(v)})
	}
	return bc
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func whenp(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return when(*t)
}

// age says how long before now t was, roughly.
func age(now time.Time, t *time.Time) string {
	if t == nil {
		return "—"
	}
	return duration(now.Sub(*t))
}

func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func humanBytes(v int64) string {
	const unit = 1000
	if v < unit {
		return strconv.FormatInt(v, 10) + " B"
	}
	f, i := float64(v), -1
	for f >= unit && i < 5 {
		f /= unit
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + string("kMGTPE"[i]) + "B"
}

func thousands(v int64) string {
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// number writes an integer with thousands separators.
func number(v any) string {
	switch n := v.(type) {
	case int:
		return thousands(int64(n))
	case int64:
		return thousands(n)
	}
	return fmt.Sprint(v)
}

func deviceHref(kind, id string) string {
	return "device?" + url.Values{"kind": {kind}, "id": {id}}.Encode()
}
