package main

import (
	"context"
	"fmt"

	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/status"
	"github.com/thingsync/thingsync/statuspage"
)

func runStatus(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("status", "status [--format table|json]\n\n"+
		"Shows, read-only, where each stream stands (devices, checkpoints, devices behind,\n"+
		"failing devices), the last runs, pending aggregate requests and rejected records.\n"+
		"While a sync holds the warehouse it shows the run's progress (from the file the\n"+
		"run keeps beside THINGSYNC_DB) and, when THINGSYNC_SNAPSHOT is set, the snapshot's\n"+
		"state. --format json prints the same as one JSON document (see README).")
	format := fs.String("format", "table", "output format: table or json")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usageErr("status: --format: want table or json, got %q", *format)
	}
	cfg := env.Config
	now := a.now()
	// The run's report first: a run that ends meanwhile lets go of the
	// warehouse, which then shows what it committed.
	prog, perr := ingest.ReadProgress(ingest.ProgressPath(cfg.DB))
	doc, err := status.Read(ctx, cfg, now)
	if err != nil {
		return cannotRun(fmt.Errorf("status: %w", err))
	}
	if perr != nil {
		env.Log.Warn().Err(perr).Msg("status: the run's progress file is unreadable")
	}
	if prog != nil {
		doc.Progress = prog.View(now)
	}
	err = status.Write(a.Stdout, doc, *format)
	if err != nil {
		return cannotRun(fmt.Errorf("status: write: %w", err))
	}
	return nil
}

func runServe(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("serve", "serve [--addr A]\n\n"+
		"Serves the status page, read-only, over THINGSYNC_SNAPSHOT when it exists, else\n"+
		"THINGSYNC_DB (opened for each request). Never expose it publicly: see docs/deploy.md.")
	addr := fs.String("addr", statuspage.DefaultAddr, "listen address")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	if err := statuspage.Serve(ctx, *addr, env.Config, a.now, env.Log); err != nil {
		return cannotRun(err)
	}
	return nil
}
