package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

func runSync(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("sync", "sync\n\n"+
		"One incremental run of THINGSYNC_STREAMS over every device of the account: each device\n"+
		"from its checkpoint (THINGSYNC_START without one) to now, re-reading what is younger than\n"+
		"the lookback. The aggregate stream listens for its callbacks on THINGSYNC_HTTP_ADDR.\n"+
		"Ends with one summary line. Exit 0 all devices ok, 1 some failed (the others are loaded),\n"+
		"2 usage or configuration, 3 could not run (login, database).")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("sync: unexpected arguments %v", fs.Args())
	}
	return a.walk(ctx, env, "sync", env.Config.Streams, nil, nil)
}

func runBackfill(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("backfill", "backfill --from YYYY-MM-DD --to YYYY-MM-DD [--streams usage,connections] [--device KIND:ID]...\n"+
		"backfill --gaps [--streams usage,connections] [--device KIND:ID]...\n\n"+
		"Re-fetches a closed range of UTC dates (--to included), or with --gaps exactly the missing\n"+
		"device-days of the coverage ledger, and upserts it; never moves a checkpoint backwards.\n"+
		"Usage and connection history only: rated usage is the current billing cycle, which every\n"+
		"sync fetches, and aggregate usage is asked by sync. A --from after today is refused; a --to\n"+
		"after today is fetched up to today. A --device that matches no device of the account's\n"+
		"list ends the run with exit 1, naming it. Exit statuses as sync.")
	from := fs.String("from", "", "first UTC date to re-fetch, as `YYYY-MM-DD` (required unless --gaps)")
	to := fs.String("to", "", "last UTC date to re-fetch, included, as `YYYY-MM-DD`; after today means today (required unless --gaps)")
	streams := fs.String("streams", "", "history `STREAMS` to re-fetch: usage, connections or usage,connections (default: those of THINGSYNC_STREAMS)")
	gaps := fs.Bool("gaps", false, "re-fetch exactly the missing device-days of the coverage ledger, instead of --from/--to")
	var devices []extract.DeviceID
	fs.Func("device", "only this device, as `KIND:ID` such as imei:990000000000001 (repeatable; default: every device)", func(v string) error {
		kind, id, ok := strings.Cut(v, ":")
		if !ok || kind == "" || id == "" {
			return fmt.Errorf("want KIND:ID, got %q", v)
		}
		devices = append(devices, extract.DeviceID{Kind: strings.ToLower(kind), ID: id})
		return nil
	})
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("backfill: unexpected arguments %v", fs.Args())
	}
	var problems []string
	var f, t time.Time
	var err error
	today := schema.Day(a.now())
	switch {
	case *gaps && (*from != "" || *to != ""):
		problems = append(problems, "--gaps takes no --from or --to (the ledger says which days)")
	case !*gaps:
		if f, err = extract.ParseDate(*from); err != nil {
			problems = append(problems, "--from: "+err.Error())
		} else if f.After(today) {
			problems = append(problems, fmt.Sprintf("--from %s is after today (%s): there is no data to fetch yet", *from, today.Format(time.DateOnly)))
		}
		if t, err = extract.ParseDate(*to); err != nil {
			problems = append(problems, "--to: "+err.Error())
		}
		if len(problems) == 0 && t.Before(f) {
			problems = append(problems, "--to is before --from")
		}
	}
	var ss []string
	if *streams != "" {
		if ss, err = config.ParseStreams(*streams); err != nil {
			problems = append(problems, "--streams: "+err.Error())
		}
		for _, s := range ss {
			if s != schema.StreamUsage && s != schema.StreamConnections {
				problems = append(problems, fmt.Sprintf("--streams: %s has no dates to re-fetch (backfill takes usage and connections; sync fetches %s)", s, s))
			}
		}
	} else {
		for _, s := range env.Config.Streams {
			if s == schema.StreamUsage || s == schema.StreamConnections {
				ss = append(ss, s)
			}
		}
		if len(ss) == 0 {
			problems = append(problems, "THINGSYNC_STREAMS has neither usage nor connections; name them with --streams")
		}
	}
	if len(problems) > 0 {
		return usageErr("backfill: %s", strings.Join(problems, "; "))
	}
	if !*gaps && t.After(today) {
		env.Log.Warn().Str("to", *to).Msg("backfill: --to is after today; fetching up to today, " + today.Format(time.DateOnly))
		t = today
	}
	if *gaps {
		return a.backfillGaps(ctx, env, ss, devices)
	}
	return a.walk(ctx, env, "backfill", ss, &extract.Range{From: f, To: t.AddDate(0, 0, 1)}, devices)
}

// backfillGaps re-fetches the coverage ledger's missing device-days, and
// nothing else.
func (a *App) backfillGaps(ctx context.Context, env *Env, streams []string, only []extract.DeviceID) error {
	wh, err := load.Open(ctx, env.Config.DB, env.Log)
	if err != nil {
		return cannotRun(fmt.Errorf("open warehouse %s: %w", env.Config.DB, err))
	}
	gaps, err := wh.Gaps(ctx)
	var resolved map[extract.DeviceID]extract.DeviceID
	if err == nil && len(only) > 0 {
		resolved, err = wh.ResolveDevices(ctx, only)
	}
	wh.Close()
	if err != nil {
		return cannotRun(err)
	}
	var unknown []string
	for _, d := range only {
		if _, ok := resolved[d]; !ok {
			unknown = append(unknown, d.Kind+":"+d.ID)
		}
	}
	if len(unknown) > 0 {
		// The ledger knows only devices a run has listed: a typo here would
		// otherwise read as "nothing missing".
		return &ExitError{Code: exitPartial, Err: fmt.Errorf("backfill --gaps: no device of the warehouse has --device %s; nothing fetched", strings.Join(unknown, ", "))}
	}
	want := map[string]bool{}
	var history []string
	for _, s := range streams {
		if s == schema.StreamUsage || s == schema.StreamConnections {
			want[s] = true
			history = append(history, s)
		}
	}
	wantDev := map[extract.DeviceID]bool{}
	for _, d := range only {
		wantDev[resolved[d]] = true
	}
	ranges := map[string]map[extract.DeviceID][]extract.Range{}
	devices := map[extract.DeviceID]bool{}
	var span extract.Range
	days := 0
	for _, g := range gaps {
		if !want[g.Stream] || (len(wantDev) > 0 && !wantDev[g.Device]) {
			continue
		}
		if ranges[g.Stream] == nil {
			ranges[g.Stream] = map[extract.DeviceID][]extract.Range{}
		}
		ranges[g.Stream][g.Device] = append(ranges[g.Stream][g.Device], extract.Range{From: g.From, To: g.To})
		devices[g.Device] = true
		if span.From.IsZero() || g.From.Before(span.From) {
			span.From = g.From
		}
		if g.To.After(span.To) {
			span.To = g.To
		}
		days += int(g.To.Sub(g.From).Hours() / 24)
	}
	if len(devices) == 0 {
		fmt.Fprintln(a.Stdout, "backfill --gaps: no missing device-days")
		return nil
	}
	env.Log.Info().Int("devices", len(devices)).Int("device_days", days).Msg("backfill --gaps: re-fetching the missing device-days")
	targets := make([]extract.DeviceID, 0, len(devices))
	for d := range devices {
		targets = append(targets, d)
	}
	g := load.NewGate(env.Config.DB, env.Log)
	g.Patience = time.Nanosecond
	rep, err := a.syncOnce(ctx, env, g, runSpec{kind: "backfill", streams: history, backfill: &span, only: targets, ranges: ranges})
	printSummary(a.Stdout, rep)
	if err != nil {
		return err
	}
	// A pass that ends well leaves nothing missing; if the ledger still
	// lists a gap it fetched, say so rather than report success.
	left, err := gapsLeft(ctx, env, want, wantDev)
	if err != nil {
		return cannotRun(err)
	}
	if left != "" {
		return &ExitError{Code: exitPartial, Err: fmt.Errorf("backfill --gaps: missing device-days left after the pass: %s (thingsync status; sql 'SELECT * FROM coverage WHERE missing_days > 0')", left)}
	}
	return nil
}

// gapsLeft summarises the ledger's missing device-days of the streams and
// devices a gap pass covered: "" when none are left.
func gapsLeft(ctx context.Context, env *Env, streams map[string]bool, devices map[extract.DeviceID]bool) (string, error) {
	wh, err := load.Open(ctx, env.Config.DB, env.Log)
	if err != nil {
		return "", fmt.Errorf("open warehouse %s: %w", env.Config.DB, err)
	}
	gaps, err := wh.Gaps(ctx)
	wh.Close()
	if err != nil {
		return "", err
	}
	days := map[string]int{}
	devs := map[string]map[extract.DeviceID]bool{}
	var order []string
	for _, g := range gaps {
		if !streams[g.Stream] || (len(devices) > 0 && !devices[g.Device]) {
			continue
		}
		if devs[g.Stream] == nil {
			devs[g.Stream] = map[extract.DeviceID]bool{}
			order = append(order, g.Stream)
		}
		days[g.Stream] += int(g.To.Sub(g.From).Hours() / 24)
		devs[g.Stream][g.Device] = true
	}
	var parts []string
	for _, st := range order {
		parts = append(parts, fmt.Sprintf("%s %d device-days on %d devices", st, days[st], len(devs[st])))
	}
	return strings.Join(parts, ", "), nil
}

// printSummary prints a run's summary line on stdout, unless the run
// failed: then the error (on stderr, exit 3) is the whole story, and a
// summary of zeros would read like a quiet success.
func printSummary(w io.Writer, rep runReport) {
	if rep.Summary != "" && rep.Status != "failed" {
		fmt.Fprintln(w, rep.Summary)
	}
}

// walked are the streams fetched per device and window.
func walked(streams []string) []string {
	var out []string
	for _, s := range streams {
		if s == schema.StreamUsage || s == schema.StreamConnections || s == schema.StreamRated {
			out = append(out, s)
		}
	}
	return out
}

// runSpec says what one run does.
type runSpec struct {
	kind     string // sync, backfill or scheduled
	streams  []string
	backfill *extract.Range
	only     []extract.DeviceID
	// serving: the daemon's server takes the callbacks; a one-shot run
	// listens itself and waits for them.
	serving bool
	// ranges narrows a backfill to these ranges per stream and device.
	ranges map[string]map[extract.DeviceID][]extract.Range
	// observer, if set, hears what the run does as it goes.
	observer runObserver
}

// runObserver hears what a run does as it goes: its requests and rate
// ceiling, what each of its transactions wrote, and its devices done.
type runObserver interface {
	extract.Observer
	Committed(load.Totals)
	Progress(extract.Progress)
}

// runReport is what one run did.
type runReport struct {
	RunID    string
	Kind     string
	Status   string // ok, partial, failed, interrupted
	Started  time.Time
	Finished time.Time
	Result   extract.Result
	Counters extract.Counters
	Totals   load.Totals
	Agg      aggregateReport
	Summary  string
}

// walk runs one sync or backfill as a command: the summary on stdout, and
// exit status 1 when the run ended partial (devices failed, interrupted,
// the device list cut short), 3 when it could not run at all.
func (a *App) walk(ctx context.Context, env *Env, kind string, streams []string, backfill *extract.Range, only []extract.DeviceID) error {
	if len(walked(streams)) == 0 && !(kind == "sync" && slices.Contains(streams, schema.StreamAggregate)) {
		return usageErr("%s: no usage, connections or rated stream configured", kind)
	}
	g := load.NewGate(env.Config.DB, env.Log)
	g.Patience = time.Nanosecond // a one-shot command says the file is busy instead of waiting
	rep, err := a.syncOnce(ctx, env, g, runSpec{kind: kind, streams: streams, backfill: backfill, only: only})
	printSummary(a.Stdout, rep)
	return err
}

// syncOnce runs one sync or backfill: the walker feeds the writer through
// the transform, and the run's outcome is recorded in sync_runs. The
// warehouse is held through g for the run's duration only.
func (a *App) syncOnce(ctx context.Context, env *Env, g *load.Gate, spec runSpec) (runReport, error) {
	cfg, log := env.Config, env.Log
	started := a.now()
	rep := runReport{Kind: spec.kind, Started: started, Status: "failed"}
	streams := walked(spec.streams)

	wh, release, err := g.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			rep.Status = "interrupted"
			return rep, &ExitError{Code: exitPartial, Err: errors.New("interrupted before the run started")}
		}
		return rep, cannotRun(fmt.Errorf("open warehouse %s: %w", cfg.DB, err))
	}
	defer release()
	var wanted time.Time
	if spec.backfill == nil {
		wanted = schema.RetentionFloor(started)
		if cfg.Start.After(wanted) {
			wanted = cfg.Start
		}
	}
	runID, err := wh.StartRun(ctx, spec.kind, streams, started)
	if err == nil && !wanted.IsZero() {
		err = wh.SetWantedFrom(ctx, runID, wanted)
	}
	if err != nil {
		return rep, cannotRun(fmt.Errorf("record run: %w", err))
	}
	rep.RunID = runID
	log = log.With().Str(logging.RunID, runID).Logger()

	client, err := a.newClient(cfg, cfg.Concurrency, log, spec.observer)
	if err != nil {
		return rep, cannotRun(err)
	}

	// The writer outlives ctx's cancellation long enough to commit what
	// is in flight: a first signal stops the walk, not the commit.
	wctx := context.WithoutCancel(ctx)
	wopts := load.WriterOptions{Now: a.now}
	if spec.observer != nil {
		wopts.Committed = spec.observer.Committed
	}
	if a.TuneWriter != nil {
		a.TuneWriter(&wopts)
	}
	wr := wh.NewWriter(wctx, runID, wopts)
	sink := load.NewPipeline(wh, wr, transform.New())
	plans := map[string]extract.Plan{
		schema.StreamUsage:       {Now: started, Start: cfg.Start, Step: cfg.WindowUsage, Lookback: cfg.LookbackUsage, Daily: true},
		schema.StreamConnections: {Now: started, Start: cfg.Start, Step: cfg.WindowConnections, Lookback: cfg.LookbackConnections},
	}
	// status reads this file while the run holds the warehouse.
	pf := startProgressFile(cfg.DB, log, a.now, func() int { return client.Counters().TotalRequests() }, runID, spec.kind, started)
	defer pf.remove()
	show, finishProgress := a.progress(log, spec.kind)
	progress := func(p extract.Progress) {
		pf.update(p)
		show(p)
		if spec.observer != nil {
			spec.observer.Progress(p)
		}
	}
	w := &extract.Walk{Client: client, Sink: sink, Log: log, Concurrency: cfg.Concurrency, Streams: streams,
		Plans: plans, Backfill: spec.backfill, Ranges: spec.ranges, Only: spec.only, Now: a.now, Progress: progress}
	res, walkErr := w.Run(ctx)
	finishProgress()
	pf.phase("finishing")
	totals, closeErr := wr.Close(wctx)
	var (
		agg    aggregateReport
		aggErr error
	)
	if slices.Contains(spec.streams, schema.StreamAggregate) && spec.backfill == nil && closeErr == nil && walkErr == nil && ctx.Err() == nil {
		agg, aggErr = a.aggregateStep(ctx, env, g, wh, client, started, spec.serving, log)
		if aggErr != nil {
			log.Error().Err(aggErr).Str(logging.Stream, schema.StreamAggregate).Msg("aggregate usage step failed; the other streams are loaded")
		}
	}
	_ = client.Logout(wctx)

	counters := client.Counters()
	out := load.RunOutcome{
		Status: "ok", FinishedAt: a.now(), Devices: res.Devices, DevicesFailed: res.DevicesFailed,
		Requests: counters.TotalRequests(), Retries: counters.TotalRetries(),
	}
	var (
		final      error
		incomplete *extract.ListIncompleteError
	)
	switch {
	case closeErr != nil:
		out.Status, out.Error = "failed", closeErr.Error()
		final = cannotRun(fmt.Errorf("write warehouse: %w", closeErr))
	case walkErr != nil && ctx.Err() != nil:
		out.Status, out.Error = "interrupted", "stopped by signal"
		final = &ExitError{Code: exitPartial, Err: errors.New("interrupted; the next run resumes from the checkpoints")}
	case errors.As(walkErr, &incomplete):
		// The devices listed are loaded: like devices that failed, the
		// ones the list never reached are the next run's.
		out.Status, out.Error = "partial", walkErr.Error()
		final = &ExitError{Code: exitPartial, Err: fmt.Errorf("%w; the devices listed are loaded", walkErr)}
	case walkErr != nil:
		out.Status, out.Error = "failed", walkErr.Error()
		final = cannotRun(walkErr)
	case res.DevicesFailed > 0:
		out.Status = "partial"
		final = &ExitError{Code: exitPartial, Err: fmt.Errorf("%d of %d devices failed; the others are loaded", res.DevicesFailed, res.Devices)}
	case aggErr != nil:
		out.Status, out.Error = "partial", "aggregate: "+aggErr.Error()
		final = &ExitError{Code: exitPartial, Err: fmt.Errorf("aggregate usage: %w", aggErr)}
	}
	if len(res.Unmatched) > 0 && (final == nil || out.Status == "partial") {
		// A device named that the account does not list is a mistake in
		// the command, not an ok run of nothing.
		names := make([]string, len(res.Unmatched))
		for i, id := range res.Unmatched {
			names[i] = id.String()
		}
		msg := "no device of the account matches --device " + strings.Join(names, ", ")
		if final == nil {
			out.Status, out.Error = "partial", msg
			final = &ExitError{Code: exitPartial, Err: errors.New(msg)}
		} else {
			out.Error = strings.TrimPrefix(out.Error+"; "+msg, "; ")
			final = &ExitError{Code: exitPartial, Err: fmt.Errorf("%w; %s", errors.Unwrap(final), msg)}
		}
	}
	if err := wh.FinishRun(wctx, runID, out); err != nil && final == nil {
		out.Status = "failed"
		final = cannotRun(fmt.Errorf("record run outcome: %w", err))
	}
	rep.Status, rep.Finished = out.Status, out.FinishedAt
	rep.Result, rep.Counters, rep.Totals, rep.Agg = res, counters, totals, agg
	rep.Summary = summary(spec.kind, res, counters, totals, a.now().Sub(started))
	if slices.Contains(spec.streams, schema.StreamAggregate) && spec.backfill == nil {
		rep.Summary += fmt.Sprintf(", aggregate requests %d (%d asked again), %d received, %d pending", agg.Requested, agg.Reasked, agg.Received, agg.Pending)
	}
	return rep, final
}

// aggregateStep runs the aggregate step with the callback listener up: the
// daemon's, or one of its own for a one-shot run, which then waits.
func (a *App) aggregateStep(ctx context.Context, env *Env, g *load.Gate, wh *load.Warehouse, client *extract.Client, started time.Time, serving bool, log zerolog.Logger) (aggregateReport, error) {
	if !serving {
		stop, err := a.listen(ctx, env, g)
		if err != nil {
			return aggregateReport{}, err
		}
		defer stop()
	}
	return a.aggregate(ctx, env, wh, client, started, !serving, log)
}

func summary(kind string, res extract.Result, c extract.Counters, t load.Totals, d time.Duration) string {
	var b strings.Builder
	if res.DevicesDone == res.Devices {
		fmt.Fprintf(&b, "%s: %d devices (%d failed)", kind, res.Devices, res.DevicesFailed)
	} else {
		// Cut short (a signal, a broken list): what was done, not what
		// was listed.
		fmt.Fprintf(&b, "%s: %d listed, %d done, %d failed", kind, res.Devices, res.DevicesDone, res.DevicesFailed)
	}
	fmt.Fprintf(&b, ", %d requests, %d retries", c.TotalRequests(), c.TotalRetries())
	for _, table := range []string{schema.Devices, schema.UsageDaily, schema.ConnectionEvents, schema.RatedUsage} {
		tt, ok := t.Tables[table]
		if !ok && table == schema.RatedUsage {
			continue
		}
		fmt.Fprintf(&b, ", %s +%d ~%d", table, tt.Inserted, tt.Updated)
	}
	fmt.Fprintf(&b, ", %d rejected, %s", t.Rejected, d.Round(time.Millisecond))
	return b.String()
}

// progress reports the walk's advance: a bar on a terminal, a log line
// every few seconds elsewhere (and always for the daemon's runs).
func (a *App) progress(log zerolog.Logger, kind string) (func(extract.Progress), func()) {
	if f, ok := a.Stderr.(*os.File); ok && kind != "scheduled" && term.IsTerminal(int(f.Fd())) {
		return progressBar(f, kind)
	}
	return progressLog(log, kind), func() {}
}

// progressBar draws devices done / total, records, rate and ETA with
// schollz/progressbar; finish clears it before the summary line.
func progressBar(w io.Writer, kind string) (func(extract.Progress), func()) {
	var (
		mu  sync.Mutex
		bar *progressbar.ProgressBar
	)
	update := func(p extract.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if bar == nil {
			bar = progressbar.NewOptions(p.DevicesTotal, progressbar.OptionSetWriter(w),
				progressbar.OptionSetItsString("devices"), progressbar.OptionShowIts(), progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetWidth(24), progressbar.OptionClearOnFinish())
		}
		if p.DevicesTotal != bar.GetMax() {
			// Devices are listed page by page while earlier pages are
			// fetched: the total grows until the list is complete.
			bar.ChangeMax(p.DevicesTotal)
		}
		desc := fmt.Sprintf("%s: %d records", kind, p.Records)
		if p.DevicesFailed > 0 {
			desc += fmt.Sprintf(", %d failed", p.DevicesFailed)
		}
		bar.Describe(desc)
		_ = bar.Set(p.DevicesDone)
	}
	finish := func() {
		mu.Lock()
		defer mu.Unlock()
		if bar != nil {
			_ = bar.Finish()
		}
	}
	return update, finish
}

func progressLog(log zerolog.Logger, kind string) func(extract.Progress) {
	var mu sync.Mutex
	last := time.Now()
	start := last
	return func(p extract.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 5*time.Second && (p.Listing || p.DevicesDone < p.DevicesTotal) {
			return
		}
		last = time.Now()
		ev := log.Info().Int("devices_done", p.DevicesDone).Int("devices_total", p.DevicesTotal).Bool("listing", p.Listing).
			Int("devices_failed", p.DevicesFailed).Int64("records", p.Records)
		if el := time.Since(start).Seconds(); el > 0 && p.DevicesDone > 0 && !p.Listing {
			rate := float64(p.DevicesDone) / el
			ev = ev.Float64("devices_per_s", rate).Float64("eta_s", math.Round(float64(p.DevicesTotal-p.DevicesDone)/rate))
		}
		ev.Msg(kind + " progress")
	}
}
