package main

import (
	"github.com/thingsync/thingsync/aggregate"
)

// callbacks are the callback listener's settings from the configuration.
func callbacks(env *Env) aggregate.Callbacks {
	cfg := env.Config
	return aggregate.Callbacks{URL: cfg.CallbackURL, Addr: cfg.HTTPAddr, Username: cfg.CallbackUsername,
		Password: cfg.CallbackPassword.Reveal(), Lookback: cfg.LookbackUsage}
}
