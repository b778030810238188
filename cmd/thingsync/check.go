package main

import (
	"context"
	"fmt"

	"github.com/thingsync/thingsync/ingest"
)

// runCheck prints one line per thing a run needs (ingest.Preflight).
func runCheck(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("check", "check\n\n"+
		"Validates what a run needs, one plain line per check: the configuration, one login (never\n"+
		"retried: five failed logins lock the account), the first device page, a writable warehouse,\n"+
		"and the callback listener's registration when THINGSYNC_CALLBACK_URL is set.\n"+
		"Exit 0 all good, 2 configuration, 3 a check failed.")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	client, err := a.newClient(env.Config, 1, env.Log, nil)
	if err != nil {
		return cannotRun(err)
	}
	failed := 0
	for _, c := range ingest.Preflight(ctx, env.Config, client, env.Log) {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(a.Stdout, "%s %-22s %s\n", mark, c.What, c.Detail)
	}
	if failed > 0 {
		return &ExitError{Code: exitCannotRun, Err: fmt.Errorf("%d check(s) failed", failed)}
	}
	fmt.Fprintln(a.Stdout, "all checks passed")
	return nil
}
