package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/thingsync/thingsync/daemon"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/internal/metricstest"
	"github.com/thingsync/thingsync/load"
)

// daemonProc is `thingsync run` as a real child process (see TestMain),
// with its log collected and its HTTP address read from its "listening"
// log line.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://host:port

	mu   sync.Mutex
	logs strings.Builder

	done    chan struct{}
	waitErr error
}

// startDaemon starts the daemon on w's simulator and warehouse; env adds to
// (or overrides) w.env.
func startDaemon(t *testing.T, w *world, env map[string]string, args ...string) *daemonProc {
	t.Helper()
	return startListener(t, w, env, append([]string{"run"}, args...)...)
}

// startListener starts a command that serves until signalled (run, serve)
// and reads its address from its "listening" log line.
func startListener(t *testing.T, w *world, env map[string]string, args ...string) *daemonProc {
	t.Helper()
	full := append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	for k, v := range w.env {
		full = append(full, k+"="+v)
	}
	// Later values win: exec keeps the last of duplicate keys.
	full = append(full, "THINGSYNC_HTTP_ADDR=127.0.0.1:0", "THINGSYNC_LOG_LEVEL=info", "THINGSYNC_LOG_FORMAT=json")
	for k, v := range env {
		full = append(full, k+"="+v)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = full
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &daemonProc{t: t, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var l struct{ Message, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Message == "listening" && l.Addr != "" {
				select {
				case addr <- l.Addr:
				default:
				}
			}
		}
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.log())
		}
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.done:
		t.Fatalf("the daemon exited before listening: %v\n%s", p.waitErr, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon did not say where it listens\n%s", p.log())
	}
	return p
}

func (p *daemonProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *daemonProc) get(path string) (int, []byte) {
	p.t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// health is /healthz decoded, with its status code.
func (p *daemonProc) health() (int, daemon.Health) {
	p.t.Helper()
	code, b := p.get("/healthz")
	var h daemon.Health
	if err := json.Unmarshal(b, &h); err != nil {
		p.t.Fatalf("/healthz answered %d %q: %v", code, b, err)
	}
	return code, h
}

// metrics is /metrics parsed.
func (p *daemonProc) metrics() map[string]*dto.MetricFamily {
	p.t.Helper()
	code, b := p.get("/metrics")
	if code != http.StatusOK {
		p.t.Fatalf("/metrics answered %d: %s", code, b)
	}
	mf, err := metricstest.Parse(string(b))
	if err != nil {
		p.t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	return mf
}

// signal sends sig and waits for the exit: its status and how long it took.
func (p *daemonProc) signal(sig os.Signal) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("the daemon did not exit within 60 s of %v", sig)
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode(), time.Since(start)
	}
	if p.waitErr != nil {
		p.t.Fatalf("wait: %v", p.waitErr)
	}
	return 0, time.Since(start)
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sample is the value of one series: name and labels as "k=v" pairs.
func sample(t *testing.T, mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	if _, ok := mf[name]; !ok {
		t.Fatalf("metric %s missing", name)
	}
	v, ok := lookup(mf, name, labels...)
	if !ok {
		t.Fatalf("metric %s has no series %v", name, labels)
	}
	return v
}

// lookup is sample for a series that may not be there yet.
func lookup(mf map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	return metricstest.Value(mf, name, labels...)
}

// sum adds every series of a metric.
func sum(mf map[string]*dto.MetricFamily, name string) float64 {
	v, _ := metricstest.Value(mf, name)
	return v
}

// Without THINGSYNC_RUN_BUDGET a scheduled run may fetch 90% of the time
// to the next one: on a one-second schedule a year of history cannot be
// fetched in one run, so runs end at their budget, healthy (that each
// carries on where the last stopped is TestRunBudgetCarriesOn's).
func TestRunDefaultBudget(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 24, Faults: simulator.Faults{Latency: 5 * time.Millisecond}})
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "@every 1s"})
	waitFor(t, 60*time.Second, "a run ended by its budget", func() bool {
		return sample(t, d.metrics(), "thingsync_runs_total", "status=budget") >= 1
	})
	if code, h := d.health(); code != http.StatusOK || h.Status != "ok" {
		t.Errorf("/healthz = %d %+v; a run that reached its budget is not a failure", code, h)
	}
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d on SIGTERM, want 0", code)
	}
}

// The daemon on a one-second schedule: it runs again and again, never two
// runs at once (the long first run makes the schedule fire while it goes),
// answers /healthz and /metrics with the runs' real numbers, publishes the
// snapshot, and exits 0 on SIGTERM.
func TestRunScheduleHealthMetrics(t *testing.T) {
	// The latency makes the first run (a year of history) last seconds.
	w := newWorld(t, simulator.Options{Devices: 24, Faults: simulator.Faults{Latency: 5 * time.Millisecond}})
	// Windows of 30 and 3 days make the run long enough to act during it.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	snap := filepath.Join(t.TempDir(), "snapshot.duckdb")
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "@every 1s", "THINGSYNC_RUN_BUDGET": "0", "THINGSYNC_SNAPSHOT": snap})

	waitFor(t, 90*time.Second, "three finished runs", func() bool { _, h := d.health(); return h.Runs >= 3 })
	code, h := d.health()
	if code != http.StatusOK || h.Status != "ok" || h.LastRun == nil || h.LastRun.Status != "ok" || h.NextRun.IsZero() {
		t.Fatalf("/healthz = %d %+v, want 200 ok after ok runs", code, h)
	}

	// Metrics that belong to a known number of runs: scraped while idle,
	// with the same run count before and after.
	var mf map[string]*dto.MetricFamily
	var runs int
	waitFor(t, 30*time.Second, "an idle moment to scrape", func() bool {
		_, before := d.health()
		if before.Running {
			return false
		}
		mf = d.metrics()
		_, after := d.health()
		runs = after.Runs
		return !after.Running && after.Runs == before.Runs
	})

	if code, took := d.signal(syscall.SIGTERM); code != 0 || took > 15*time.Second {
		t.Fatalf("SIGTERM: exit %d after %v, want 0 within seconds", code, took)
	}

	// Never two runs at once: every run ends before the next starts.
	rows := w.query(`SELECT kind, status, epoch_us(started_at), epoch_us(finished_at), requests FROM sync_runs ORDER BY started_at`)
	if len(rows) < runs {
		t.Fatalf("sync_runs has %d runs, /healthz counted %d", len(rows), runs)
	}
	var prevEnd int64
	wantRequests := 0
	for i, r := range rows {
		f := strings.Split(r, "|")
		if f[0] != "scheduled" || (f[1] != "ok" && !(i == len(rows)-1 && f[1] == "interrupted")) {
			t.Errorf("run %d: %s, want a scheduled ok run", i, r)
		}
		start, _ := strconv.ParseInt(f[2], 10, 64)
		end, _ := strconv.ParseInt(f[3], 10, 64)
		if start < prevEnd {
			t.Errorf("run %d started %d µs before the previous one finished", i, prevEnd-start)
		}
		prevEnd = end
		if i < runs {
			n, _ := strconv.Atoi(f[4])
			wantRequests += n
		}
	}
	if got := sample(t, mf, "thingsync_runs_skipped_total"); got < 1 {
		t.Errorf("no scheduled run was skipped while the long first run went on (skipped = %v)", got)
	}

	// The metrics tell the runs' real numbers.
	if got := sample(t, mf, "thingsync_runs_total", "status=ok"); int(got) != runs {
		t.Errorf("thingsync_runs_total{status=ok} = %v, want %d", got, runs)
	}
	if got := sample(t, mf, "thingsync_api_requests_total", "endpoint=usage", "status=200"); got <= 0 {
		t.Errorf("usage requests answered 200 = %v", got)
	}
	if got := sum(mf, "thingsync_api_requests_total"); int(got) != wantRequests {
		t.Errorf("thingsync_api_requests_total sums to %v; sync_runs.requests of those runs to %d", got, wantRequests)
	}
	usage := w.query(`SELECT count(*) FROM usage_daily`)[0]
	if got := sample(t, mf, "thingsync_rows_total", "table=usage_daily", "op=inserted"); fmt.Sprint(got) != usage {
		t.Errorf("usage_daily rows inserted = %v, the warehouse holds %s", got, usage)
	}
	events := w.query(`SELECT count(*) FROM connection_events`)[0]
	if got := sample(t, mf, "thingsync_rows_total", "table=connection_events", "op=inserted"); fmt.Sprint(got) != events {
		t.Errorf("connection_events rows inserted = %v, the warehouse holds %s", got, events)
	}
	if got := sample(t, mf, "thingsync_last_success_timestamp_seconds", "stream=usage"); got < float64(t0.Unix()) {
		t.Errorf("last success of usage = %v, want after %v", got, t0)
	}
	if got := sample(t, mf, "thingsync_last_run_duration_seconds"); got <= 0 {
		t.Errorf("last run duration = %v", got)
	}
	if got := sample(t, mf, "thingsync_pending_callbacks"); got != 0 {
		t.Errorf("pending callbacks = %v, want 0 (no aggregate stream)", got)
	}
	if got := sample(t, mf, "thingsync_run_in_progress"); got != 0 {
		t.Errorf("run in progress while idle = %v", got)
	}
	diffLines(t, "usage_daily", w.gotUsage(), w.wantUsage(t0))

	// The snapshot holds what the warehouse holds (no run inserts after
	// the first: the simulator's clock stands still).
	db, err := load.OpenReadOnly(context.Background(), snap)
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	defer db.Close()
	if got := queryLines(t, db, `SELECT count(*) FROM usage_daily`)[0]; got != usage {
		t.Errorf("snapshot holds %s usage rows, the warehouse %s", got, usage)
	}
}

// A rejected login fails the run: /healthz answers 503 with the reason,
// and the daemon does not log in again on the next ticks (five rejected
// logins lock the account).
func TestRunLoginRejected(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 4})
	w.env["THINGSPACE_PASSWORD"] = "not-the-password"
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "@every 1s", "THINGSYNC_RUN_BUDGET": "0"})

	var code int
	var h daemon.Health
	waitFor(t, 30*time.Second, "/healthz to fail", func() bool { code, h = d.health(); return code != http.StatusOK })
	if code != http.StatusServiceUnavailable || h.Status != "failing" || !strings.Contains(h.Reason, "login") ||
		h.LastRun == nil || h.LastRun.Status != "failed" {
		t.Fatalf("/healthz = %d %+v; want 503 failing for the rejected login", code, h)
	}
	if strings.Contains(h.Reason, "not-the-password") || strings.Contains(d.log(), "not-the-password") {
		t.Error("the password appears in /healthz or the log")
	}
	// The schedule fires twice more: each tick is counted as a skipped
	// run, or, were the daemon to try again, as another login.
	waitFor(t, 30*time.Second, "two more ticks of the schedule", func() bool {
		return sample(t, d.metrics(), "thingsync_runs_skipped_total") >= 2 || w.sim.Stats().Logins > 1
	})
	if code, _ := d.health(); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz = %d later, want 503 still", code)
	}
	if got := w.sim.Stats().Logins; got != 1 {
		t.Errorf("%d login attempts, want 1", got)
	}
	mf := d.metrics()
	if got := sample(t, mf, "thingsync_runs_total", "status=failed"); got != 1 {
		t.Errorf("failed runs = %v, want 1", got)
	}
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
	if got := w.query(`SELECT status FROM sync_runs`); len(got) != 1 || got[0] != "failed" {
		t.Errorf("sync_runs = %v, want one failed run", got)
	}
}

// SIGTERM during a run: the commit in flight finishes, the run is recorded
// as interrupted, the daemon exits 0 within seconds; started again, it
// completes the warehouse exactly.
func TestRunSIGTERMThenResume(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 30, Faults: simulator.Faults{Latency: 2 * time.Millisecond}})
	// Windows of 30 and 3 days make the run long enough to act during it.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	// --now runs at once; the yearly schedule does not fire during the test.
	yearly := map[string]string{"THINGSYNC_SCHEDULE": "0 0 1 1 *"}
	d := startDaemon(t, w, yearly, "--now")
	// A run that has asked for history has opened the warehouse and started
	// its run record; the signal must land in the middle of the fetching.
	waitFor(t, 30*time.Second, "the run to fetch history", func() bool { return w.sim.Stats().Requests["connections"] >= 20 })
	code, took := d.signal(syscall.SIGTERM)
	if code != 0 || took > 10*time.Second {
		t.Fatalf("SIGTERM during a run: exit %d after %v, want 0 within seconds", code, took)
	}
	if got := w.query(`SELECT status FROM sync_runs`); len(got) != 1 || got[0] != "interrupted" {
		t.Fatalf("sync_runs = %v, want one interrupted run (a run that finished first proves nothing)", got)
	}

	d = startDaemon(t, w, yearly, "--now")
	var h daemon.Health
	waitFor(t, 60*time.Second, "the resumed run", func() bool { _, h = d.health(); return h.Runs >= 1 })
	if h.LastRun.Status != "ok" {
		t.Fatalf("resumed run: %+v", h.LastRun)
	}
	if code, _ := d.signal(syscall.SIGINT); code != 0 {
		t.Errorf("SIGINT while idle: exit %d, want 0", code)
	}
	diffLines(t, "usage_daily after an interrupted daemon", w.gotUsage(), w.wantUsage(t0))
	diffLines(t, "connection_events after an interrupted daemon", w.gotEvents(), w.wantEvents(t0))
	w.noDuplicateKeys()
}

// Between runs the daemon holds no lock on the warehouse: an analyst opens
// it read-only.
func TestRunIdleReleasesTheWarehouse(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 8})
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "0 0 1 1 *"}, "--now")
	waitFor(t, 30*time.Second, "the first run", func() bool { _, h := d.health(); return h.Runs >= 1 && !h.Running })
	db, err := load.OpenReadOnly(context.Background(), w.db)
	if err != nil {
		t.Fatalf("open the warehouse read-only while the daemon is idle: %v", err)
	}
	if got := queryLines(t, db, `SELECT count(*) FROM devices`); got[0] != "8" {
		t.Errorf("devices = %v, want 8", got)
	}
	db.Close()
	// The status page reads the idle daemon's warehouse, and the file is
	// let go after it: the next run starts.
	code, page := d.get("/")
	if code != http.StatusOK || !bytes.Contains(page, []byte(`data-stream="usage" data-devices="8"`)) || !bytes.Contains(page, []byte("the warehouse <code>")) {
		t.Errorf("GET / on the idle daemon: %d\n%s", code, page)
	}
	db, err = load.OpenReadOnly(context.Background(), w.db)
	if err != nil {
		t.Fatalf("open the warehouse read-only after the page read it: %v", err)
	}
	db.Close()
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
}

// The snapshot opens read-only, and thingsync sql reads it, while a run
// holds the warehouse (which then refuses a reader); it holds the first
// run's data.
func TestRunSnapshotReadableDuringRun(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 24, Faults: simulator.Faults{Latency: 3 * time.Millisecond}})
	// Windows of 30 and 3 days make the run long enough to act during it.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	snap := filepath.Join(t.TempDir(), "snapshot.duckdb")
	w.env["THINGSYNC_SNAPSHOT"] = snap // for the daemon and for thingsync sql
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "@every 1s", "THINGSYNC_RUN_BUDGET": "0"})
	waitFor(t, 90*time.Second, "the first snapshot", func() bool {
		_, err := os.Stat(snap)
		return err == nil
	})
	want := fmt.Sprint(len(w.wantUsage(t0)))
	ctx := context.Background()
	proved := false
	for attempt := 0; attempt < 20 && !proved; attempt++ {
		waitFor(t, 30*time.Second, "a run in progress", func() bool { _, h := d.health(); return h.Running })
		db, err := load.OpenReadOnly(ctx, snap)
		if err != nil {
			t.Fatalf("open the snapshot during a run: %v", err)
		}
		got := queryLines(t, db, `SELECT count(*) FROM usage_daily`)[0]
		db.Close()
		if got != want {
			t.Fatalf("snapshot holds %s usage rows, want %s", got, want)
		}
		// thingsync sql reads the snapshot, not the file the run holds.
		if code, out := w.run("sql", "--format", "csv", "SELECT count(*) AS n FROM usage_daily"); code != 0 || out != "n\n"+want+"\n" {
			t.Fatalf("thingsync sql during a run: exit %d, %q; want %s rows", code, out, want)
		}
		// The status page reads the snapshot too.
		if code, page := d.get("/"); code != http.StatusOK || !bytes.Contains(page, []byte("the snapshot <code>")) {
			t.Fatalf("GET / during a run: %d\n%s", code, page)
		}
		// The run still holds the warehouse: a reader is refused.
		main, err := load.OpenReadOnly(ctx, w.db)
		switch {
		case errors.Is(err, load.ErrLocked):
			proved = true
		case err != nil:
			t.Fatalf("open the warehouse: %v", err)
		default:
			main.Close() // the run ended meanwhile: try the next one
		}
	}
	if !proved {
		t.Fatal("never caught a run holding the warehouse while the snapshot was read")
	}
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
}

// The daemon serves callbacks on its one listener, at the path of
// THINGSYNC_CALLBACK_URL: the simulator's deliveries after the run land in
// the warehouse, and thingsync_pending_callbacks counted the requests still
// waiting when the run ended.
func TestRunServesCallbacks(t *testing.T) {
	// Deliveries are held until the run has ended and counted them.
	held := heldDeliveries{open: make(chan struct{})}
	w, _ := aggregateWorld(t, simulator.Options{Devices: 30, CallbackClient: &http.Client{Transport: held}})
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "0 0 1 1 *", "THINGSYNC_HTTP_ADDR": w.env["THINGSYNC_HTTP_ADDR"]}, "--now")
	var h daemon.Health
	waitFor(t, 30*time.Second, "the run", func() bool { _, h = d.health(); return h.Runs >= 1 })
	if h.LastRun.Status != "ok" {
		t.Fatalf("run: %+v", h.LastRun)
	}
	pending := sample(t, d.metrics(), "thingsync_pending_callbacks")
	close(held.open)

	// The daemon is idle: a short read-only look at the warehouse at a
	// time (a callback commit waits for it, or it for the commit).
	look := func(q string) ([]string, bool) {
		db, err := load.OpenReadOnly(context.Background(), w.db)
		if errors.Is(err, load.ErrLocked) {
			return nil, false
		}
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		return queryLines(t, db, q), true
	}
	var requests []string
	waitFor(t, 60*time.Second, "every callback", func() bool {
		got, ok := look(`SELECT count(*) FILTER (WHERE status IN ('pending', 'completed')), count(*) FROM aggregate_requests`)
		if !ok {
			return false
		}
		requests = strings.Split(got[0], "|")
		if requests[0] != "0" {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		return true
	})
	t.Logf("pending callbacks after the run: %v of %s requests", pending, requests[1])
	if pending == 0 || fmt.Sprint(pending) != requests[1] {
		t.Errorf("thingsync_pending_callbacks after the run = %v; the run sent %s requests, none answered yet", pending, requests[1])
	}
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
	if w.sim.Stats().CallbacksDelivered == 0 {
		t.Error("no callback was delivered")
	}
	diffLines(t, "aggregate_usage through the daemon's listener", w.gotAggregates(), w.wantAggregates(t0))
}

// Mistakes in the daemon's configuration stop it before any work, exit 2.
func TestRunUsageErrors(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 2})
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad schedule", map[string]string{"THINGSYNC_SCHEDULE": "every night"}, nil, "THINGSYNC_SCHEDULE"},
		{"snapshot is the warehouse", map[string]string{"THINGSYNC_SNAPSHOT": w.db}, nil, "THINGSYNC_SNAPSHOT"},
		{"stray argument", nil, []string{"now"}, "unexpected arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			saved := map[string]string{}
			for k, v := range w.env {
				saved[k] = v
			}
			defer func() { w.env = saved }()
			for k, v := range tt.env {
				w.env[k] = v
			}
			code, out := w.run(append([]string{"run"}, tt.args...)...)
			if code != exitUsage || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, %q; want 2 naming %s", code, out, tt.want)
			}
		})
	}
	if _, err := os.Stat(w.db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the warehouse was created: %v", err)
	}
}

// At start-up the daemon makes sure ThingSpace knows its listener: it
// lists first and registers only what is missing.
func TestRunRegistersItsListenerAtStartup(t *testing.T) {
	w, url := aggregateWorld(t, simulator.Options{Devices: 3})
	env := map[string]string{"THINGSYNC_SCHEDULE": "0 0 1 1 *", "THINGSYNC_HTTP_ADDR": w.env["THINGSYNC_HTTP_ADDR"]}
	d := startDaemon(t, w, env)
	if got := w.sim.Callbacks()["DeviceUsage"]; got != url {
		t.Errorf("registered listener %q once the daemon listens, want %q", got, url)
	}
	if n := w.sim.Stats().Requests["callbacks"]; n != 2 {
		t.Errorf("%d callback requests at the first start, want a list and a registration", n)
	}
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
	d = startDaemon(t, w, env)
	if n := w.sim.Stats().Requests["callbacks"]; n != 3 {
		t.Errorf("%d callback requests after a second start, want one more list and no registration", n)
	}
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
}

// The metrics move while a run goes: requests, the request rate, rows and
// devices done are counted as they happen, not when the run ends. Once it
// has ended they equal the run's own counters: nothing is counted twice.
func TestRunMetricsLive(t *testing.T) {
	const devices = 12
	w := newWorld(t, simulator.Options{Devices: devices, Faults: simulator.Faults{Rate5xx: 0.05},
		Quirks: simulator.Quirks{BadTimestamp: true, BadValue: true}})
	// Windows of 30 and 3 days: enough requests for the 5xx to hit some.
	w.env["THINGSYNC_WINDOW_USAGE"], w.env["THINGSYNC_WINDOW_CONNECTIONS"] = "30d", "3d"
	// Every history request of one device is held until the test releases
	// it: the other devices finish, the run cannot.
	var ids [][]byte
	for _, dev := range w.sim.Devices() {
		if !dev.Silent && !dev.Deactivated {
			ids = ids[:0]
			for _, id := range dev.IDs {
				ids = append(ids, []byte(`"`+id.ID+`"`))
			}
		}
	}
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/devices/usage/actions/list") || strings.HasSuffix(r.URL.Path, "/devices/connections/actions/listHistory") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			for _, id := range ids {
				if bytes.Contains(body, id) {
					once.Do(func() { close(arrived) })
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
					break
				}
			}
		}
		w.sim.ServeHTTP(rw, r)
	}))
	defer front.Close()
	w.env["THINGSPACE_BASE_URL"] = front.URL
	d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "0 0 1 1 *"}, "--now")
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	select {
	case <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("the held device's history was never asked for")
	}
	// The other devices finish and their rows commit (within the writer's
	// flush and commit intervals) while the held one keeps the run going.
	var mf map[string]*dto.MetricFamily
	waitFor(t, 60*time.Second, "the other devices done and their rows committed", func() bool {
		mf = d.metrics()
		rows, _ := lookup(mf, "thingsync_rows_total", "table=usage_daily", "op=inserted")
		return sample(t, mf, "thingsync_run_devices_done") == devices-1 && rows > 0
	})
	if _, h := d.health(); !h.Running || h.Runs != 0 {
		t.Fatalf("/healthz while the device is held: %+v; want the first run going", h)
	}
	for name, want := range map[string]float64{
		"thingsync_run_in_progress":                    1,
		"thingsync_run_devices_left":                   1,
		"thingsync_api_rate_limit_requests_per_second": 5000, // THINGSYNC_RATE_LIMIT
	} {
		if got := sample(t, mf, name); got != want {
			t.Errorf("during the run: %s = %v, want %v", name, got, want)
		}
	}
	if got := sample(t, mf, "thingsync_runs_total", "status=ok"); got != 0 {
		t.Errorf("during the run: %v ok runs counted", got)
	}
	if got := sample(t, mf, "thingsync_api_requests_total", "endpoint=usage", "status=200"); got <= 0 {
		t.Errorf("during the run: usage requests answered 200 = %v", got)
	}
	if got := sample(t, mf, "thingsync_rows_total", "table=devices", "op=inserted"); got != devices {
		t.Errorf("during the run: devices rows inserted = %v, want %d", got, devices)
	}
	if got := sample(t, mf, "thingsync_api_requests_per_second"); got <= 0 {
		t.Errorf("during the run: request rate = %v", got)
	}

	released = true
	close(release)
	var h daemon.Health
	waitFor(t, 60*time.Second, "the run to end", func() bool { _, h = d.health(); return h.Runs >= 1 })
	if h.LastRun.Status != "ok" {
		t.Fatalf("run: %+v", h.LastRun)
	}
	mf = d.metrics()
	if code, _ := d.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
	run := strings.Split(w.query(`SELECT devices, requests, retries, usage_inserted, usage_updated, events_inserted, events_updated, rejected FROM sync_runs`)[0], "|")
	stored := strings.Split(w.query(`SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM usage_daily), (SELECT count(*) FROM connection_events)`)[0], "|")
	if run[2] == "0" || run[7] == "0" {
		t.Fatalf("sync_runs = %v: the faults made no retry or no rejected record", run)
	}
	for _, c := range []struct {
		what string
		got  float64
		want string
	}{
		{"devices done", sample(t, mf, "thingsync_run_devices_done"), run[0]},
		{"devices left", sample(t, mf, "thingsync_run_devices_left"), "0"},
		{"requests", sum(mf, "thingsync_api_requests_total"), run[1]},
		{"retries", sum(mf, "thingsync_api_retries_total"), run[2]},
		{"usage_daily inserted", sample(t, mf, "thingsync_rows_total", "table=usage_daily", "op=inserted"), run[3]},
		{"usage_daily updated", sample(t, mf, "thingsync_rows_total", "table=usage_daily", "op=updated"), run[4]},
		{"connection_events inserted", sample(t, mf, "thingsync_rows_total", "table=connection_events", "op=inserted"), run[5]},
		{"connection_events updated", sample(t, mf, "thingsync_rows_total", "table=connection_events", "op=updated"), run[6]},
		{"rejected", sample(t, mf, "thingsync_rejected_records_total"), run[7]},
		{"devices inserted", sample(t, mf, "thingsync_rows_total", "table=devices", "op=inserted"), stored[0]},
		{"usage_daily rows", sample(t, mf, "thingsync_rows_total", "table=usage_daily", "op=inserted"), stored[1]},
		{"connection_events rows", sample(t, mf, "thingsync_rows_total", "table=connection_events", "op=inserted"), stored[2]},
	} {
		if fmt.Sprint(c.got) != c.want {
			t.Errorf("after the run: %s = %v in /metrics, %s in the warehouse", c.what, c.got, c.want)
		}
	}
}

// thingsync serve serves the status page over the warehouse a sync wrote,
// opening it only for each request: a sync runs while it serves, and the
// page then shows the second run; SIGTERM ends it with exit 0.
func TestServeStatusPage(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 6})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	p := startListener(t, w, nil, "serve", "--addr", "127.0.0.1:0")
	code, page := p.get("/")
	if code != http.StatusOK || !bytes.Contains(page, []byte(`data-stream="usage" data-devices="6"`)) || bytes.Count(page, []byte("<tr data-run=")) != 1 {
		t.Fatalf("GET /: %d\n%s", code, page)
	}
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("a sync while serve serves: exit %d\n%s", code, out)
	}
	if code, page = p.get("/"); code != http.StatusOK || bytes.Count(page, []byte("<tr data-run=")) != 2 {
		t.Errorf("GET / after the second sync: %d, %d runs listed; want 2", code, bytes.Count(page, []byte("<tr data-run=")))
	}
	if code, _ := p.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
}
