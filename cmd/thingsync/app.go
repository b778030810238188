package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/internal/cli"
	"github.com/thingsync/thingsync/load"
)

// Exit statuses, as README.md and docs/design.md list them.
const (
	exitOK        = 0
	exitPartial   = 1 // some devices failed; a bad query
	exitUsage     = 2 // bad flags or configuration
	exitCannotRun = 3 // auth, database
)

// ExitError carries the exit status a command ends with.
type ExitError struct {
	Code int
	Err  error
	// Quiet: the command already told the user.
	Quiet bool
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(format string, args ...any) error {
	return &ExitError{Code: exitUsage, Err: fmt.Errorf(format, args...)}
}

func cannotRun(err error) error { return &ExitError{Code: exitCannotRun, Err: err} }

// App is the program with its outside world: streams, environment, clock.
// Tests build one with their own.
type App struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	Version        string
	// Program is the program as it was invoked (os.Args[0]), for the
	// command lines it suggests; empty: thingsync.
	Program string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// TuneClient, if set, adjusts the API client's settings (tests shorten
	// backoffs and pauses with it).
	TuneClient func(*extract.ClientConfig)
	// TuneWriter, if set, adjusts a run's writer (tests commit every batch
	// with it, as a large fleet's run does).
	TuneWriter func(*load.WriterOptions)
	// ScheduleFloor, if set, replaces the shortest @every interval
	// THINGSYNC_SCHEDULE may have (tests run the daemon every second).
	ScheduleFloor time.Duration
	// AggregateDeadline is how long an aggregate request may wait for its
	// callback before it is asked again (0: 6 hours); AggregateWait bounds
	// how long a one-shot sync waits for its callbacks (0: 2 minutes).
	AggregateDeadline, AggregateWait time.Duration
}

// newClient builds the API client from the configuration, with the
// test tuning applied; concurrency sizes its connection pool, and obs (if
// not nil) hears its requests.
func (a *App) newClient(cfg *config.Config, concurrency int, log zerolog.Logger, obs extract.Observer) (*extract.Client, error) {
	return ingest.NewClient(cfg, concurrency, a.TuneClient, obs, log)
}

func (a *App) program() string {
	if a.Program == "" {
		return "thingsync"
	}
	return a.Program
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// command is one sub-command.
type command struct {
	name    string
	summary string
	// needsAPI: the command talks to ThingSpace and needs its credentials.
	needsAPI bool
	// noConfig: the command reads no environment (help, version, simulate).
	noConfig bool
	// env lists the variables the command reads, for its help.
	env []string
	run func(ctx context.Context, a *App, env *Env, args []string) error
}

// Env is what a command gets before it starts: configuration and logger.
type Env struct {
	Config *config.Config
	Log    zerolog.Logger
}

func commands() []command {
	api := []string{"THINGSPACE_BASE_URL", "THINGSPACE_CLIENT_ID", "THINGSPACE_CLIENT_SECRET", "THINGSPACE_USERNAME", "THINGSPACE_PASSWORD", "THINGSPACE_ACCOUNT_NAME"}
	fetch := []string{"THINGSYNC_DB", "THINGSYNC_STREAMS", "THINGSYNC_START", "THINGSYNC_WINDOW_USAGE", "THINGSYNC_WINDOW_CONNECTIONS",
		"THINGSYNC_LOOKBACK_USAGE", "THINGSYNC_LOOKBACK_CONNECTIONS", "THINGSYNC_IDLE_RECHECK", "THINGSYNC_CONCURRENCY", "THINGSYNC_RATE_LIMIT", "THINGSYNC_MAX_ANSWER_MB", "THINGSYNC_RUN_BUDGET"}
	callbacks := []string{"THINGSYNC_HTTP_ADDR", "THINGSYNC_CALLBACK_URL", "THINGSYNC_CALLBACK_USERNAME", "THINGSYNC_CALLBACK_PASSWORD"}
	logs := []string{"THINGSYNC_LOG_LEVEL", "THINGSYNC_LOG_FORMAT"}
	reads := []string{"THINGSYNC_DB", "THINGSYNC_SNAPSHOT"}
	join := func(lists ...[]string) []string { return slices.Concat(lists...) }
	return []command{
		{name: "sync", summary: "one incremental run of the configured streams over every device", needsAPI: true,
			env: join(api, fetch, callbacks, logs), run: runSync},
		{name: "backfill", summary: "re-fetch a closed range of dates, or the coverage ledger's gaps, and upsert it", needsAPI: true,
			env: join(api, slices.DeleteFunc(slices.Clone(fetch), func(v string) bool { return v == "THINGSYNC_START" || v == "THINGSYNC_IDLE_RECHECK" }), logs), run: runBackfill},
		{name: "run", summary: "the daemon: sync on THINGSYNC_SCHEDULE, serve callbacks, /healthz, /metrics", needsAPI: true,
			env: join(api, fetch, []string{"THINGSYNC_SNAPSHOT", "THINGSYNC_SCHEDULE"}, callbacks, logs), run: runDaemon},
		{name: "status", summary: "per stream: devices, checkpoints, last runs, failing devices", env: join(reads, logs), run: runStatus},
		{name: "serve", summary: "serve the status page (read-only; behind a proxy with auth, never public)", env: join(reads, logs), run: runServe},
		{name: "sql", summary: "run a read-only query on the warehouse", env: join(reads, logs), run: runSQL},
		{name: "export", summary: "write the warehouse as Hive-partitioned Parquet files", env: join(reads, logs), run: runExport},
		{name: "schema", summary: "print the warehouse's tables, views and columns (Markdown)", noConfig: true, run: runSchema},
		{name: "check", summary: "validate configuration, login, database and callback registration", needsAPI: true,
			env: join(api, []string{"THINGSYNC_DB", "THINGSYNC_SNAPSHOT", "THINGSYNC_STREAMS", "THINGSYNC_RATE_LIMIT", "THINGSYNC_CALLBACK_URL"}, logs), run: runCheck},
		{name: "simulate", summary: "serve the ThingSpace simulator until stopped", noConfig: true, run: runSimulate},
		{name: "demo", summary: "simulator + full sync into demo.duckdb + a few analyst queries", noConfig: true, run: runDemo},
		{name: "version", summary: "print the version (also --version)", noConfig: true, run: runVersion},
	}
}

func runVersion(_ context.Context, a *App, _ *Env, args []string) error {
	fs := a.flagSet("version", "version")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	fmt.Fprintln(a.Stdout, "thingsync", a.Version)
	return nil
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return &c
		}
	}
	return nil
}

// Run runs one command line.
func (a *App) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		// Not asked for: the overview goes with the error.
		a.usage(a.Stderr)
		return usageErr("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if findCommand(args[1]) == nil {
				return unknownCommand(args[1])
			}
			return a.Run(ctx, []string{args[1], "-h"})
		}
		a.usage(a.Stdout)
		return nil
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		return unknownCommand(args[0])
	}
	env := &Env{Log: zerolog.Nop()}
	if !cmd.noConfig && !cli.AsksHelp(args[1:]) {
		lookup := a.LookupEnv
		if lookup == nil {
			lookup = func(string) (string, bool) { return "", false }
		}
		cfg, err := config.Load(ctx, envconfig.LookuperFunc(lookup), a.now(), config.Needs{API: cmd.needsAPI, ScheduleFloor: a.ScheduleFloor})
		if err != nil {
			return &ExitError{Code: exitUsage, Err: err}
		}
		log, err := logging.New(a.Stderr, cfg.LogLevel, cfg.LogFormat)
		if err != nil {
			return &ExitError{Code: exitUsage, Err: err}
		}
		if cmd.needsAPI {
			// Notes are about what a run will fetch; sql and status need not hear them.
			for _, n := range cfg.Notes {
				log.Info().Str(logging.Command, cmd.name).Msg(n)
			}
		}
		env.Config, env.Log = cfg, log.With().Str(logging.Command, cmd.name).Logger()
	}
	return cmd.run(ctx, a, env, args[1:])
}

// unknownCommand is the error for a command name that is not one, with
// the nearest command when a typo is likely.
func unknownCommand(name string) error {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if best, ok := cli.Nearest(name, names); ok {
		return usageErr("unknown command %q; did you mean %s? (thingsync help lists the commands)", name, best)
	}
	return usageErr("unknown command %q (thingsync help lists the commands)", name)
}

func (a *App) usage(w io.Writer) {
	fmt.Fprintln(w, "thingsync keeps a DuckDB warehouse in step with Verizon ThingSpace.")
	fmt.Fprintln(w, "\nUsage: thingsync <command> [flags]   (thingsync help <command>, or thingsync <command> -h, for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from the environment (each command's help names what it reads; see README.md).")
}

// flagSet builds a command's flag set (see cli.FlagSet): its help goes
// to stdout and lists the variables the command reads.
func (a *App) flagSet(name, usage string) *flag.FlagSet {
	var env []string
	if c := findCommand(name); c != nil {
		env = c.env
	}
	return cli.FlagSet(name, usage, a.Stdout, cli.Variables(env))
}

// parse parses a command's flags: help is printed and reported as such
// (exit 0); a bad flag is exit status 2.
func parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	help, err = cli.Parse(fs, args)
	if err != nil {
		return false, &ExitError{Code: exitUsage, Err: err}
	}
	return help, nil
}

// parseNoArgs parses a command's flags, for a command that takes no
// arguments besides them.
func parseNoArgs(fs *flag.FlagSet, args []string) (help bool, err error) {
	if help, err = parse(fs, args); help || err != nil {
		return help, err
	}
	if fs.NArg() > 0 {
		return false, usageErr("%s: unexpected arguments %v", fs.Name(), fs.Args())
	}
	return false, nil
}
