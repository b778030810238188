package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/thingsync/thingsync/schema"
)

// ExportMemoryLimit is DuckDB's buffer pool for export: it bounds a
// staged group of partitions (which spills past it) and the Parquet writer.
const ExportMemoryLimit = "128MB"

// exportLayout is how one table is laid out under the export directory.
type exportLayout struct {
	table string
	// key is the Hive partition key (month, day); empty for a table written
	// as one file.
	key string
	// value is the SQL expression of a row's partition value. Both are UTC:
	// usage_date is a UTC date, and occurred_at is converted explicitly so
	// the session's TimeZone setting cannot move an event to another day.
	value string
	// group is the SQL expression of a row's group of partitions, staged
	// together (see copyPartitions).
	group string
	// sinceColumn is compared with --since; align rounds --since down to the
	// start of its partition, so every partition written holds all its rows
	// (a partition is replaced whole: one written from mid-month would drop
	// the month's earlier days).
	sinceColumn string
	sinceType   string
	align       func(time.Time) time.Time
}

func exportLayouts() []exportLayout {
	return []exportLayout{
		{table: schema.Devices},
		{table: schema.DeviceHistory},
		{table: schema.UsageDaily, key: "month", value: "strftime(usage_date, '%Y-%m')", group: "strftime(usage_date, '%Y-%m')",
			sinceColumn: "usage_date", sinceType: "DATE",
			align: func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) }},
		{table: schema.ConnectionEvents, key: "day", value: "strftime(timezone('UTC', occurred_at), '%Y-%m-%d')",
			group:       "strftime(timezone('UTC', occurred_at), '%Y-%m')",
			sinceColumn: "occurred_at", sinceType: "TIMESTAMPTZ", align: schema.Day},
		{table: schema.RatedUsage},
		{table: schema.AggregateUsage},
	}
}

// ExportTables lists the tables Export can write, in the order it writes
// them. The names are the schema package's.
func ExportTables() []string {
	var names []string
	for _, l := range exportLayouts() {
		names = append(names, l.table)
	}
	return names
}

// ParseExportTables reads a comma-separated list of tables to export
// (empty: nil, all of them). Names are checked against the schema, and
// only the schema's names come back: nothing typed reaches SQL.
func ParseExportTables(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	exportable := ExportTables()
	var tables []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		t, known := schema.Lookup(name)
		switch {
		case name == "":
			return nil, fmt.Errorf("empty table name in %q", list)
		case !known:
			return nil, fmt.Errorf("unknown table %q (exported: %s)", name, strings.Join(exportable, ", "))
		case !slices.Contains(exportable, t.Name):
			return nil, fmt.Errorf("%s is not exported (exported: %s)", t.Name, strings.Join(exportable, ", "))
		}
		if !slices.Contains(tables, t.Name) {
			tables = append(tables, t.Name)
		}
	}
	return tables, nil
}

// ExportOptions says what Export writes.
type ExportOptions struct {
	// Tables to write (ExportTables' names); empty: all of them.
	Tables []string
	// Since, if set, limits the partitioned tables to partitions from the
	// one holding Since on (rounded down to the month for usage_daily, the
	// UTC day for connection_events). Earlier partitions already in the
	// directory are left as they are. Tables written as one file are
	// always written whole.
	Since time.Time
}

// ExportedTable is what Export wrote for one table.
type ExportedTable struct {
	Table string
	// Path is the table's directory (of its one file, or of its
	// partitions).
	Path string
	// Partitioned: Path is a directory of Hive partitions.
	Partitioned bool
	Rows        int64
	// Partitions written; Replaced of them existed before and were swapped.
	Partitions, Replaced int
}

// ExportResult is what Export wrote.
type ExportResult struct {
	Dir    string
	Tables []ExportedTable
}

// ErrUnknownExportTable: a table Export does not write.
var ErrUnknownExportTable = errors.New("not an exported table")

// Export writes tables of the warehouse db (read-only is enough) under dir
// as Parquet, each table in its own directory, so one glob per table
// (dir/<table>/**/*.parquet) or one external table LOCATION reads it:
// usage_daily Hive-partitioned by month (usage_daily/month=YYYY-MM/),
// connection_events by UTC day (connection_events/day=YYYY-MM-DD/), the
// small tables as one file each (devices/data_0.parquet, …).
//
// Re-exporting replaces each partition whole, so a row revised since the
// last export appears once, with its new value. DuckDB's own OVERWRITE_OR_
// IGNORE would leave the earlier export's files beside the new ones, so
// every table is first written into a staging directory inside dir (same
// file system: renames are atomic); then each partition directory written
// is swapped in: the old one renamed aside, the new one renamed in, the old
// one deleted. A reader listing the directory finds the old partition, the
// new one, or (for the instant between the two renames) neither; never a
// mix of old and new files.
// A crash between the two renames of a swap (a window of two system calls)
// leaves that partition's old copy under dir/.export-*/old/; the staging
// directory is otherwise removed.
//
// Partitions the export does not write are left alone: those before the
// Since partition, and any partition whose rows have all gone from the
// warehouse (they do not disappear from dir). All tables are read in one
// transaction, so the files agree with one another; no exported file or
// partition in dir changes unless every table was read and written.
func Export(ctx context.Context, db *sql.DB, dir string, opts ExportOptions) (ExportResult, error) {
	layouts, err := chooseLayouts(opts.Tables)
	if err != nil {
		return ExportResult{}, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return ExportResult{}, fmt.Errorf("export directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ExportResult{}, fmt.Errorf("create export directory: %w", err)
	}
	staging, err := os.MkdirTemp(dir, ".export-")
	if err != nil {
		return ExportResult{}, fmt.Errorf("create staging directory: %w", err)
	}
	defer os.RemoveAll(staging)

	res := ExportResult{Dir: dir}
	if layouts, err = writeStaged(ctx, db, staging, layouts, len(opts.Tables) > 0, opts.Since, &res); err != nil {
		return ExportResult{}, err
	}
	for i, l := range layouts {
		et := &res.Tables[i]
		if l.key == "" {
			et.Path = filepath.Join(dir, l.table)
			if err := os.MkdirAll(et.Path, 0o755); err != nil {
				return res, fmt.Errorf("export %s: create table directory: %w", l.table, err)
			}
			// rename(2) replaces the file atomically.
			if err := os.Rename(filepath.Join(staging, l.table, wholeFile), filepath.Join(et.Path, wholeFile)); err != nil {
				return res, fmt.Errorf("export %s: publish: %w", l.table, err)
			}
			// An earlier version wrote the table as DIR/<table>.parquet:
			// its rows are in the directory now.
			if err := os.Remove(filepath.Join(dir, l.table+".parquet")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("export %s: remove the earlier layout's file: %w", l.table, err)
			}
			et.Partitions = 1
			continue
		}
		et.Path, et.Partitioned = filepath.Join(dir, l.table), true
		if err := swapPartitions(filepath.Join(staging, l.table), et.Path, filepath.Join(staging, "old", l.table), et); err != nil {
			return res, fmt.Errorf("export %s: %w", l.table, err)
		}
	}
	return res, nil
}

func chooseLayouts(tables []string) ([]exportLayout, error) {
	all := exportLayouts()
	if len(tables) == 0 {
		return all, nil
	}
	var out []exportLayout
	for _, l := range all {
		if slices.Contains(tables, l.table) {
			out = append(out, l)
		}
	}
	for _, t := range tables {
		if !slices.ContainsFunc(all, func(l exportLayout) bool { return l.table == t }) {
			return nil, fmt.Errorf("export %q: %w (exported: %s)", t, ErrUnknownExportTable, strings.Join(ExportTables(), ", "))
		}
	}
	return out, nil
}

// writeStaged writes every table under staging in one read transaction,
// and returns the layouts it wrote: a table a warehouse made by an earlier
// version does not have yet (the next sync adds it) is left out, unless
// named.
func writeStaged(ctx context.Context, db *sql.DB, staging string, layouts []exportLayout, named bool, since time.Time, res *ExportResult) ([]exportLayout, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: connect: %w", err)
	}
	defer conn.Close()
	// DuckDB's default buffer pool is 80% of RAM, and a partitioned COPY
	// keeps every partition's buffers open. Bounded, it spills into the
	// staging directory (removed with it). One thread: each thread keeps
	// its own blocks pinned, and two ran out of the limit staging a month
	// of events (figures in docs/design.md).
	for _, set := range []string{
		"SET memory_limit = " + schema.Literal(ExportMemoryLimit),
		"SET threads = 1",
		"SET temp_directory = " + schema.Literal(filepath.Join(staging, "spill")),
		"SET preserve_insertion_order = false",
	} {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			return nil, fmt.Errorf("export: configure DuckDB: %w", err)
		}
	}
	var written []exportLayout
	err = transact(ctx, conn, func(conn *sql.Conn) error {
		for _, l := range layouts {
			cols, err := columnSet(ctx, conn, l.table)
			if err != nil {
				return err
			}
			if len(cols) == 0 {
				if named {
					return fmt.Errorf("export %s: the warehouse has no such table yet (made by an earlier version: the next sync adds it)", l.table)
				}
				continue
			}
			written = append(written, l)
			var n int64
			if l.key == "" {
				n, err = copyWhole(ctx, conn, l, staging)
			} else {
				n, err = copyPartitions(ctx, conn, l, staging, since)
			}
			if err != nil {
				return fmt.Errorf("export %s: %w", l.table, err)
			}
			res.Tables = append(res.Tables, ExportedTable{Table: l.table, Rows: n})
		}
		return nil
	})
	return written, err
}

// wholeFile is the file a table written whole is in, in its directory.
const wholeFile = "data_0.parquet"

// copyWhole writes a table as one Parquet file. The table name is the
// schema package's, the path is quoted as a literal: nothing from the
// command line is spliced into SQL unquoted.
func copyWhole(ctx context.Context, conn *sql.Conn, l exportLayout, staging string) (int64, error) {
	t := schema.MustLookup(l.table)
	if err := os.MkdirAll(filepath.Join(staging, t.Name), 0o755); err != nil {
		return 0, fmt.Errorf("create table directory: %w", err)
	}
	r, err := conn.ExecContext(ctx, fmt.Sprintf("COPY (SELECT * FROM %s) TO %s (FORMAT parquet)",
		schema.Ident(t.Name), schema.Literal(filepath.Join(staging, t.Name, wholeFile))))
	if err != nil {
		return 0, fmt.Errorf("write parquet: %w", err)
	}
	return r.RowsAffected()
}

// exportStage is the temporary table a group of partitions is staged in.
const exportStage = "thingsync_export_stage"

// copyPartitions writes a table Hive-partitioned, one COPY per partition.
// DuckDB's own PARTITION_BY keeps a writer open per partition, which runs
// out of a bounded memory limit over a year of events; sorting the table by
// partition first runs out too, with wide rows (docs/design.md). So the
// rows are staged a group of partitions at a time (a month) in a temporary
// table, which DuckDB spills past its limit, and each partition of the
// group is written from it on its own: one Parquet writer at a time, a
// scan of the table per group. The partition column is left out of the
// files, as PARTITION_BY does: it is in the path.
func copyPartitions(ctx context.Context, conn *sql.Conn, l exportLayout, staging string, since time.Time) (int64, error) {
	t := schema.MustLookup(l.table)
	// A column evolved from an attribute key could be called month or day;
	// it keeps its values under another name rather than clash with the
	// partition key.
	cols, err := columnSet(ctx, conn, t.Name)
	if err != nil {
		return 0, err
	}
	star := "*"
	if cols[l.key] {
		renamed := l.key
		for n := 2; cols[renamed]; n++ {
			renamed = fmt.Sprintf("%s_%d", l.key, n)
		}
		star = fmt.Sprintf("* RENAME (%s AS %s)", schema.Ident(l.key), schema.Ident(renamed))
	}
	where := "true"
	if !since.IsZero() {
		bound := l.align(since.UTC())
		lit := bound.Format(time.DateOnly)
		if l.sinceType != "DATE" {
			lit = bound.Format("2006-01-02 15:04:05") + "+00"
		}
		where = fmt.Sprintf("%s >= %s %s", schema.Ident(l.sinceColumn), l.sinceType, schema.Literal(lit))
	}
	key := schema.Ident(l.key)
	groups, err := distinctValues(ctx, conn, fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s ORDER BY 1", l.group, schema.Ident(t.Name), where))
	if err != nil {
		return 0, fmt.Errorf("list partitions: %w", err)
	}
	// The transaction ends without it anyway; the next table replaces it.
	defer conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+exportStage)
	var total int64
	for _, g := range groups {
		// g and the partition values are the table's own strftime output
		// (YYYY-MM, YYYY-MM-DD), quoted all the same.
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS SELECT %s, %s AS %s FROM %s WHERE %s AND %s = %s",
			exportStage, star, l.value, key, schema.Ident(t.Name), where, l.group, schema.Literal(g))); err != nil {
			return 0, fmt.Errorf("stage %s: %w", g, err)
		}
		values, err := distinctValues(ctx, conn, fmt.Sprintf("SELECT DISTINCT %s FROM %s ORDER BY 1", key, exportStage))
		if err != nil {
			return 0, fmt.Errorf("list partitions of %s: %w", g, err)
		}
		for _, v := range values {
			dir := filepath.Join(staging, t.Name, l.key+"="+v)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return 0, fmt.Errorf("create partition directory: %w", err)
			}
			r, err := conn.ExecContext(ctx, fmt.Sprintf("COPY (SELECT * EXCLUDE (%s) FROM %s WHERE %s = %s) TO %s (FORMAT parquet)",
				key, exportStage, key, schema.Literal(v), schema.Literal(filepath.Join(dir, "data_0.parquet"))))
			if err != nil {
				return 0, fmt.Errorf("write partition %s=%s: %w", l.key, v, err)
			}
			n, err := r.RowsAffected()
			if err != nil {
				return 0, fmt.Errorf("rows written: %w", err)
			}
			total += n
		}
	}
	return total, nil
}

func distinctValues(ctx context.Context, conn *sql.Conn, q string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// columnSet is the set of a table's columns, evolved ones included.
func columnSet(ctx context.Context, conn *sql.Conn, table string) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, `SELECT column_name FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?`, table)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("list columns: %w", err)
		}
		cols[c] = true
	}
	return cols, rows.Err()
}

// swapPartitions moves each partition directory written under staged into
// target, replacing the one there: old aside, new in, old deleted.
func swapPartitions(staged, target, aside string, et *ExportedTable) error {
	entries, err := os.ReadDir(staged)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no rows: no partition written
	}
	if err != nil {
		return fmt.Errorf("list written partitions: %w", err)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create table directory: %w", err)
	}
	if err := os.MkdirAll(aside, 0o755); err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		dst, old := filepath.Join(target, name), filepath.Join(aside, name)
		replaced := true
		if err := os.Rename(dst, old); errors.Is(err, fs.ErrNotExist) {
			replaced = false
		} else if err != nil {
			return fmt.Errorf("move old partition %s aside: %w", name, err)
		}
		if err := os.Rename(filepath.Join(staged, name), dst); err != nil {
			if replaced {
				// Put the old partition back rather than leave a hole.
				_ = os.Rename(old, dst)
			}
			return fmt.Errorf("move partition %s in: %w", name, err)
		}
		if replaced {
			if err := os.RemoveAll(old); err != nil {
				return fmt.Errorf("delete old partition %s: %w", name, err)
			}
			et.Replaced++
		}
		et.Partitions++
	}
	return nil
}
