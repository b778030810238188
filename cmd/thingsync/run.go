package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/daemon"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/statuspage"
)

// runDaemon is `thingsync run`: the daemon wired to the configuration, the
// listener and the callbacks.
func runDaemon(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("run", "run [--now]\n\n"+
		"The daemon: syncs on THINGSYNC_SCHEDULE (never two runs at once), serves /healthz, /metrics,\n"+
		"the status page (/) and the callbacks on THINGSYNC_HTTP_ADDR, and publishes THINGSYNC_SNAPSHOT\n"+
		"after each successful run. SIGINT/SIGTERM: the run in flight commits, then exit 0.")
	now := fs.Bool("now", false, "run once at start, then follow the schedule")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	cfg, log := env.Config, env.Log
	// Checked now rather than found after the first run's hours of work.
	if cfg.Snapshot != "" {
		if err := load.CheckSnapshotPath(cfg.Snapshot, cfg.DB); err != nil {
			return usageErr("run: THINGSYNC_SNAPSHOT=%s: %v", cfg.Snapshot, err)
		}
	}
	cbPath := ""
	if cfg.CallbackURL != "" {
		cbPath = callbacks(env).Path()
		if cbPath == "/healthz" || cbPath == "/metrics" || slices.Contains(statuspage.Paths, cbPath) {
			return usageErr("run: THINGSYNC_CALLBACK_URL: the path %s is the daemon's own; give the callbacks another", cbPath)
		}
	}

	// One gate for the runs and the callback commits: the file is open
	// only while one of them writes, and the daemon waits (logging) for as
	// long as an analyst holds it rather than give up.
	g := load.NewGate(cfg.DB, log)
	g.Patience = 0
	runner := a.runner(env, g)
	d := daemon.New(daemon.Options{Log: log, Gate: g, Snapshot: cfg.Snapshot, Streams: cfg.Streams, Now: a.now,
		Sync: func(ctx context.Context, obs ingest.Observer) (ingest.Report, error) {
			// serving: the daemon's listener takes the run's callbacks.
			budget := daemon.Budget(cfg.RunBudgetSet, cfg.RunBudget, cfg.Cron, a.now())
			return runner.Run(ctx, ingest.Spec{Kind: "scheduled", Streams: cfg.Streams, Serving: true, Observer: obs, Budget: budget})
		}})

	mux := http.NewServeMux()
	d.Routes(mux)
	statuspage.New(statuspage.ConfigOptions(cfg, statuspage.GateSource(g, cfg.DB, cfg.Snapshot), a.now)).Routes(mux)
	if cbPath != "" {
		// Callbacks commit through the same gate as the runs: one writer
		// in this process, and the file held only while writing.
		mux.Handle(cbPath, aggregate.Handler(callbacks(env), g, log, a.now))
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return cannotRun(fmt.Errorf("run: listen on %s: %w", cfg.HTTPAddr, err))
	}
	if slices.Contains(cfg.Streams, schema.StreamAggregate) {
		client, err := a.newClient(cfg, 1, log, nil)
		if err == nil {
			err = aggregate.RegisterAtStartup(ctx, client, callbacks(env), log)
		}
		if err != nil {
			ln.Close()
			return cannotRun(fmt.Errorf("run: %w", err))
		}
	}
	if err := d.Serve(ctx, ln, mux, cfg.Cron, cfg.Schedule, *now); err != nil {
		return cannotRun(fmt.Errorf("run: %w", err))
	}
	return nil
}
