package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// runDaemon is `thingsync run`: the wiring of the daemon (daemon.go) to the
// schedule, the HTTP listener and the signals.
func runDaemon(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("run", "run [--now]\n\n"+
		"The daemon: syncs on THINGSYNC_SCHEDULE (never two runs at once), serves /healthz,\n"+
		"/metrics and the callbacks on THINGSYNC_HTTP_ADDR, and publishes THINGSYNC_SNAPSHOT\n"+
		"after each successful run. SIGINT/SIGTERM: the run in flight commits, then exit 0.")
	now := fs.Bool("now", false, "run once at start, then follow the schedule")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("run: unexpected arguments %v", fs.Args())
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
		cbPath = callbackPath(env)
		if cbPath == "/healthz" || cbPath == "/metrics" {
			return usageErr("run: THINGSYNC_CALLBACK_URL: the path %s is the daemon's own; give the callbacks another", cbPath)
		}
	}

	// One gate for the runs and the callback commits: the file is open
	// only while one of them writes, and the daemon waits (logging) for as
	// long as an analyst holds it rather than give up.
	g := load.NewGate(cfg.DB, log)
	g.Patience = 0
	runner := a.runner(env, g)
	d := newDaemon(log, g, cfg.Snapshot, cfg.Streams, a.now, func(ctx context.Context, obs ingest.Observer) (ingest.Report, error) {
		// serving: the daemon's listener takes the run's callbacks.
		return runner.Run(ctx, ingest.Spec{Kind: "scheduled", Streams: cfg.Streams, Serving: true, Observer: obs})
	})

	mux := http.NewServeMux()
	d.routes(mux)
	if cbPath != "" {
		// Callbacks commit through the same gate as the runs: one writer
		// in this process, and the file held only while writing.
		mux.Handle(cbPath, a.callbackHandler(env, g))
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return cannotRun(fmt.Errorf("run: listen on %s: %w", cfg.HTTPAddr, err))
	}
	if slices.Contains(cfg.Streams, schema.StreamAggregate) {
		if err := a.registerAtStartup(ctx, env); err != nil {
			ln.Close()
			return err
		}
	}
	return serveDaemon(ctx, d, ln, mux, cfg.Cron, cfg.Schedule, *now)
}

// registerAtStartup makes sure ThingSpace knows the listener before the
// first request. A rejected login stops the daemon here (exit 3, not
// retried: five failures lock the account); any other failure is logged
// and the next run's aggregate step tries again.
func (a *App) registerAtStartup(ctx context.Context, env *Env) error {
	cfg := env.Config
	client, err := a.newClient(cfg, 1, env.Log, nil)
	if err != nil {
		return cannotRun(err)
	}
	err = ensureCallback(ctx, env, client)
	_ = client.Logout(context.WithoutCancel(ctx))
	switch {
	case errors.Is(err, extract.ErrLoginRejected):
		return cannotRun(fmt.Errorf("run: %w", err))
	case err != nil:
		env.Log.Warn().Err(err).Msg("could not make sure the callback listener is registered; the next run tries again")
	}
	return nil
}

// serveDaemon serves mux on ln and starts runs on sched until ctx ends,
// then stops taking work, lets the run in flight commit, and shuts the
// listener down.
func serveDaemon(ctx context.Context, d *daemon, ln net.Listener, mux http.Handler, sched cron.Schedule, spec string, now bool) error {
	// runs ends when ctx does, or when the listener fails.
	ctx, cancelRuns := context.WithCancel(ctx)
	defer cancelRuns()
	// The schedule is set before the listener starts: /healthz reads it.
	c := cron.New(cron.WithLogger(cronLogger{d.log}))
	id := c.Schedule(sched, cron.FuncJob(func() { d.trigger(ctx, "schedule") }))
	d.next = func() time.Time { return c.Entry(id).Next }

	// A signal ends every request's context: a callback waiting for the
	// warehouse file gives up instead of holding the exit.
	srv := extract.NewServer(ctx, mux, extract.ServerLimits{})
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// Tests and operators learn the bound address (":0" picks a port) here.
	d.log.Info().Str("addr", ln.Addr().String()).Msg("listening")

	c.Start()
	d.log.Info().Str("schedule", spec).Time("next_run", d.next()).Msg("scheduled")
	if now {
		go d.trigger(ctx, "--now")
	}

	var failure error
	select {
	case <-ctx.Done():
		d.log.Info().Msg("signal: stopping (a second signal exits at once)")
	case err := <-serveErr:
		failure = cannotRun(fmt.Errorf("run: serve %s: %w", ln.Addr(), err))
		d.log.Error().Err(err).Msg("the listener failed; stopping")
		cancelRuns()
	}

	// No new work: the schedule stops and trigger refuses from here on.
	c.Stop()
	stopped := make(chan struct{})
	go func() { d.stop(); close(stopped) }()
	// Callback commits in flight finish; new connections are refused
	// (ThingSpace delivers again later).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Warn().Err(err).Msg("shut down the listener")
	}
	<-stopped
	d.log.Info().Msg("stopped")
	return failure
}

// cronLogger sends the scheduler's messages to the program's log.
type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	l.log.Debug().Fields(kv).Msg("cron: " + msg)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}
