package statuspage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/internal/sqltest"
	"github.com/thingsync/thingsync/load"
)

// night is when the fixture's second run starts.
var night = time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)

// Hostile text stored in the warehouse, as an API or a failing fetch
// could make it: the page shows it as text, and no script of it runs.
const (
	hostileID    = `<img src=x onerror="document.title='pwned'">`
	hostileError = `<script>document.title='pwned'</script> HTTP 500 from ThingSpace`
	secretText   = "sim-password"
)

// fixture is a warehouse synced from a simulated fleet over two nights
// (some devices always failing, some answers throttled), plus stored
// hostile text and a pending aggregate request; sim saw the second run.
type fixture struct {
	db        string
	sim       *simulator.Simulator
	failing   []string // identifiers of the devices whose fetches fail
	throttled int      // 429s the simulator answered in the last run
	requests  int      // requests the simulator saw in the last run
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := simulator.NewManualClock(night.AddDate(0, 0, -1))
	sim := simulator.New(simulator.Options{Devices: 60, Seed: 5, Fleet: simulator.DefaultFleetMix(), Clock: clock})
	devs := sim.Devices()
	f := &fixture{db: filepath.Join(t.TempDir(), "w.duckdb"), sim: sim,
		failing: []string{devs[3].Identity.ID, devs[7].Identity.ID}}
	sim.SetFaults(simulator.Faults{FailDevices: f.failing, Rate429: 0.08})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	env := sim.ClientEnv(srv.URL, map[string]string{
		"THINGSYNC_DB": f.db, "THINGSYNC_RATE_LIMIT": "5000", "THINGSYNC_STREAMS": "usage,connections,rated",
		"THINGSYNC_START": night.AddDate(0, 0, -45).Format(time.DateOnly),
	})
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), night, config.Needs{API: true})
	if err != nil {
		t.Fatal(err)
	}
	g := load.NewGate(f.db, zerolog.Nop())
	g.Patience = time.Nanosecond
	r := &ingest.Runner{Config: cfg, Log: zerolog.Nop(), Gate: g, Now: clock.Now, TuneClient: func(c *extract.ClientConfig) {
		c.BackoffBase, c.UnexpectedErrorPause, c.MaxRetries = time.Millisecond, time.Millisecond, 8
	}}
	for n := range 2 {
		clock.Set(night.AddDate(0, 0, n-1))
		sim.ResetStats()
		rep, _ := r.Run(context.Background(), ingest.Spec{Kind: "sync", Streams: []string{"usage", "connections", "rated"}})
		if rep.Status != ingest.StatusPartial {
			t.Fatalf("sync %d: %s, want partial (two devices always fail)", n, rep.Status)
		}
	}
	st := sim.Stats()
	f.throttled = st.Status[429] + st.Status[503]
	for _, n := range st.Requests {
		f.requests += n
	}
	wh, err := load.Open(context.Background(), f.db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO devices (device_kind, device_id, state) VALUES ('iccid', ?, 'active')`, []any{hostileID}},
		{`INSERT INTO sync_checkpoints (stream, device_kind, device_id, failures, last_error, updated_at) VALUES ('usage', 'iccid', ?, 9, ?, ?)`,
			[]any{hostileID, hostileError + " password=" + secretText, night}},
		{`INSERT INTO aggregate_requests (request_id, status, requested_at, device_count) VALUES (?, 'pending', ?, 12)`,
			[]any{"req-<b>1</b>", night.Add(-90 * time.Minute)}},
	} {
		if _, err := wh.DB().Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return f
}

// browser starts Debian's chromium, headless; the test fails without it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the status page's browser test needs Debian's chromium (apt-get install chromium; .ci/run installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1100, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// evalJSON runs js in the page and decodes its JSON answer into out.
func evalJSON(t *testing.T, ctx context.Context, js string, out any) {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(`+js+`)`))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
}

// The page, loaded in a real browser over a warehouse synced from the
// simulator, shows in every panel the numbers the warehouse holds; its
// drill-downs list a day's devices and a device's rows; hostile stored
// text shows as text and runs nothing; a screenshot is saved.
func TestPageInBrowser(t *testing.T) {
	f := newFixture(t)
	db, err := load.OpenReadOnly(context.Background(), f.db)
	if err != nil {
		t.Fatal(err)
	}
	// Ground truth is read before the page holds the file too (DuckDB
	// lets one process open it read-only twice).
	want := readTruth(t, db)
	db.Close()

	page := New(Options{Source: FileSource(f.db, ""), Now: func() time.Time { return night.Add(time.Hour) },
		Lookback: map[string]time.Duration{"usage": 72 * time.Hour, "connections": 24 * time.Hour},
		Redact:   func(s string) string { return strings.ReplaceAll(s, secretText, "[redacted]") }})
	srv := httptest.NewServer(page.Handler())
	defer srv.Close()

	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#top"))); err != nil {
		t.Fatal(err)
	}
	title := get(t, ctx, chromedp.Title())
	html := get(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	shot := get(t, ctx, chromedp.FullScreenshot(80))
	out := filepath.Join(t.TempDir(), "statuspage.jpg")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
	if title != "thingsync — status" || strings.Contains(html, secretText) {
		t.Errorf("title %q (a stored script ran?), secret shown: %v", title, strings.Contains(html, secretText))
	}

	// Freshness.
	var fresh []map[string]string
	evalJSON(t, ctx, `[...document.querySelectorAll('#freshness-table tr[data-stream]')].map(r => ({stream: r.dataset.stream,
		devices: r.dataset.devices, failing: r.dataset.failing, oldest: r.querySelector('[data-oldest]').dataset.oldest,
		median: r.querySelector('[data-median]').dataset.median, last: r.querySelector('[data-last-success]').dataset.lastSuccess}))`, &fresh)
	if !slices.EqualFunc(fresh, want.fresh, func(a, b map[string]string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Errorf("freshness:\n got %v\nwant %v", fresh, want.fresh)
	}

	// Coverage heatmap: every stream's every day and state.
	var heat []string
	evalJSON(t, ctx, `[...document.querySelectorAll('svg.heat')].flatMap(s => [...s.querySelectorAll('a[data-day]')].map(a =>
		[s.dataset.stream, a.dataset.day, a.dataset.settled, a.dataset.provisional, a.dataset.pending, a.dataset.missing].join(' ')))`, &heat)
	if len(heat) < 80 || !slices.Equal(heat, want.heat) {
		t.Errorf("heatmap: %d cells, want %d; first difference: %s", len(heat), len(want.heat), firstDiff(heat, want.heat))
	}

	// Run history.
	var runs []string
	evalJSON(t, ctx, `[...document.querySelectorAll('#runs-table tr[data-run]')].map(r => [r.dataset.run, r.dataset.status, r.dataset.requests, r.dataset.rows].join(' '))`, &runs)
	if !slices.Equal(runs, want.runs) {
		t.Errorf("runs:\n got %v\nwant %v", runs, want.runs)
	}

	// The last run's request rate: what the simulator saw.
	var rate map[string]string
	evalJSON(t, ctx, `document.querySelector('#rate-summary').dataset`, &rate)
	if rate["requests"] != fmt.Sprint(f.requests) || rate["throttled"] != fmt.Sprint(f.throttled) || f.throttled == 0 ||
		rate["requests"] != want.lastRequests {
		t.Errorf("rate: page %v; the simulator saw %d requests, %d throttled; sync_runs says %s", rate, f.requests, f.throttled, want.lastRequests)
	}

	// Failing devices and pending requests, hostile text as text.
	var failing struct {
		Total  string
		IDs    []string
		Errors []string
	}
	evalJSON(t, ctx, `({total: document.querySelector('#failing-total').dataset.total,
		ids: [...document.querySelectorAll('#failing-table tr[data-device]')].map(r => r.dataset.device),
		errors: [...document.querySelectorAll('#failing-table td.err')].map(td => td.textContent)})`, &failing)
	if failing.Total != want.failingTotal || !slices.Equal(failing.IDs, want.failingIDs) || len(failing.Errors) == 0 ||
		failing.Errors[0] != hostileError+" password=[redacted]" {
		t.Errorf("failing: %+v\nwant total %s, ids %v, first error %q", failing, want.failingTotal, want.failingIDs, hostileError+" password=[redacted]")
	}
	var pending []string
	evalJSON(t, ctx, `[document.querySelector('#pending-total').dataset.total, ...[...document.querySelectorAll('#pending-table tr[data-request]')].map(r => r.dataset.request + ' ' + r.cells[2].textContent)]`, &pending)
	if !slices.Equal(pending, []string{"1", "req-<b>1</b> 2h30m"}) {
		t.Errorf("pending: %q", pending)
	}

	// Fleet usage over 30 days, and this month's top devices.
	var fleet []string
	evalJSON(t, ctx, `[document.querySelector('#fleet-summary').dataset.bytes, document.querySelector('#fleet-summary').dataset.sms,
		...[...document.querySelectorAll('#fleet-bytes rect')].map(r => r.dataset.day + ' ' + r.dataset.v)]`, &fleet)
	if !slices.Equal(fleet, want.fleet) {
		t.Errorf("fleet: first difference %s", firstDiff(fleet, want.fleet))
	}
	var top []string
	evalJSON(t, ctx, `[...document.querySelectorAll('#top-table tr[data-device]')].map(r => [r.dataset.device, r.dataset.bytes, r.dataset.sms].join(' '))`, &top)
	if len(top) != TopShown || !slices.Equal(top, want.top) {
		t.Errorf("top:\n got %v\nwant %v", top, want.top)
	}

	// Drill down: a day of the connections heatmap, then a failing device.
	day := want.drillDay
	var counts map[string]string
	var listed int
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`svg.heat[data-stream="connections"] a[data-day="`+day+`"] rect`)),
		chromedp.WaitVisible(chromedp.CSS("#day-counts"))); err != nil {
		t.Fatal(err)
	}
	evalJSON(t, ctx, `document.querySelector('#day-counts').dataset`, &counts)
	evalJSON(t, ctx, `document.querySelectorAll('#day-table tr[data-device]').length`, &listed)
	if fmt.Sprint(counts) != fmt.Sprint(want.dayCounts) || listed != want.dayDevices {
		t.Errorf("day %s: counts %v, %d listed; want %v, %d", day, counts, listed, want.dayCounts, want.dayDevices)
	}
	var failures map[string]string
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#failing-table")),
		chromedp.Click(chromedp.CSS(`#failing-table tr[data-device] a`)),
		chromedp.WaitVisible(chromedp.CSS("#device-checkpoints"))); err != nil {
		t.Fatal(err)
	}
	title = get(t, ctx, chromedp.Title())
	evalJSON(t, ctx, `Object.fromEntries([...document.querySelectorAll('#device-checkpoints tr[data-stream]')].map(r => [r.dataset.stream, r.dataset.failures]))`, &failures)
	heading := get(t, ctx, chromedp.Text(chromedp.CSS("#device-title")))
	if title != "thingsync — device" || heading != want.drillDevice || fmt.Sprint(failures) != fmt.Sprint(want.drillFailures) {
		t.Errorf("device page %q: %q failures %v; want %q %v", title, heading, failures, want.drillDevice, want.drillFailures)
	}
}

// get runs a in the browser, failing the test on an error.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("#%d: got %q, want %q", i, g, w)
		}
	}
	return "none"
}

// truth is what the page should show, read with SQL of its own.
type truth struct {
	fresh                    []map[string]string
	heat, runs, fleet, top   []string
	lastRequests             string
	failingTotal             string
	failingIDs               []string
	drillDay                 string
	dayCounts, drillFailures map[string]string
	dayDevices               int
	drillDevice              string
}

func readTruth(t *testing.T, db *sql.DB) truth {
	t.Helper()
	var w truth
	ts := `coalesce(strftime(%s AT TIME ZONE 'UTC', '%%Y-%%m-%%d %%H:%%M UTC'), '—')`
	for _, line := range sqltest.Strings(t, db, `SELECT concat_ws('|', stream, count(*), count(*) FILTER (WHERE failures > 0),
		`+fmt.Sprintf(ts, "min(settled_until) FILTER (WHERE NOT coalesce(retired, false) AND idle_since IS NULL)")+`,
		`+fmt.Sprintf(ts, "quantile_disc(settled_until, 0.5) FILTER (WHERE NOT coalesce(retired, false) AND idle_since IS NULL)")+`,
		(SELECT `+fmt.Sprintf(ts, "max(finished_at)")+` FROM sync_runs WHERE status = 'partial'))
		FROM sync_checkpoints GROUP BY stream ORDER BY list_position(['usage', 'connections', 'rated'], stream)`) {
		p := strings.Split(line, "|")
		w.fresh = append(w.fresh, map[string]string{"stream": p[0], "devices": p[1], "failing": p[2], "oldest": p[3], "median": p[4], "last": p[5]})
	}
	w.heat = sqltest.Strings(t, db, `SELECT concat_ws(' ', stream, day, count(*) FILTER (WHERE state = 'settled'), count(*) FILTER (WHERE state = 'provisional'),
		count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'missing'))
		FROM coverage_days GROUP BY stream, day ORDER BY stream DESC, day`)
	w.runs = sqltest.Strings(t, db, `SELECT concat_ws(' ', run_id, status, requests, usage_inserted + usage_updated + events_inserted + events_updated + rated_upserted + aggregate_upserted)
		FROM sync_runs ORDER BY started_at DESC`)
	w.lastRequests = sqltest.Strings(t, db, `SELECT CAST(requests AS VARCHAR) FROM sync_runs ORDER BY started_at DESC LIMIT 1`)[0]
	w.failingTotal = sqltest.Strings(t, db, `SELECT CAST(count(*) AS VARCHAR) FROM sync_checkpoints WHERE failures > 0`)[0]
	w.failingIDs = sqltest.Strings(t, db, `SELECT device_id FROM sync_checkpoints WHERE failures > 0
		ORDER BY failures DESC, updated_at DESC NULLS LAST, stream, device_kind, device_id LIMIT 10`)
	today := night.Truncate(24 * time.Hour)
	w.fleet = append(sqltest.Strings(t, db, `SELECT CAST(coalesce(sum(bytes_used), 0) AS VARCHAR) FROM usage_daily WHERE usage_date BETWEEN ? AND ?`, today.AddDate(0, 0, -29), today),
		sqltest.Strings(t, db, `SELECT CAST(coalesce(sum(sms_used), 0) AS VARCHAR) FROM usage_daily WHERE usage_date BETWEEN ? AND ?`, today.AddDate(0, 0, -29), today)...)
	for i := 29; i >= 0; i-- {
		d := today.AddDate(0, 0, -i)
		w.fleet = append(w.fleet, d.Format(time.DateOnly)+" "+sqltest.Strings(t, db, `SELECT CAST(coalesce(sum(bytes_used), 0) AS VARCHAR) FROM usage_daily WHERE usage_date = ?`, d)[0])
	}
	w.top = sqltest.Strings(t, db, `SELECT concat_ws(' ', device_id, sum(bytes_used), sum(sms_used)) FROM usage_daily
		WHERE usage_date >= DATE '2026-11-01' GROUP BY device_kind, device_id ORDER BY sum(bytes_used) DESC, device_kind, device_id LIMIT 10`)
	// The day drilled into: the connections day with the most states.
	w.drillDay = sqltest.Strings(t, db, `SELECT CAST(day AS VARCHAR) FROM coverage_days WHERE stream = 'connections'
		GROUP BY day ORDER BY count(DISTINCT state) DESC, count(*) FILTER (WHERE state = 'missing') DESC, day DESC LIMIT 1`)[0]
	w.dayCounts = map[string]string{}
	for _, s := range []string{"settled", "provisional", "pending", "missing"} {
		w.dayCounts[s] = sqltest.Strings(t, db, `SELECT CAST(count(*) AS VARCHAR) FROM coverage_days WHERE stream = 'connections' AND day = ? AND state = ?`, w.drillDay, s)[0]
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM coverage_days WHERE stream = 'connections' AND day = ?`, w.drillDay).Scan(&n); err != nil {
		t.Fatal(err)
	}
	w.dayDevices = min(n, DrillRows)
	first := sqltest.Strings(t, db, `SELECT device_kind || ':' || device_id FROM sync_checkpoints WHERE failures > 0
		ORDER BY failures DESC, updated_at DESC NULLS LAST, stream, device_kind, device_id LIMIT 1`)[0]
	w.drillDevice = first
	w.drillFailures = map[string]string{}
	for _, line := range sqltest.Strings(t, db, `SELECT stream || ' ' || coalesce(failures, 0) FROM sync_checkpoints WHERE device_kind || ':' || device_id = ?`, first) {
		s, v, _ := strings.Cut(line, " ")
		w.drillFailures[s] = v
	}
	return w
}
