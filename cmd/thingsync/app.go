package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/extract"
)

// Exit statuses (SPEC §4).
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
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// TuneClient, if set, adjusts the API client's settings (tests shorten
	// backoffs and pauses with it).
	TuneClient func(*extract.ClientConfig)
	// AggregateDeadline is how long an aggregate request may wait for its
	// callback before it is asked again (0: 6 hours); AggregateWait bounds
	// how long a one-shot sync waits for its callbacks (0: 2 minutes).
	AggregateDeadline, AggregateWait time.Duration
}

// newClient builds the API client from the configuration, with the
// test tuning applied; concurrency sizes its connection pool.
func (a *App) newClient(cfg *config.Config, concurrency int, log zerolog.Logger) (*extract.Client, error) {
	cc := extract.ClientConfig{
		BaseURL: cfg.BaseURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
		Username: cfg.Username, Password: cfg.Password.Reveal(), AccountName: cfg.AccountName,
		RateLimit: cfg.RateLimit, Concurrency: concurrency,
	}
	if a.TuneClient != nil {
		a.TuneClient(&cc)
	}
	return extract.NewClient(cc, log)
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
	run      func(ctx context.Context, a *App, env *Env, args []string) error
}

// Env is what a command gets before it starts: configuration and logger.
type Env struct {
	Config *config.Config
	Log    zerolog.Logger
}

func commands() []command {
	return []command{
		{name: "sync", summary: "one incremental run of the configured streams over every device", needsAPI: true, run: runSync},
		{name: "backfill", summary: "re-fetch a closed range of dates and upsert it", needsAPI: true, run: runBackfill},
		{name: "run", summary: "the daemon: sync on THINGSYNC_SCHEDULE, serve callbacks, /healthz, /metrics", needsAPI: true, run: runDaemon},
		{name: "status", summary: "per stream: devices, checkpoints, last runs, failing devices", run: runStatus},
		{name: "sql", summary: "run a read-only query on the warehouse", run: runSQL},
		{name: "export", summary: "write the warehouse as Hive-partitioned Parquet files", run: runExport},
		{name: "schema", summary: "print the warehouse's tables, views and columns (Markdown)", noConfig: true, run: runSchema},
		{name: "check", summary: "validate configuration, login, database and callback registration", needsAPI: true, run: runCheck},
		{name: "simulate", summary: "serve the ThingSpace simulator until stopped", noConfig: true, run: runSimulate},
		{name: "demo", summary: "simulator + full sync into demo.duckdb + a few analyst queries", noConfig: true, run: runDemo},
		{name: "version", summary: "print the version", noConfig: true, run: func(_ context.Context, a *App, _ *Env, _ []string) error {
			fmt.Fprintln(a.Stdout, "thingsync", a.Version)
			return nil
		}},
	}
}

// Run runs one command line.
func (a *App) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return a.Run(ctx, []string{args[1], "-h"})
		}
		a.usage(a.Stdout)
		if len(args) == 0 {
			return &ExitError{Code: exitUsage}
		}
		return nil
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		a.usage(a.Stderr)
		return usageErr("unknown command %q", args[0])
	}
	env := &Env{Log: zerolog.Nop()}
	isHelp := len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "-help")
	if !cmd.noConfig && !isHelp {
		lookup := a.LookupEnv
		if lookup == nil {
			lookup = func(string) (string, bool) { return "", false }
		}
		cfg, err := config.Load(ctx, envconfig.LookuperFunc(lookup), a.now(), config.Needs{API: cmd.needsAPI})
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

func (a *App) usage(w io.Writer) {
	fmt.Fprintln(w, "thingsync keeps a DuckDB warehouse in step with Verizon ThingSpace.")
	fmt.Fprintln(w, "\nUsage: thingsync <command> [flags]   (thingsync <command> -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from the environment; see README.md.")
}

// flagSet builds a command's flag set: errors are returned, not printed
// with os.Exit, and -h prints the command's usage.
func (a *App) flagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.Stderr, "Usage: thingsync %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping -h to success and errors to exit status 2.
func parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, &ExitError{Code: exitUsage, Err: err, Quiet: true}
	}
	return false, nil
}
