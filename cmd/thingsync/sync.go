package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/internal/cli"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

func runSync(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("sync", "sync\n\n"+
		"One incremental run of THINGSYNC_STREAMS over every device of the account: each device\n"+
		"from its checkpoint (THINGSYNC_START without one) to now, re-reading what is younger than\n"+
		"the lookback. The aggregate stream listens for its callbacks on THINGSYNC_HTTP_ADDR.\n"+
		"Ends with one summary line. Exit 0 all devices ok, 1 some failed (the others are loaded),\n"+
		"2 usage or configuration, 3 could not run (login, database).\n\n"+
		"With --plan: lists the devices and prints per stream the devices due, skipped as idle\n"+
		"(THINGSYNC_IDLE_RECHECK) and the requests expected, with the time they take at the rate;\n"+
		"fetches no history, writes nothing. Exit 0; 3 could not run (login, warehouse in use).")
	plan := fs.Bool("plan", false, "print what the run would ask for, per stream, instead of running it")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	if !*plan {
		return a.walk(ctx, env, "sync", env.Config.Streams, nil, nil)
	}
	rep, err := a.oneShot(env).Plan(ctx, env.Config.Streams)
	if err == nil {
		rep.WriteText(a.Stdout)
	}
	return runExit(err)
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
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	today := schema.Day(a.now())
	b, err := ingest.PlanBackfill(ingest.BackfillRequest{From: *from, To: *to, Streams: *streams, Gaps: *gaps}, env.Config.Streams, today)
	if err != nil {
		return usageErr("backfill: %v", err)
	}
	if b.Clipped {
		env.Log.Warn().Str("to", *to).Msg("backfill: --to is after today; fetching up to today, " + today.Format(time.DateOnly))
	}
	if *gaps {
		rep, err := a.oneShot(env).BackfillGaps(ctx, b.Streams, devices)
		rep.WriteSummary(a.Stdout)
		return runExit(err)
	}
	return a.walk(ctx, env, "backfill", b.Streams, b.Range, devices)
}

// runner is the App's runner for env, holding the warehouse through g.
func (a *App) runner(env *Env, g *load.Gate) *ingest.Runner {
	return &ingest.Runner{Config: env.Config, Log: env.Log, Gate: g, Now: a.Now, TuneClient: a.TuneClient, TuneWriter: a.TuneWriter,
		Progress: func(log zerolog.Logger, kind string) (func(extract.Progress), func()) {
			return cli.Progress(a.Stderr, log, kind)
		}, Callbacks: callbacks(env), AggregateDeadline: a.AggregateDeadline, AggregateWait: a.AggregateWait}
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
	rep, err := a.oneShot(env).Run(ctx, ingest.Spec{Kind: kind, Streams: streams, Backfill: backfill, Only: only, Budget: env.Config.RunBudget})
	rep.WriteSummary(a.Stdout)
	return runExit(err)
}
