package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/internal/cli"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
)

func runDemo(ctx context.Context, a *App, _ *Env, args []string) error {
	fs := a.flagSet("demo", "demo [--devices N] [--seed S] [--db FILE]\n\n"+
		"What make demo runs: starts the simulator on loopback, syncs 12 months of a small simulated\n"+
		"account into FILE, then prints a few analyst queries, each with its SQL and its result.\n"+
		"Reads no environment: the demo sets its own.")
	devices := fs.Int("devices", 50, "devices in the simulated account")
	seed := fs.Int64("seed", 1, "seed of the simulated account")
	db := fs.String("db", "demo.duckdb", "warehouse file to create (replaced if it exists)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if *devices < 1 {
		return usageErr("demo: --devices must be at least 1")
	}
	sim := simulator.New(simulator.Options{Seed: *seed, Devices: *devices})
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cannotRun(fmt.Errorf("demo: listen: %w", err))
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	for _, f := range []string{*db, *db + ".wal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return cannotRun(fmt.Errorf("demo: replace %s: %w", f, err))
		}
	}
	env := sim.ClientEnv("http://"+ln.Addr().String(), map[string]string{
		"THINGSYNC_DB": *db, "THINGSYNC_RATE_LIMIT": simulator.ClientRate(0), "THINGSYNC_STREAMS": "usage,connections,rated",
		"THINGSYNC_LOG_LEVEL": "warn",
	})
	cfg, err := config.Load(ctx, envconfig.MapLookuper(env), a.now(), config.Needs{API: true})
	if err != nil {
		return cannotRun(fmt.Errorf("demo: %w", err))
	}
	log, err := logging.New(a.Stderr, cfg.LogLevel, "")
	if err != nil {
		return cannotRun(err)
	}
	fmt.Fprintf(a.Stdout, "Simulated ThingSpace account %s with %d devices on %s; syncing 12 months into %s …\n\n", sim.AccountName(), *devices, ln.Addr(), *db)
	if err := a.walk(ctx, &Env{Config: cfg, Log: log}, "sync", cfg.Streams, nil, nil); err != nil {
		return err
	}
	rdb, err := load.OpenReadOnly(ctx, *db)
	if err != nil {
		return cannotRun(err)
	}
	defer rdb.Close()
	if err := query.WriteExamples(ctx, a.Stdout, rdb); err != nil {
		return cannotRun(err)
	}
	fmt.Fprintf(a.Stdout, "\nTry: THINGSYNC_DB=%s %s sql 'SELECT * FROM connection_sessions LIMIT 5'\n", cli.ShellWord(*db), cli.ShellWord(a.program()))
	return nil
}
