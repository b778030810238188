package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
)

// demoRateLimit is the request ceiling of the demo's sync, and the one
// simulate suggests: the simulator has no ceiling of its own unless told.
const demoRateLimit = "2000"

// demoQueries are what an analyst asks first.
var demoQueries = []struct{ title, sql string }{
	{"Top 5 data users this month", `SELECT device_kind, device_id, round(bytes_used / 1e9, 2) AS gb, sms_used
		FROM usage_monthly WHERE month = date_trunc('month', current_date) ORDER BY bytes_used DESC LIMIT 5`},
	{"SMS by day, last 7 days (the last three are provisional)", `SELECT usage_date, sum(mo_sms) AS mo_sms, sum(mt_sms) AS mt_sms, sum(sms_used) AS total
		FROM usage_daily WHERE usage_date >= current_date - 7 GROUP BY ALL ORDER BY usage_date`},
	{"Sessions per day and their median duration, last 7 days", `SELECT started_at::DATE AS day, count(*) AS sessions, count(*) FILTER (WHERE is_open) AS still_open,
		round(median(epoch(duration)) / 60, 1) AS median_minutes
		FROM connection_sessions WHERE started_at >= current_date - 7 GROUP BY ALL ORDER BY day`},
	{"Devices with no data for 7 days", `SELECT d.device_kind, d.device_id, d.state, max(u.usage_date) FILTER (WHERE u.bytes_used > 0) AS last_day_with_data
		FROM devices d LEFT JOIN usage_daily u USING (device_kind, device_id) GROUP BY ALL
		HAVING last_day_with_data IS NULL OR last_day_with_data < current_date - 7 ORDER BY last_day_with_data NULLS FIRST, d.device_id LIMIT 8`},
	{"International share by month", `SELECT month, round(sum(international_usage) / 1e9, 2) AS international_gb,
		round(100 * sum(international_usage) / nullif(sum(domestic_usage) + sum(international_usage), 0), 2) AS international_pct
		FROM usage_monthly GROUP BY month ORDER BY month DESC LIMIT 4`},
}

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
	id, secret, user, pass := sim.Credentials()
	env := map[string]string{
		"THINGSPACE_BASE_URL": "http://" + ln.Addr().String(), "THINGSPACE_CLIENT_ID": id, "THINGSPACE_CLIENT_SECRET": secret,
		"THINGSPACE_USERNAME": user, "THINGSPACE_PASSWORD": pass, "THINGSPACE_ACCOUNT_NAME": sim.AccountName(),
		"THINGSYNC_DB": *db, "THINGSYNC_RATE_LIMIT": demoRateLimit, "THINGSYNC_STREAMS": "usage,connections,rated",
		"THINGSYNC_LOG_LEVEL": "warn",
	}
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
	for _, q := range demoQueries {
		fmt.Fprintf(a.Stdout, "\n-- %s\n%s;\n\n", q.title, sqlText(q.sql))
		rows, err := rdb.QueryContext(ctx, q.sql)
		if err != nil {
			return cannotRun(fmt.Errorf("demo query: %w", err))
		}
		err = query.WriteTable(ctx, a.Stdout, query.Once(rows))
		rows.Close()
		if err != nil {
			return cannotRun(err)
		}
	}
	fmt.Fprintf(a.Stdout, "\nTry: THINGSYNC_DB=%s %s sql 'SELECT * FROM connection_sessions LIMIT 5'\n", shellWord(*db), shellWord(a.program()))
	return nil
}

// sqlText is a query as written in the source, without its Go indentation.
func sqlText(q string) string {
	lines := strings.Split(strings.TrimSpace(q), "\n")
	for i, l := range lines {
		if l = strings.TrimLeft(l, "\t "); i > 0 {
			l = "  " + l
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
