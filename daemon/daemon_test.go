package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

// The daemon's own logic with a stand-in sync: what real runs cannot be
// made to do on demand (panic, hang while the schedule fires).

func testDaemon(t *testing.T, run func(ctx context.Context, g *load.Gate) (ingest.Report, error)) (*Daemon, string) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "w.duckdb")
	g := load.NewGate(db, zerolog.Nop())
	d := New(Options{Log: zerolog.Nop(), Gate: g, Streams: []string{"usage"},
		Sync: func(ctx context.Context, _ ingest.Observer) (ingest.Report, error) { return run(ctx, g) }})
	return d, db
}

// A panic in a run is recovered: the run is failed in sync_runs, the
// metrics and /healthz (503, saying so), and the daemon goes on.
func TestDaemonPanicIsAFailedRun(t *testing.T) {
	d, db := testDaemon(t, func(ctx context.Context, g *load.Gate) (ingest.Report, error) {
		wh, release, err := g.Acquire(ctx)
		if err != nil {
			return ingest.Report{}, err
		}
		defer release()
		if _, err := wh.StartRun(ctx, "scheduled", []string{"usage"}, time.Now().UTC()); err != nil {
			return ingest.Report{}, err
		}
		var m map[string]int
		m["boom"]++ // a nil map: a real bug's panic
		return ingest.Report{}, nil
	})
	d.Trigger(context.Background(), "test")

	mux := http.NewServeMux()
	d.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h Health
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(h.Reason, "panicked") || h.LastRun == nil || !h.LastRun.Panicked {
		t.Errorf("/healthz = %d %+v; want 503 saying the run panicked", resp.StatusCode, h)
	}
	if got := testCounter(t, d.metrics.runs.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed runs = %v, want 1", got)
	}

	rdb, err := load.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var runs int
	var status string
	var panicked bool
	err = rdb.QueryRow(`SELECT count(*) OVER (), status, error LIKE '%panicked%' FROM sync_runs`).Scan(&runs, &status, &panicked)
	if err != nil || runs != 1 || status != "failed" || !panicked {
		t.Errorf("sync_runs: %d runs, %q, error says panicked %v (%v); want the one panicked run failed", runs, status, panicked, err)
	}
}

// A tick while a run goes on is skipped; after stop no run starts, and stop
// waits for the run in flight.
func TestDaemonSkipsOverlapAndStops(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	d, _ := testDaemon(t, func(ctx context.Context, g *load.Gate) (ingest.Report, error) {
		started <- struct{}{}
		<-release
		return ingest.Report{Status: "ok", Finished: time.Now()}, nil
	})
	ctx := context.Background()
	go d.Trigger(ctx, "first")
	<-started
	d.Trigger(ctx, "second") // returns at once: skipped
	if got := testCounter(t, d.metrics.skipped); got != 1 {
		t.Errorf("skipped = %v, want 1", got)
	}
	if h, _ := d.Health(); !h.Running || h.Runs != 0 {
		t.Errorf("health during the run: %+v", h)
	}

	stopped := make(chan struct{})
	go func() { d.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while a run was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	d.Trigger(ctx, "after stop")
	select {
	case <-started:
		t.Error("a run started after stop")
	default:
	}
	if h, ok := d.Health(); ok || h.Runs != 1 || h.Reason != "shutting down" {
		t.Errorf("health after stop: %+v, %v", h, ok)
	}
}

// testCounter reads a counter's value.
func testCounter(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The request rate is the mean over the last whole seconds of the window:
// the second still going is left out, and what is older than the window is
// forgotten.
func TestRateWindow(t *testing.T) {
	now := time.Unix(100, 0)
	r := newRateWindow(30*time.Second, func() time.Time { return now })
	for range 30 {
		r.add()
	}
	now = now.Add(time.Second) // 101
	for range 60 {
		r.add()
	}
	now = now.Add(500 * time.Millisecond)
	if got := r.perSecond(); got != 1 {
		t.Errorf("at 101.5 s: %v/s, want 1 (30 in second 100; second 101 not over)", got)
	}
	now = time.Unix(102, 0)
	if got := r.perSecond(); got != 3 {
		t.Errorf("at 102 s: %v/s, want 3 (90 over 30 s)", got)
	}
	now = time.Unix(131, 0)
	if got := r.perSecond(); got != 2 {
		t.Errorf("at 131 s: %v/s, want 2 (second 100 is out of the window)", got)
	}
	r.add() // into a bucket that counted an older second
	now = time.Unix(132, 0)
	if got := r.perSecond(); float64(int(got*30+0.5)) != 1 {
		t.Errorf("at 132 s: %v/s, want 1/30 (second 101 is out, one request in 131)", got)
	}
}

// Devices done and left are the highest reported in the running run
// (devices finish on several goroutines, their reports cross), and start
// again from zero with the next run.
func TestMetricsProgress(t *testing.T) {
	m := newMetrics(time.Now)
	gauge := func(g prometheus.Gauge) float64 {
		var d dto.Metric
		if err := g.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetGauge().GetValue()
	}
	m.started()
	m.Progress(extract.Progress{DevicesTotal: 10, DevicesDone: 4, Listing: true})
	m.Progress(extract.Progress{DevicesTotal: 8, DevicesDone: 3, Listing: true}) // an earlier report, late
	if done, left := gauge(m.devicesDone), gauge(m.devicesLeft); done != 4 || left != 6 {
		t.Errorf("done %v, left %v; want 4 and 6", done, left)
	}
	m.Progress(extract.Progress{DevicesTotal: 12, DevicesDone: 12})
	if done, left := gauge(m.devicesDone), gauge(m.devicesLeft); done != 12 || left != 0 {
		t.Errorf("done %v, left %v; want 12 and 0", done, left)
	}
	m.started()
	m.Progress(extract.Progress{DevicesTotal: 5, DevicesDone: 1})
	if done, left := gauge(m.devicesDone), gauge(m.devicesLeft); done != 1 || left != 4 {
		t.Errorf("next run: done %v, left %v; want 1 and 4", done, left)
	}
}

// A scheduled run may fetch THINGSYNC_RUN_BUDGET when it is set (0: no
// limit), otherwise 90% of the time to the schedule's next run.
func TestBudget(t *testing.T) {
	daily, err := cron.ParseStandard("0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 2, 0, 1, 0, time.UTC)
	for _, tc := range []struct {
		name string
		set  bool
		conf time.Duration
		want time.Duration
	}{
		{"default: 90% of the day to the next run", false, 0, time.Duration(float64(24*time.Hour-time.Second) * 0.9)},
		{"set", true, 3 * time.Hour, 3 * time.Hour},
		{"set to 0: no limit", true, 0, 0},
	} {
		if got := Budget(tc.set, tc.conf, daily, at); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Staleness read after a run is exported as ages at scrape time: they
// grow between runs as the data does.
func TestStalenessMetrics(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	m := newMetrics(func() time.Time { return now })
	oldest, median := now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	m.staleness.set(load.Staleness{Streams: []load.StreamStatus{{Name: "usage", Oldest: &oldest, Median: &median}, {Name: "rated"}},
		NotVisited: &load.NotVisited{Runs: 3, Devices: 40}})
	now = now.Add(time.Hour)
	srv := httptest.NewServer(m.handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`thingsync_settled_oldest_age_seconds{stream="usage"} 176400`,
		`thingsync_settled_median_age_seconds{stream="usage"} 90000`, `thingsync_devices_not_visited{runs="3"} 40`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), `stream="rated"`) {
		t.Error("a stream without checkpoints has an age")
	}
}
