package main

import (
	"context"
	"net/http"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

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

// ensureCallback registers the listener unless ThingSpace already lists
// it at the configured URL.
func ensureCallback(ctx context.Context, env *Env, client *extract.Client) error {
	return aggregate.Register(ctx, client, callbacks(env), env.Log)
}
