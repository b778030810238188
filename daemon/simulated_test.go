package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/internal/metricstest"
	"github.com/thingsync/thingsync/load"
)

// The daemon's metrics against real runs: a simulated account, a real
// warehouse file, the runner the daemon runs, and /metrics over loopback.

var simT0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// simWorld is a daemon whose runs sync a simulated account.
type simWorld struct {
	t    *testing.T
	sim  *simulator.Simulator
	d    *Daemon
	base string // the daemon's /metrics and /healthz, over loopback
}

// newSimWorld starts a simulator with opts and a daemon that syncs it into a
// new warehouse; snapshot is THINGSYNC_SNAPSHOT (empty: none).
func newSimWorld(t *testing.T, opts simulator.Options, snapshot string) *simWorld {
	t.Helper()
	clock := simulator.NewManualClock(simT0)
	opts.Clock, opts.Seed = clock, 7
	sim := simulator.New(opts)
	api := httptest.NewServer(sim)
	t.Cleanup(func() { api.Close(); sim.Close() })
	db := filepath.Join(t.TempDir(), "w.duckdb")
	env := sim.ClientEnv(api.URL, map[string]string{
		"THINGSYNC_DB": db, "THINGSYNC_RATE_LIMIT": "5000", "THINGSYNC_CONCURRENCY": "4",
		"THINGSYNC_STREAMS": "usage,connections", "THINGSYNC_SNAPSHOT": snapshot,
	})
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), simT0, config.Needs{API: true})
	if err != nil {
		t.Fatal(err)
	}
	g := load.NewGate(db, zerolog.Nop())
	runner := &ingest.Runner{Config: cfg, Log: zerolog.Nop(), Gate: g, Now: clock.Now, TuneClient: func(c *extract.ClientConfig) {
		c.BackoffBase, c.UnexpectedErrorPause, c.MaxRetries = 2*time.Millisecond, 5*time.Millisecond, 3
	}}
	d := New(Options{Log: zerolog.Nop(), Gate: g, Snapshot: cfg.Snapshot, Streams: cfg.Streams, Now: clock.Now,
		Sync: func(ctx context.Context, obs ingest.Observer) (ingest.Report, error) {
			return runner.Run(ctx, ingest.Spec{Kind: "scheduled", Streams: cfg.Streams, Observer: obs})
		}})
	mux := http.NewServeMux()
	d.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &simWorld{t: t, sim: sim, d: d, base: srv.URL}
}

// run runs one sync through the daemon and returns its status.
func (w *simWorld) run() string {
	w.t.Helper()
	w.d.Trigger(context.Background(), "test")
	h, _ := w.d.Health()
	if h.LastRun == nil {
		w.t.Fatal("no run recorded")
	}
	return h.LastRun.Status
}

// scrape is the daemon's /metrics, as served.
func (w *simWorld) scrape() (map[string]*dto.MetricFamily, string) {
	w.t.Helper()
	resp, err := http.Get(w.base + "/metrics")
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		w.t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	mf, err := metricstest.Parse(string(b))
	if err != nil {
		w.t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	return mf, string(b)
}

// value is metricstest.Value.
func value(mf map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	return metricstest.Value(mf, name, labels...)
}

// The throttled answers are counted as they come, by status, so that the
// share of 429s is a ratio of two counters: /metrics counts exactly the
// 429s the API answered, and their retries.
func TestMetricsCountThrottledAnswers(t *testing.T) {
	w := newSimWorld(t, simulator.Options{Devices: 6, Faults: simulator.Faults{Rate429: 0.2}}, "")
	if st := w.run(); st != ingest.StatusOK {
		t.Fatalf("run: %s, want ok (the retries get through)", st)
	}
	mf, _ := w.scrape()
	answered := w.sim.Stats().Status[http.StatusTooManyRequests]
	got, _ := value(mf, "thingsync_api_requests_total", "status=429")
	all, _ := value(mf, "thingsync_api_requests_total")
	retries, _ := value(mf, "thingsync_api_retries_total")
	t.Logf("429s: %v of %v requests, %v retries", got, all, retries)
	if answered == 0 || got != float64(answered) {
		t.Errorf("thingsync_api_requests_total{status=\"429\"} = %v; the simulator answered %d 429s", got, answered)
	}
	if retries < got {
		t.Errorf("%v retries for %v 429s: each 429 is retried", retries, got)
	}
	if all <= got {
		t.Errorf("%v requests in all for %v 429s", all, got)
	}
}

// A device whose fetches fail run after run is counted as failing from its
// FailingRuns-th failed run, and no longer once a run fetches it; the last
// run's outcome follows the runs.
func TestMetricsDeviceFailingRuns(t *testing.T) {
	w := newSimWorld(t, simulator.Options{Devices: 4}, "")
	var failing string
	for _, dev := range w.sim.Devices() {
		if !dev.Deactivated && !dev.Silent {
			failing = dev.Identity.ID
		}
	}
	w.sim.SetFaults(simulator.Faults{FailDevices: []string{failing}})
	series := "runs=" + strconv.Itoa(load.FailingRuns)
	for run := 1; run <= load.FailingRuns; run++ {
		if st := w.run(); st != ingest.StatusPartial {
			t.Fatalf("run %d: %s, want partial (one device fails)", run, st)
		}
		mf, _ := w.scrape()
		want := 0.0
		if run == load.FailingRuns {
			want = 1
		}
		if got, ok := value(mf, "thingsync_devices_failing", series); !ok || got != want {
			t.Errorf("after %d failed runs: thingsync_devices_failing{%s} = %v (%v), want %v", run, series, got, ok, want)
		}
		if got, _ := value(mf, "thingsync_last_run_status", "status=partial"); got != 1 {
			t.Errorf("after run %d: thingsync_last_run_status{status=\"partial\"} = %v, want 1", run, got)
		}
	}
	w.sim.SetFaults(simulator.Faults{})
	if st := w.run(); st != ingest.StatusOK {
		t.Fatalf("run after the fault: %s, want ok", st)
	}
	mf, _ := w.scrape()
	if got, _ := value(mf, "thingsync_devices_failing", series); got != 0 {
		t.Errorf("after an ok run: %v devices failing, want 0", got)
	}
	for _, st := range runOutcomes() {
		want := 0.0
		if st == ingest.StatusOK {
			want = 1
		}
		if got, _ := value(mf, "thingsync_last_run_status", "status="+st); got != want {
			t.Errorf("after an ok run: thingsync_last_run_status{status=%q} = %v, want %v", st, got, want)
		}
	}
}

// A rejected login fails the run and halts the daemon, which /metrics says
// until a restart; the next tick does not log in again.
func TestMetricsLoginRejected(t *testing.T) {
	w := newSimWorld(t, simulator.Options{Devices: 2}, "")
	mf, _ := w.scrape()
	if got, ok := value(mf, "thingsync_login_rejected"); !ok || got != 0 {
		t.Errorf("before any run: thingsync_login_rejected = %v (%v), want 0", got, ok)
	}
	w.sim.SetFaults(simulator.Faults{RejectLogin: true})
	if st := w.run(); st != ingest.StatusFailed {
		t.Fatalf("run: %s, want failed", st)
	}
	w.d.Trigger(context.Background(), "the next tick")
	mf, _ = w.scrape()
	for _, c := range []struct {
		name  string
		label []string
		want  float64
	}{
		{"thingsync_login_rejected", nil, 1},
		{"thingsync_last_run_status", []string{"status=failed"}, 1},
		{"thingsync_runs_total", []string{"status=failed"}, 1},
		{"thingsync_runs_skipped_total", nil, 1},
	} {
		if got, _ := value(mf, c.name, c.label...); got != c.want {
			t.Errorf("after the rejected login: %s%v = %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if n := w.sim.Stats().Logins; n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
}

// The snapshot's publication time is the file's at start (its age goes on
// across a restart), then each publication's.
func TestMetricsSnapshotTime(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "snapshot.duckdb")
	if err := os.WriteFile(snap, []byte("published before the restart"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-30 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(snap, before, before); err != nil {
		t.Fatal(err)
	}
	w := newSimWorld(t, simulator.Options{Devices: 2}, snap)
	mf, _ := w.scrape()
	if got, _ := value(mf, "thingsync_last_snapshot_timestamp_seconds"); got != float64(before.Unix()) {
		t.Errorf("at start: %v, want the file's modification time %v", got, before.Unix())
	}
	start := time.Now()
	if st := w.run(); st != ingest.StatusOK {
		t.Fatalf("run: %s", st)
	}
	mf, _ = w.scrape()
	if got, _ := value(mf, "thingsync_last_snapshot_timestamp_seconds"); got < float64(start.UnixNano())/1e9 || got > float64(time.Now().UnixNano())/1e9 {
		t.Errorf("after a run: %v, want the publication's time, after %v", got, start)
	}
}
