package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
)

func runSQL(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("sql", "sql [--format table|csv|json] [--allow DIR]... 'QUERY'\n\n"+
		"Runs one query on THINGSYNC_DB, read-only (on THINGSYNC_SNAPSHOT instead when it is set\n"+
		"and exists: a running sync holds THINGSYNC_DB), and prints the result. QUERY - reads the\n"+
		"query from standard input.\n\n"+
		"Exactly one query runs: SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN.\n"+
		"Anything else (COPY, EXPORT, ATTACH, INSTALL, LOAD, SET, PRAGMA, CHECKPOINT, several\n"+
		"statements) is refused with exit status 1 before it runs. Nothing sql runs writes a file\n"+
		"or reads one outside the warehouse and the --allow directories: DuckDB runs with external\n"+
		"access off and its configuration locked. DuckDB may spill to a private temporary directory\n"+
		"(under TMPDIR), removed when sql ends.\n\n"+
		"Memory stays bounded whatever the result's size: DuckDB keeps the result within its\n"+
		"memory limit ("+query.MemoryLimit+", spilling past it) and the program holds a page of\n"+
		fmt.Sprint(query.PageRows)+" rows. --format table reads the result twice (column widths, then\n"+
		"the rows); csv and json stream it once.\n\n"+
		"Exit status: 0; 1 the query failed or was refused (DuckDB's message); 2 bad flags;\n"+
		"3 the warehouse could not be opened.")
	format := fs.String("format", string(query.Table), "output format: table (aligned columns), csv (with a header; NULL is empty) or json (an array of objects)")
	var allow []string
	fs.Func("allow", "a directory (`DIR`) whose files queries may read, e.g. an export directory for read_parquet('DIR/usage_daily/*/*.parquet'); repeatable (default: none, only the warehouse)", func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("empty directory")
		}
		allow = append(allow, v)
		return nil
	})
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if !query.Format(*format).Valid() {
		return usageErr("sql: unknown --format %q (want table, csv or json)", *format)
	}
	switch {
	case fs.NArg() == 0:
		return usageErr("sql: missing query (thingsync sql [--format table|csv|json] 'QUERY', or - to read it from stdin)")
	case fs.NArg() > 1:
		return usageErr("sql: expected one query, got %d arguments (quote the query; flags go before it)", fs.NArg())
	}
	for _, d := range allow {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return usageErr("sql: --allow %s: not a directory", d)
		}
	}
	q := fs.Arg(0)
	if q == "-" {
		if a.Stdin == nil {
			return usageErr("sql: no standard input to read the query from")
		}
		b, err := io.ReadAll(a.Stdin)
		if err != nil {
			return cannotRun(fmt.Errorf("sql: read query from stdin: %w", err))
		}
		q = string(b)
	}
	if strings.TrimSpace(q) == "" {
		return usageErr("sql: the query is empty")
	}

	path, err := query.Path(env.Config.DB, env.Config.Snapshot)
	if err != nil {
		return cannotRun(fmt.Errorf("sql: %w", err))
	}
	session, err := query.Open(ctx, path, allow)
	if errors.Is(err, load.ErrLocked) {
		return cannotRun(fmt.Errorf("sql: %w", ingest.LockedAdvice(path, a.now())))
	}
	if err != nil {
		return cannotRun(fmt.Errorf("sql: %w", err))
	}
	defer session.Close()
	res, err := session.Run(ctx, q)
	if err != nil {
		// DuckDB's own message says what is wrong (parser, binder, a file
		// refused), or what Run refused.
		return &ExitError{Code: exitPartial, Err: fmt.Errorf("sql: %w", err)}
	}
	out := bufio.NewWriter(a.Stdout)
	err = query.Write(ctx, out, query.Format(*format), res)
	if ferr := out.Flush(); err == nil && ferr != nil {
		return cannotRun(fmt.Errorf("sql: write result: %w", ferr))
	}
	if err != nil {
		return &ExitError{Code: exitPartial, Err: err}
	}
	return nil
}
