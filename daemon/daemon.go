// Package daemon decides when the daemon runs a sync and what it says
// about its runs: a run starts on the schedule (or at once when asked),
// never while another is going nor after a signal or a rejected login; a
// panic in a run is a failed run, not a dead daemon; the snapshot is
// published after each ok or partial run; /healthz says whether the daemon
// is fit and /metrics what its runs are doing as they do it.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/internal/clip"
	"github.com/thingsync/thingsync/load"
)

// Options are what a Daemon runs and where it reports.
type Options struct {
	Log zerolog.Logger
	// Gate holds the warehouse file around each run (and the callbacks'
	// commits, which go through the same gate).
	Gate *load.Gate
	// Snapshot is THINGSYNC_SNAPSHOT; empty: none is published.
	Snapshot string
	// Streams are the configured streams, for their last-success times.
	Streams []string
	// Now is the clock of the runs' records (nil: time.Now, UTC).
	Now func() time.Time
	// Sync runs one sync, telling obs what it does as it goes. The daemon
	// holds the warehouse through Gate while it runs, so Sync's own
	// Acquire shares the open file.
	Sync func(ctx context.Context, obs ingest.Observer) (ingest.Report, error)
}

// Daemon starts runs when told (by the schedule or --now), never two at
// once, keeps what /healthz and /metrics report, and publishes the
// snapshot after each ok or partial run.
type Daemon struct {
	log      zerolog.Logger
	g        *load.Gate
	snapshot string
	streams  []string
	now      func() time.Time
	sync     func(ctx context.Context, obs ingest.Observer) (ingest.Report, error)
	metrics  *metrics

	wg sync.WaitGroup // the run in flight

	mu sync.Mutex
	// next tells when the schedule fires next (nil: unknown).
	next     func() time.Time
	busy     bool   // a run is going
	stopping bool   // a signal came: no new run starts
	halted   string // why no run starts any more (a rejected login)
	runs     int    // finished runs
	last     *LastRun
	snapErr  string // the last snapshot publication's error, if it failed
}

// LastRun is what /healthz says about the last finished run.
type LastRun struct {
	RunID      string    `json:"run_id,omitempty"`
	Status     string    `json:"status"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Seconds    float64   `json:"duration_seconds"`
	Error      string    `json:"error,omitempty"`
	Panicked   bool      `json:"panicked,omitempty"`
}

// New returns a daemon that has run nothing yet.
func New(o Options) *Daemon {
	now := o.Now
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	d := &Daemon{log: o.Log, g: o.Gate, snapshot: o.Snapshot, streams: o.Streams, now: now, sync: o.Sync, metrics: newMetrics(time.Now)}
	// A snapshot published before a restart is as old as the file: its
	// age does not start again from the first run.
	if o.Snapshot != "" {
		if fi, err := os.Stat(o.Snapshot); err == nil {
			d.metrics.lastSnapshot.Set(float64(fi.ModTime().UnixNano()) / 1e9)
		}
	}
	return d
}

// Trigger runs one sync now unless one is going, the daemon is stopping, or
// a rejected login halted it. It returns when the run is over, so the
// scheduler's goroutine carries the run.
func (d *Daemon) Trigger(ctx context.Context, why string) {
	d.mu.Lock()
	switch {
	case d.stopping || ctx.Err() != nil:
		d.mu.Unlock()
		return
	case d.halted != "":
		d.mu.Unlock()
		d.metrics.skipped.Inc()
		d.log.Error().Str("trigger", why).Msg("no run started: " + d.halted)
		return
	case d.busy:
		d.mu.Unlock()
		d.metrics.skipped.Inc()
		d.log.Warn().Str("trigger", why).Msg("the previous run is still going; this one is skipped")
		return
	}
	d.busy = true
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()

	d.metrics.started()
	d.log.Info().Str("trigger", why).Msg("run starting")
	start := time.Now()
	res := d.attempt(ctx)
	d.finish(res, time.Since(start))
}

// Stop refuses new runs and waits for the one in flight (which sees ctx's
// cancellation, stops fetching and commits what it has).
func (d *Daemon) Stop() {
	d.mu.Lock()
	d.stopping = true
	busy := d.busy
	d.mu.Unlock()
	if busy {
		d.log.Info().Msg("stopping: waiting for the run in flight to commit")
	}
	d.wg.Wait()
}

// attempt is one run's outcome as the daemon saw it.
type attempt struct {
	rep      ingest.Report
	err      error
	panicked bool
	// cancelled: a signal came while the warehouse file was being opened
	// (or waited for); no run was started or recorded.
	cancelled  bool
	pending    int
	pendingErr error
	// staleness is how current the warehouse is across the fleet after
	// the run.
	staleness    load.Staleness
	stalenessErr error
	published    time.Time // when the snapshot was published (zero: not)
	snapErr      error
}

// attempt holds the warehouse around the sync, so that the pending
// requests are read and the snapshot published from the file the run just
// committed, without reopening it. A panic in the sync is recovered and
// recorded as a failed run.
func (d *Daemon) attempt(ctx context.Context) (res attempt) {
	wh, release, err := d.g.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			res.cancelled = true
			return res
		}
		res.rep = ingest.Report{Kind: "scheduled", Status: "failed", Started: d.now(), Finished: d.now()}
		res.err = fmt.Errorf("open warehouse: %w", err)
		return res
	}
	defer release()
	// Bookkeeping after the run finishes even when a signal came: the run
	// committed, and the snapshot should show it.
	wctx := context.WithoutCancel(ctx)

	started := d.now()
	res.rep, res.err, res.panicked = d.guarded(ctx)
	if res.panicked {
		res.rep.Kind, res.rep.Started, res.rep.Finished = "scheduled", started, d.now()
		d.recordPanic(wctx, wh, started, res.err)
		return res
	}
	if d.snapshot != "" && succeeded(res.rep.Status) {
		if err := wh.PublishSnapshot(wctx, d.snapshot); err != nil {
			res.snapErr = err
		} else {
			res.published = time.Now()
		}
	}
	res.pending, res.pendingErr = pendingCallbacks(wctx, wh)
	res.staleness, res.stalenessErr = readStaleness(wctx, wh)
	return res
}

// guarded runs the sync, turning a panic into a failed run: the daemon
// outlives a bug hit by one night's data.
func (d *Daemon) guarded(ctx context.Context) (rep ingest.Report, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error().Str("panic", fmt.Sprint(p)).Str("stack", string(debug.Stack())).Msg("run panicked; recorded as failed")
			rep = ingest.Report{Status: "failed"}
			err, panicked = fmt.Errorf("run panicked: %v", p), true
		}
	}()
	rep, err = d.sync(ctx, d.metrics)
	return rep, err, false
}

// recordPanic marks the run a panic cut short as failed in sync_runs (it
// was left "running"). Only this process writes the file while it holds
// it, and it runs one run at a time, so a scheduled run started since
// started and still running is the one that panicked. Bounded: a panic may
// leave the connection taken by a transaction nobody will end.
func (d *Daemon) recordPanic(ctx context.Context, wh *load.Warehouse, started time.Time, cause error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := wh.FailRunning(ctx, "scheduled", started, d.now(), cause.Error()); err != nil {
		d.log.Warn().Err(err).Msg("record the panicked run in sync_runs")
	}
}

// pendingCallbacks counts the aggregate requests whose callbacks have not
// all been taken in. Bounded for the same reason as recordPanic.
func pendingCallbacks(ctx context.Context, wh *load.Warehouse) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return wh.PendingCallbacks(ctx)
}

// readStaleness reads how current the warehouse is across the fleet.
// Bounded for the same reason as recordPanic.
func readStaleness(ctx context.Context, wh *load.Warehouse) (load.Staleness, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return wh.Staleness(ctx)
}

// finish records a run's outcome in the log, the metrics and the health.
func (d *Daemon) finish(res attempt, took time.Duration) {
	defer d.metrics.running.Set(0)
	if res.cancelled {
		d.log.Info().Msg("stopped before the run started (while opening the warehouse file)")
		d.mu.Lock()
		d.busy = false
		d.mu.Unlock()
		return
	}
	rep := res.rep
	d.metrics.observe(rep, d.streams, took)
	if res.pendingErr == nil {
		d.metrics.pending.Set(float64(res.pending))
	} else {
		d.log.Warn().Err(res.pendingErr).Msg("metrics: pending callbacks not updated")
	}
	if res.stalenessErr == nil {
		d.metrics.staleness.set(res.staleness)
	} else {
		d.log.Warn().Err(res.stalenessErr).Msg("metrics: staleness not updated")
	}
	if !res.published.IsZero() {
		d.metrics.lastSnapshot.Set(float64(res.published.UnixNano()) / 1e9)
		d.log.Info().Str("snapshot", d.snapshot).Msg("snapshot published")
	}

	ev := d.log.Info()
	switch {
	case res.err != nil && rep.Status != "partial" && rep.Status != "interrupted":
		ev = d.log.Error().Err(res.err)
	case res.err != nil:
		ev = d.log.Warn().Err(res.err)
	}
	ev.Str("run_id", rep.RunID).Str("status", rep.Status).Float64("took_s", took.Seconds()).Msg(runLine(rep))
	if res.snapErr != nil {
		d.log.Error().Err(res.snapErr).Msg("snapshot not published; analysts see the previous one")
	}

	last := &LastRun{RunID: rep.RunID, Status: rep.Status, StartedAt: rep.Started, FinishedAt: rep.Finished,
		Seconds: took.Seconds(), Panicked: res.panicked}
	if res.err != nil && rep.Status != "ok" {
		last.Error = clip.Text(res.err.Error(), maxHealthReason)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy = false
	d.runs++
	d.last = last
	switch {
	case res.snapErr != nil:
		d.snapErr = clip.Text(res.snapErr.Error(), maxHealthReason)
	case !res.published.IsZero():
		d.snapErr = ""
	}
	// Five consecutive rejected logins lock the account: the
	// credentials come from the environment, so every later run would be
	// rejected too. Stop logging in until an operator has looked.
	if errors.Is(res.err, extract.ErrLoginRejected) {
		d.halted = "ThingSpace rejected the login; fix THINGSPACE_USERNAME/THINGSPACE_PASSWORD and restart (repeated attempts lock the account)"
		d.metrics.loginRejected.Set(1)
		d.log.Error().Msg("no further runs: " + d.halted)
	}
}

func runLine(rep ingest.Report) string {
	if rep.Summary != "" && rep.Status != "failed" {
		return rep.Summary
	}
	return "run " + rep.Status
}

// maxHealthReason bounds the bytes of a reason in a health answer, to keep
// it readable.
const maxHealthReason = 300

// Health is the answer of /healthz.
type Health struct {
	Status  string    `json:"status"` // ok or failing
	Reason  string    `json:"reason,omitempty"`
	Running bool      `json:"running"`
	Runs    int       `json:"runs"`
	LastRun *LastRun  `json:"last_run,omitempty"`
	NextRun time.Time `json:"next_run,omitzero"`
}

// Health says whether the daemon is fit: not stopping, not halted, its last
// run did not fail, and its last snapshot was published.
func (d *Daemon) Health() (Health, bool) {
	d.mu.Lock()
	nextFn := d.next
	d.mu.Unlock()
	var next time.Time
	if nextFn != nil {
		next = nextFn()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h := Health{Status: "ok", Running: d.busy, Runs: d.runs, LastRun: d.last, NextRun: next}
	switch {
	case d.stopping:
		h.Reason = "shutting down"
	case d.halted != "":
		h.Reason = d.halted
	case d.last != nil && d.last.Panicked:
		h.Reason = "last run panicked: " + d.last.Error
	case d.last != nil && d.last.Status == "failed":
		h.Reason = "last run failed: " + d.last.Error
	case d.snapErr != "":
		h.Reason = "snapshot not published: " + d.snapErr
	}
	if h.Reason != "" {
		h.Status = "failing"
	}
	return h, h.Reason == ""
}

func (d *Daemon) serveHealth(w http.ResponseWriter, r *http.Request) {
	h, ok := d.Health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

// Routes mounts /healthz and /metrics.
func (d *Daemon) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", d.serveHealth)
	mux.Handle("GET /metrics", d.metrics.handler())
}

// succeeded tells the outcomes after which what the run committed is
// worth publishing: everything it reached is loaded.
func succeeded(status string) bool {
	return status == ingest.StatusOK || status == ingest.StatusPartial || status == ingest.StatusBudget
}

// budgetShare is the part of the time to the next scheduled run that a
// run may fetch by default: it leaves the rest for committing and
// publishing the snapshot, so that the next run is not skipped.
const budgetShare = 0.9

// Budget is how long a scheduled run starting at now may fetch:
// THINGSYNC_RUN_BUDGET when set (configured; 0 is no limit), otherwise
// 90% of the time to the schedule's next run.
func Budget(set bool, configured time.Duration, sched cron.Schedule, now time.Time) time.Duration {
	if set {
		return configured
	}
	next := sched.Next(now)
	if next.IsZero() || !next.After(now) {
		return 0
	}
	return time.Duration(float64(next.Sub(now)) * budgetShare)
}
