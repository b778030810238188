package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

func runSimulate(ctx context.Context, a *App, _ *Env, args []string) error {
	fs := a.flagSet("simulate", "simulate [--addr A] [--devices N] [--fleet-mix M] [--seed S] [faults]\n\n"+
		"Serves a deterministic simulated ThingSpace account (same --seed, same data) until stopped,\n"+
		"with every endpoint thingsync uses, and injects the faults and quirks below on demand.\n"+
		"Prints the environment a sync against it needs, rate included, on standard error.")
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	var opts simulator.Options
	opts.RegisterFlags(fs)
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	if opts.Devices < 1 {
		return usageErr("simulate: --devices must be at least 1")
	}
	sim := simulator.New(opts)
	defer sim.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return cannotRun(fmt.Errorf("simulate: listen on %s: %w", *addr, err))
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	id, secret, user, pass := sim.Credentials()
	fleet := ""
	if !opts.Fleet.IsZero() {
		fleet = " (fleet mix " + opts.Fleet.String() + ")"
	}
	fmt.Fprintf(a.Stderr, "thingsync simulate: serving %d devices%s of account %s on http://%s\n", opts.Devices, fleet, sim.AccountName(), ln.Addr())
	fmt.Fprintf(a.Stderr, "  THINGSPACE_BASE_URL=http://%s THINGSPACE_CLIENT_ID=%s THINGSPACE_CLIENT_SECRET=%s THINGSPACE_USERNAME=%s THINGSPACE_PASSWORD=%s THINGSPACE_ACCOUNT_NAME=%s THINGSYNC_RATE_LIMIT=%s\n",
		ln.Addr(), id, secret, user, pass, sim.AccountName(), simulator.ClientRate(opts.Faults.RateCeiling))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return cannotRun(fmt.Errorf("simulate: %w", err))
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return cannotRun(fmt.Errorf("simulate: shut down: %w", err))
	}
	return nil
}
