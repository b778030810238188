package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
)

func runExport(ctx context.Context, a *App, env *Env, args []string) error {
	tableNames := strings.Join(load.ExportTables(), ",")
	fs := a.flagSet("export", "export --to DIR [--tables "+tableNames+"] [--since YYYY-MM-DD]\n\n"+
		"Writes the warehouse as Parquet under DIR, each table in its own directory (one glob, or\n"+
		"one external table, per table): usage_daily Hive-partitioned by month (DIR/usage_daily/\n"+
		"month=YYYY-MM/), connection_events by UTC day (DIR/connection_events/day=YYYY-MM-DD/), the\n"+
		"others one file each (DIR/devices/data_0.parquet, ...). A partition written replaces DIR's.\n"+
		"--since limits the partitioned tables to partitions from the one holding that date on;\n"+
		"older partitions in DIR, and partitions whose rows are gone, are left as they are.\n"+
		"Reads THINGSYNC_SNAPSHOT when it is set and exists (a running sync holds THINGSYNC_DB),\n"+
		"else THINGSYNC_DB, read-only.\n\n"+
		"Memory stays bounded whatever the table's size: each partition is written by its own\n"+
		"COPY from a month of rows staged within DuckDB's "+load.ExportMemoryLimit+" limit; past it DuckDB\n"+
		"spills into a staging directory inside DIR, removed at the end.\n\n"+
		"Exit status: 0; 2 bad flags; 3 the warehouse could not be read or DIR written.")
	to := fs.String("to", "", "directory to write (created if missing); required")
	tablesFlag := fs.String("tables", "", "comma-separated tables to export (default: all of "+tableNames+")")
	sinceFlag := fs.String("since", "", "export partitions from the one holding this UTC date (YYYY-MM-DD) on (default: all)")
	if help, err := parseNoArgs(fs, args); help || err != nil {
		return err
	}
	var problems []string
	if strings.TrimSpace(*to) == "" {
		problems = append(problems, "--to DIR is required")
	}
	tables, err := load.ParseExportTables(*tablesFlag)
	if err != nil {
		problems = append(problems, "--tables: "+err.Error())
	}
	var since time.Time
	if *sinceFlag != "" {
		if since, err = extract.ParseDate(*sinceFlag); err != nil {
			problems = append(problems, "--since: "+err.Error())
		}
	}
	if len(problems) > 0 {
		return usageErr("export: %s", strings.Join(problems, "; "))
	}

	path, err := query.Path(env.Config.DB, env.Config.Snapshot)
	if err != nil {
		return cannotRun(fmt.Errorf("export: %w", err))
	}
	db, err := load.OpenReadOnly(ctx, path)
	if err != nil {
		return cannotRun(fmt.Errorf("export: %w", err))
	}
	defer db.Close()
	start := time.Now()
	res, err := load.Export(ctx, db, *to, load.ExportOptions{Tables: tables, Since: since})
	if err != nil {
		return cannotRun(fmt.Errorf("export from %s to %s: %w", path, *to, err))
	}
	out := bufio.NewWriter(a.Stdout)
	var rows int64
	var names []string
	for _, t := range res.Tables {
		rows += t.Rows
		names = append(names, t.Table)
		if t.Partitioned {
			fmt.Fprintf(out, "%s: %d rows in %s (partitions written: %d, replaced: %d)\n", t.Table, t.Rows, t.Path, t.Partitions, t.Replaced)
		} else {
			fmt.Fprintf(out, "%s: %d rows in %s\n", t.Table, t.Rows, t.Path)
		}
	}
	fmt.Fprintf(out, "export: %d rows of %s from %s to %s, %s\n",
		rows, strings.Join(names, ", "), path, res.Dir, time.Since(start).Round(time.Millisecond))
	if err := out.Flush(); err != nil {
		return cannotRun(fmt.Errorf("export: write summary: %w", err))
	}
	return nil
}
