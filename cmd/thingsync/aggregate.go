package main

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

type aggregateReport = aggregate.Report

// callbacks are the callback listener's settings from the configuration.
func callbacks(env *Env) aggregate.Callbacks {
	cfg := env.Config
	return aggregate.Callbacks{URL: cfg.CallbackURL, Addr: cfg.HTTPAddr, Username: cfg.CallbackUsername,
		Password: cfg.CallbackPassword.Reveal(), Lookback: cfg.LookbackUsage}
}

// callbackPath is where the listener serves callbacks: the path of
// THINGSYNC_CALLBACK_URL.
func callbackPath(env *Env) string { return callbacks(env).Path() }

// callbackHandler is the callback listener; it commits through g.
func (a *App) callbackHandler(env *Env, g *load.Gate) http.Handler {
	return aggregate.Handler(callbacks(env), g, env.Log, a.now)
}

// listen serves the callback path on THINGSYNC_HTTP_ADDR for a one-shot
// run; stop shuts it down.
func (a *App) listen(ctx context.Context, env *Env, g *load.Gate) (stop func(), err error) {
	return aggregate.Listen(ctx, callbacks(env), a.callbackHandler(env, g), env.Log)
}

// ensureCallback registers the listener unless ThingSpace already lists
// it at the configured URL.
func ensureCallback(ctx context.Context, env *Env, client *extract.Client) error {
	return aggregate.Register(ctx, client, callbacks(env), env.Log)
}

// aggregate sends a run's aggregate requests and, with wait, waits for
// their callbacks (the listener is up: the daemon's, or listen's).
func (a *App) aggregate(ctx context.Context, env *Env, wh *load.Warehouse, client *extract.Client, started time.Time, wait bool, log zerolog.Logger) (aggregateReport, error) {
	step := aggregate.Step{Client: client, Callbacks: callbacks(env), Start: env.Config.Start,
		Deadline: a.AggregateDeadline, Wait: a.AggregateWait, Now: a.now, Log: log}
	return step.Request(ctx, wh, started, wait)
}
