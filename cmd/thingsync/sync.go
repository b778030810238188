package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
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
		rep, err := a.oneShot(env).BackfillGaps(ctx, ss, devices)
		printSummary(a.Stdout, rep)
		return runExit(err)
	}
	return a.walk(ctx, env, "backfill", ss, &extract.Range{From: f, To: t.AddDate(0, 0, 1)}, devices)
}

// printSummary prints a run's summary line on stdout, unless the run
// failed: then the error (on stderr, exit 3) is the whole story, and a
// summary of zeros would read like a quiet success.
func printSummary(w io.Writer, rep ingest.Report) {
	if rep.Summary != "" && rep.Status != ingest.StatusFailed {
		fmt.Fprintln(w, rep.Summary)
	}
}

// runner is the App's runner for env, holding the warehouse through g.
func (a *App) runner(env *Env, g *load.Gate) *ingest.Runner {
	return &ingest.Runner{Config: env.Config, Log: env.Log, Gate: g, Now: a.Now, TuneClient: a.TuneClient, TuneWriter: a.TuneWriter,
		Progress: a.progress, Callbacks: callbacks(env), AggregateDeadline: a.AggregateDeadline, AggregateWait: a.AggregateWait}
}

// oneShot is the runner of a command: it says the file is busy instead of
// waiting for it.
func (a *App) oneShot(env *Env) *ingest.Runner {
	g := load.NewGate(env.Config.DB, env.Log)
	g.Patience = time.Nanosecond
	return a.runner(env, g)
}

// runExit maps a run's error to the command's exit status: 1 when the run
// ended partial (devices failed, interrupted, the device list cut short),
// 3 when it could not run at all.
func runExit(err error) error {
	var ie *ingest.Error
	if !errors.As(err, &ie) {
		return err
	}
	code := exitCannotRun
	if ie.Kind == ingest.Partial {
		code = exitPartial
	}
	return &ExitError{Code: code, Err: ie.Err}
}

// walk runs one sync or backfill as a command: the summary on stdout, and
// the run's exit status.
func (a *App) walk(ctx context.Context, env *Env, kind string, streams []string, backfill *extract.Range, only []extract.DeviceID) error {
	if len(ingest.Walked(streams)) == 0 && !(kind == "sync" && slices.Contains(streams, schema.StreamAggregate)) {
		return usageErr("%s: no usage, connections or rated stream configured", kind)
	}
	rep, err := a.oneShot(env).Run(ctx, ingest.Spec{Kind: kind, Streams: streams, Backfill: backfill, Only: only})
	printSummary(a.Stdout, rep)
	return runExit(err)
}

// progress reports the walk's advance: a bar on a terminal, a log line
// every few seconds elsewhere (and always for the daemon's runs).
func (a *App) progress(log zerolog.Logger, kind string) (func(extract.Progress), func()) {
	if f, ok := a.Stderr.(*os.File); ok && kind != "scheduled" && term.IsTerminal(int(f.Fd())) {
		return progressBar(f, kind)
	}
	return ingest.ProgressLog(log, kind), func() {}
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
