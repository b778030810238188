package load

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/schema"
)

// exportFixture: rows in every exported table; usage over two months,
// events over two UTC days (one given at -05:00 that is the next day in
// UTC), an evolved column and the extra map.
var exportFixture = []string{
	`ALTER TABLE usage_daily ADD COLUMN roaming_sms VARCHAR`,
	`INSERT INTO devices (device_kind, device_id, account_name, iccid, state, group_names, last_seen_at) VALUES
		('iccid', 'A', '0000123456-00001', 'A', 'active', ['g1', 'g2'], '2026-11-22 02:00:00+00'),
		('imei', 'B', '0000123456-00001', NULL, 'deactive', NULL, '2026-11-20 02:00:00+00')`,
	`INSERT INTO device_history (device_kind, device_id, valid_from, valid_to, state, service_plan, group_names) VALUES
		('iccid', 'A', '2026-11-20 02:00:00+00', '2026-11-22 02:00:00+00', 'active', 'P1', ['g1']),
		('iccid', 'A', '2026-11-22 02:00:00+00', NULL, 'active', 'P2', ['g1', 'g2'])`,
	`INSERT INTO usage_daily (device_kind, device_id, usage_date, bytes_used, sms_used, source, loaded_at, roaming_sms, extra) VALUES
		('iccid', 'A', DATE '2026-10-30', 100, 1, 'Raw Usage', '2026-11-22 12:00:00+00', '2', MAP {'Odd': 'x'}),
		('iccid', 'A', DATE '2026-11-01', 200, 2, 'Raw Usage', '2026-11-22 12:00:00+00', NULL, NULL),
		('imei', 'B', DATE '2026-11-20', 300, NULL, 'Raw Usage', '2026-11-22 12:00:00+00', NULL, NULL)`,
	`INSERT INTO connection_events (device_kind, device_id, occurred_at, event, account_session_id, bytes_used) VALUES
		('iccid', 'A', '2026-11-01 08:00:00+00', 'Start', 's1', 0),
		('iccid', 'A', '2026-11-01 23:30:00-05:00', 'Stop', 's1', 42)`,
	`INSERT INTO rated_usage (device_kind, device_id, billing_start_date, data_usage, unit, data_usage_bytes) VALUES
		('iccid', 'A', '2026-11-01 00:00:00+00', 1.5, 'MB', 1500000)`,
	`INSERT INTO aggregate_usage (device_kind, device_id, start_time, end_time, data_usage, request_id) VALUES
		('iccid', 'A', '2026-10-01 00:00:00+00', '2026-11-01 00:00:00+00', 999, 'r1')`,
}

// exportDB opens the warehouse read-only, as the export command does, on
// one connection whose TimeZone is not UTC: partitions must not depend on it.
func exportDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`SET TimeZone = 'America/New_York'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func runExport(t *testing.T, path, dir string, opts ExportOptions) ExportResult {
	t.Helper()
	db := exportDB(t, path)
	res, err := Export(ctx, db, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return res
}

// files lists the files under dir, relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// readBack is the source of each exported table as read back from the
// Parquet files with one glob per table, as README shows (Hive partitions
// on), without the partition column.
func readBack(dir, table string) string {
	src := `read_parquet(` + schema.Literal(filepath.Join(dir, table, "**", "*.parquet")) + `, hive_partitioning = true)`
	switch table {
	case schema.UsageDaily:
		return `SELECT * EXCLUDE (month) FROM ` + src
	case schema.ConnectionEvents:
		return `SELECT * EXCLUDE (day) FROM ` + src
	}
	return `SELECT * FROM ` + src
}

// assertExported compares every exported table with its files, row for
// row and value for value.
func assertExported(t *testing.T, path, dir string) {
	t.Helper()
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range ExportTables() {
		tb := schema.MustLookup(table)
		order := " ORDER BY " + strings.Join(tb.Key(), ", ")
		want := rowsOf(t, db, `SELECT * FROM `+schema.Ident(table)+order)
		got := rowsOf(t, db, `SELECT * FROM (`+readBack(dir, table)+`)`+order)
		if len(want) == 0 {
			t.Fatalf("%s: fixture has no rows", table)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: exported files differ from the table (-table +files):\n%s", table, diff)
		}
	}
	// The hive key read back is the partition, in UTC.
	if got := rowsOf(t, db, `SELECT strftime(day, '%Y-%m-%d') || ' ' || event FROM read_parquet(`+
		schema.Literal(filepath.Join(dir, "connection_events", "*", "*.parquet"))+`, hive_partitioning = true) ORDER BY occurred_at`); !slices.Equal(got, []string{"2026-11-01 Start", "2026-11-02 Stop"}) {
		t.Errorf("event days %v", got)
	}
}

func TestExport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	exec(t, w, exportFixture...)
	w.Close()
	dir := filepath.Join(t.TempDir(), "lake")
	// An earlier version's layout: the whole table in one file beside
	// the directories; the export replaces it with the table's directory.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "devices.parquet"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}

	res := runExport(t, path, dir, ExportOptions{})
	wantFiles := []string{
		"aggregate_usage/data_0.parquet",
		"connection_events/day=2026-11-01/data_0.parquet",
		"connection_events/day=2026-11-02/data_0.parquet",
		"device_history/data_0.parquet",
		"devices/data_0.parquet",
		"rated_usage/data_0.parquet",
		"usage_daily/month=2026-10/data_0.parquet",
		"usage_daily/month=2026-11/data_0.parquet",
	}
	if diff := cmp.Diff(wantFiles, files(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	var summary []string
	for _, et := range res.Tables {
		summary = append(summary, fmt.Sprintf("%s %d rows %d/%d", et.Table, et.Rows, et.Partitions, et.Replaced))
	}
	if diff := cmp.Diff([]string{"devices 2 rows 1/0", "device_history 2 rows 1/0", "usage_daily 3 rows 2/0", "connection_events 2 rows 2/0",
		"rated_usage 1 rows 1/0", "aggregate_usage 1 rows 1/0"}, summary); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	assertExported(t, path, dir)

	// A revised row, a new one and a new device: the next export replaces
	// the partitions whole, with no duplicate and the new values.
	w = open(t, path)
	exec(t, w,
		`UPDATE usage_daily SET bytes_used = 201 WHERE usage_date = DATE '2026-11-01'`,
		`INSERT INTO usage_daily (device_kind, device_id, usage_date, bytes_used) VALUES ('imei', 'B', DATE '2026-11-21', 5)`,
		`UPDATE connection_events SET bytes_used = 43 WHERE event = 'Stop'`,
		`INSERT INTO devices (device_kind, device_id, state) VALUES ('mdn', 'C', 'active')`,
	)
	w.Close()
	res = runExport(t, path, dir, ExportOptions{})
	if diff := cmp.Diff(wantFiles, files(t, dir)); diff != "" {
		t.Errorf("files after re-export (-want +got):\n%s", diff)
	}
	if got := res.Tables[2]; got.Partitions != 2 || got.Replaced != 2 {
		t.Errorf("usage_daily re-export %+v, want 2 partitions replaced", got)
	}
	assertExported(t, path, dir)
}

// With a since date, partitions before it are left as they are; the since
// partition is written whole even when since falls inside it; a partition
// whose rows have all gone is left as it was (documented on Export).
func TestExportSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	exec(t, w, exportFixture...)
	w.Close()
	dir := filepath.Join(t.TempDir(), "lake")
	runExport(t, path, dir, ExportOptions{})

	w = open(t, path)
	exec(t, w,
		`UPDATE usage_daily SET bytes_used = bytes_used + 1`,
		`UPDATE connection_events SET bytes_used = bytes_used + 1`,
		`DELETE FROM connection_events WHERE event = 'Stop'`,
	)
	w.Close()
	// Since mid-month: usage_daily from 2026-11-01 on (the whole month).
	res := runExport(t, path, dir, ExportOptions{Since: time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), Tables: []string{schema.UsageDaily}})
	if len(res.Tables) != 1 || res.Tables[0].Rows != 2 || res.Tables[0].Partitions != 1 {
		t.Errorf("usage_daily since 2026-11-15: %+v, want 2 rows in 1 partition", res.Tables)
	}
	// Since late on 2026-11-01 UTC, given at -05:00: connection_events from
	// that UTC day on.
	res = runExport(t, path, dir, ExportOptions{
		Since:  time.Date(2026, 11, 1, 18, 0, 0, 0, time.FixedZone("", -5*3600)), // 23:00 UTC
		Tables: []string{schema.ConnectionEvents},
	})
	if len(res.Tables) != 1 || res.Tables[0].Rows != 1 || res.Tables[0].Partitions != 1 {
		t.Errorf("connection_events since 2026-11-01: %+v, want 1 row in 1 partition", res.Tables)
	}

	db := exportDB(t, path)
	got := rowsOf(t, db, `SELECT month || ' ' || usage_date || ' ' || bytes_used FROM (`+
		`SELECT * FROM read_parquet(`+schema.Literal(filepath.Join(dir, "usage_daily", "*", "*.parquet"))+`, hive_partitioning = true)) ORDER BY usage_date`)
	want := []string{
		"2026-10 2026-10-30 100", // before since: the first export's
		"2026-11 2026-11-01 201",
		"2026-11 2026-11-20 301",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage_daily files (-want +got):\n%s", diff)
	}
	got = rowsOf(t, db, `SELECT strftime(day, '%Y-%m-%d') || ' ' || event || ' ' || bytes_used FROM read_parquet(`+
		schema.Literal(filepath.Join(dir, "connection_events", "*", "*.parquet"))+`, hive_partitioning = true) ORDER BY occurred_at`)
	want = []string{
		"2026-11-01 Start 1",
		"2026-11-02 Stop 42", // its rows are gone: the partition is left alone
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("connection_events files (-want +got):\n%s", diff)
	}
	if staged, _ := filepath.Glob(filepath.Join(dir, ".export-*")); len(staged) > 0 {
		t.Errorf("staging left behind: %v", staged)
	}
}

func TestExportGuards(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	// An attribute key that became a column named like the partition key
	// keeps its values under another name.
	// A warehouse made before device_history existed, not yet opened
	// by a newer sync.
	exec(t, w, `DROP TABLE device_history`, `ALTER TABLE connection_events ADD COLUMN day VARCHAR`,
		`INSERT INTO connection_events (device_kind, device_id, occurred_at, event, account_session_id, day) VALUES
			('iccid', 'A', '2026-11-01 08:00:00+00', 'Start', 's1', 'Tuesday')`)
	w.Close()
	db := exportDB(t, path)
	for _, tables := range [][]string{{"sync_runs"}, {`usage_daily"; DROP TABLE devices; --`}, {"usage_daily", "nope"}} {
		if _, err := Export(ctx, db, t.TempDir(), ExportOptions{Tables: tables}); !errors.Is(err, ErrUnknownExportTable) {
			t.Errorf("export %q: %v, want ErrUnknownExportTable", tables, err)
		}
	}
	// It exports what it has; a table it lacks is an error only when named.
	if res, err := Export(ctx, db, t.TempDir(), ExportOptions{}); err != nil || len(res.Tables) != len(ExportTables())-1 {
		t.Errorf("export of a warehouse without device_history: %v, %+v; want every other table", err, res.Tables)
	}
	if _, err := Export(ctx, db, t.TempDir(), ExportOptions{Tables: []string{schema.DeviceHistory}}); err == nil || !strings.Contains(err.Error(), "the next sync adds it") {
		t.Errorf("export --tables device_history of a warehouse without it: %v", err)
	}
	// A directory with a quote in its name is a literal, not SQL.
	dir := filepath.Join(t.TempDir(), `it's "here"`)
	if _, err := Export(ctx, db, dir, ExportOptions{Tables: []string{schema.ConnectionEvents}}); err != nil {
		t.Fatal(err)
	}
	got := rowsOf(t, db, `SELECT day_2 || ' ' || strftime(day, '%Y-%m-%d') FROM read_parquet(`+
		schema.Literal(filepath.Join(dir, "connection_events", "*", "*.parquet"))+`, hive_partitioning = true)`)
	if !slices.Equal(got, []string{"Tuesday 2026-11-01"}) {
		t.Errorf("renamed column and partition: %v", got)
	}
}
