package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

// Check is one thing a run needs, checked.
type Check struct {
	OK     bool
	What   string // configuration, login, device list, warehouse, snapshot, callbacks
	Detail string // what was found, in plain words; for a failure, the setting to fix
}

// Preflight checks what a run needs, in order: the configuration (cfg is
// loaded, or nothing would run), one login through client, the first
// device page, a writable warehouse, the snapshot's path when one is set,
// and the callback listener's registration when THINGSYNC_CALLBACK_URL is
// set. It logs in at most once: a rejected login is never retried (five
// failures lock the account). The client is logged out at the end.
func Preflight(ctx context.Context, cfg *config.Config, client *extract.Client, log zerolog.Logger) []Check {
	var checks []Check
	report := func(ok bool, what, detail string) { checks = append(checks, Check{ok, what, detail}) }
	report(true, "configuration", fmt.Sprintf("streams %v, account %s, API %s", cfg.Streams, cfg.AccountName, logging.RedactURL(cfg.BaseURL)))

	// Each of the client's login errors names the setting to fix.
	loggedIn := false
	if err := client.Login(ctx); err != nil {
		report(false, "login", err.Error())
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

	if err := writable(ctx, cfg.DB, log); err != nil {
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
	return checks
}

// writable opens the warehouse read-write (creating and migrating it if
// new) and writes nothing.
func writable(ctx context.Context, path string, log zerolog.Logger) error {
	wh, err := load.Open(ctx, path, log)
	if err != nil {
		if errors.Is(err, load.ErrLocked) {
			return fmt.Errorf("%s is held by another process (an open sql session or a running daemon)", path)
		}
		return err
	}
	return wh.Close()
}
