package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

// runCheck validates what a run needs, one line per check, in plain words:
// configuration (already loaded, or the command would have stopped with
// exit 2), one login, the first device page, a writable warehouse and the
// callback registration. It logs in at most once: a rejected login is
// never retried (five failures lock the account).
func runCheck(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("check", "check\n\n"+
		"Validates what a run needs, one plain line per check: the configuration, one login (never\n"+
		"retried: five failed logins lock the account), the first device page, a writable warehouse,\n"+
		"and the callback listener's registration when THINGSYNC_CALLBACK_URL is set.\n"+
		"Exit 0 all good, 2 configuration, 3 a check failed.")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("check: unexpected arguments %v", fs.Args())
	}
	cfg := env.Config
	out := a.Stdout
	failed := 0
	report := func(ok bool, what, detail string) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(out, "%s %-22s %s\n", mark, what, detail)
	}
	report(true, "configuration", fmt.Sprintf("streams %v, account %s, API %s", cfg.Streams, cfg.AccountName, logging.RedactURL(cfg.BaseURL)))

	client, err := a.newClient(cfg, 1, env.Log, nil)
	if err != nil {
		return cannotRun(err)
	}
	loggedIn := false
	if err := client.Login(ctx); err != nil {
		report(false, "login", plainLoginError(err))
	} else {
		loggedIn = true
		report(true, "login", "bearer token and session token obtained")
		defer client.Logout(context.WithoutCancel(ctx)) //nolint:errcheck // best effort
	}
	if loggedIn {
		page, err := client.DevicePage(ctx, -1)
		switch {
		case err != nil:
			report(false, "device list", fmt.Sprintf("first page of account %s: %v", cfg.AccountName, err))
		default:
			more := ""
			if page.HasMore {
				more = " (more pages follow)"
			}
			report(true, "device list", fmt.Sprintf("first page: %d devices%s", len(page.Devices), more))
		}
	}

	if err := checkWritable(ctx, cfg.DB, env); err != nil {
		report(false, "warehouse", err.Error())
	} else {
		report(true, "warehouse", cfg.DB+" is writable")
	}
	if cfg.Snapshot != "" {
		if err := load.CheckSnapshotPath(cfg.Snapshot, cfg.DB); err != nil {
			report(false, "snapshot", "THINGSYNC_SNAPSHOT="+cfg.Snapshot+": "+err.Error())
		} else {
			report(true, "snapshot", cfg.Snapshot+" can be published")
		}
	}

	switch {
	case cfg.CallbackURL == "":
		report(true, "callbacks", "THINGSYNC_CALLBACK_URL not set: aggregate stream off")
	case !loggedIn:
		report(false, "callbacks", "not checked: no login")
	default:
		list, err := client.ListCallbacks(ctx)
		registered := false
		for _, c := range list {
			registered = registered || (c.Name == extract.AggregateService && c.URL == cfg.CallbackURL)
		}
		switch {
		case err != nil:
			report(false, "callbacks", fmt.Sprintf("listing registered listeners: %v", err))
		case registered:
			report(true, "callbacks", fmt.Sprintf("%s listener registered at %s", extract.AggregateService, cfg.CallbackURL))
		default:
			report(false, "callbacks", fmt.Sprintf("no %s listener registered at %s; `thingsync run` or `sync` registers it", extract.AggregateService, cfg.CallbackURL))
		}
	}
	if failed > 0 {
		return &ExitError{Code: exitCannotRun, Err: fmt.Errorf("%d check(s) failed", failed)}
	}
	fmt.Fprintln(out, "all checks passed")
	return nil
}

// plainLoginError is the login line's detail: each error of the client
// names the setting to fix (a rejected login THINGSPACE_USERNAME or
// THINGSPACE_PASSWORD, refused client credentials THINGSPACE_CLIENT_ID or
// THINGSPACE_CLIENT_SECRET, an answer that is not the API's the URL and
// THINGSPACE_BASE_URL).
func plainLoginError(err error) string {
	return err.Error()
}

// checkWritable opens the warehouse read-write (creating and migrating it
// if new) and writes nothing.
func checkWritable(ctx context.Context, path string, env *Env) error {
	wh, err := load.Open(ctx, path, env.Log)
	if err != nil {
		if errors.Is(err, load.ErrLocked) {
			return fmt.Errorf("%s is held by another process (an open sql session or a running daemon)", path)
		}
		return err
	}
	return wh.Close()
}
