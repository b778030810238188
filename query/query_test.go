package query

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/load"
)

// warehouse creates a migrated warehouse file and runs stmts in it.
func warehouse(t *testing.T, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w, err := load.Open(context.Background(), path, zerolog.Nop())
	if err == nil {
		for _, s := range stmts {
			if _, err = w.DB().Exec(s); err != nil {
				break
			}
		}
		err = errors.Join(err, w.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPath(t *testing.T) {
	db := warehouse(t)
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.duckdb")
	if err := os.WriteFile(snap, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.duckdb")
	tests := []struct {
		name, db, snapshot, want, err string
	}{
		{"the snapshot when it exists", db, snap, snap, ""},
		{"the snapshot even when the warehouse is gone", missing, snap, snap, ""},
		{"the warehouse before the first snapshot", db, filepath.Join(dir, "later.duckdb"), db, ""},
		{"the warehouse without a snapshot", db, "", db, ""},
		{"no warehouse", missing, "", "", missing + " does not exist (set THINGSYNC_DB, or run thingsync sync first)"},
		{"a directory", dir, "", "", dir + " is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Path(tt.db, tt.snapshot)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("Path(%s, %s) = %q, %v; want an error with %q", tt.db, tt.snapshot, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Path(%s, %s) = %q, %v; want %q", tt.db, tt.snapshot, got, err, tt.want)
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("Path created %s", missing)
	}
}

// Run refuses every text that is not exactly one query, by the statement
// DuckDB's parser finds, before it runs.
func TestRunRefuses(t *testing.T) {
	ctx := context.Background()
	db := warehouse(t, `INSERT INTO devices (device_kind, device_id) VALUES ('iccid', '1')`)
	// Files in an allowed directory pass DuckDB's own check: what stops a
	// COPY there is Run.
	lake, exports := t.TempDir(), t.TempDir()
	s, err := Open(ctx, db, []string{lake, exports})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct{ q, what string }{
		{"DELETE FROM devices", "DELETE"},
		{"INSERT INTO devices (device_kind, device_id) VALUES ('iccid', '2')", "INSERT"},
		{"UPDATE devices SET state = 'x'", "UPDATE"},
		{"CREATE TABLE t (a INTEGER)", "CREATE"},
		{"DROP TABLE devices", "DROP"},
		{"COPY devices TO '" + filepath.Join(lake, "x.csv") + "'", "COPY"},
		// DuckDB's binder would create EXPORT's directory before the
		// statement's type is known: the first word refuses it unprepared.
		{"EXPORT DATABASE '" + filepath.Join(exports, "x") + "'", "EXPORT"},
		{"-- why not\n/* really */ (EXPORT DATABASE '" + filepath.Join(exports, "y") + "')", "EXPORT"},
		{"ATTACH '" + filepath.Join(lake, "x.duckdb") + "'", "ATTACH"},
		{"INSTALL httpfs", "INSTALL"},
		{"SET threads = 1", "SET"},
		{"PRAGMA enable_profiling", "PRAGMA"},
		{"CHECKPOINT", "CHECKPOINT"},
		{"BEGIN", "BEGIN"},
		{"1 + 1", "a text that does not begin as a query"},
		// Begins as a query; DuckDB's parser types it.
		{"WITH d AS (SELECT 1) DELETE FROM devices", "DELETE"},
		{"SELECT 1; SELECT 2", "more than one statement"},
		{"SELECT 1; DELETE FROM devices", "more than one statement"},
	} {
		res, err := s.Run(ctx, tt.q)
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.What != tt.what {
			t.Errorf("Run(%q) = %v, %v; want refused %s", tt.q, res, err, tt.what)
		}
	}
	for _, dir := range []string{lake, exports} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("written into %s: %v", dir, entries)
		}
	}
	// Every device is still there.
	res, err := s.Run(ctx, "SELECT count(*) AS n FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteCSV(ctx, &out, res); err != nil || out.String() != "n\n1\n" {
		t.Errorf("after the refusals: %q, %v; want one device", out.String(), err)
	}
}

// A query's result is kept and read back in pages of PageRows, as often as
// asked, in the query's order; EXPLAIN is read once.
func TestRunPages(t *testing.T) {
	ctx := context.Background()
	t.Setenv("TMPDIR", t.TempDir())
	s, err := Open(ctx, warehouse(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(ctx, "SELECT i AS n, i AS n FROM range(40000) t(i) ORDER BY i DESC")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Repeatable() || res.Rows != 40000 {
		t.Fatalf("Repeatable %v, Rows %d; want a kept result of 40000 rows", res.Repeatable(), res.Rows)
	}
	if diff := cmp.Diff([]string{"n", "n"}, res.Names()); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	for range 2 {
		pages, next := 0, int64(39999)
		err := res.Each(ctx, func(r *sql.Rows) error {
			pages++
			for r.Next() {
				var a, b int64
				if err := r.Scan(&a, &b); err != nil {
					return err
				}
				if a != next {
					t.Fatalf("row %d, want %d", a, next)
				}
				next--
			}
			return r.Err()
		})
		if err != nil || pages != 3 || next != -1 {
			t.Errorf("Each: %d pages, next %d, %v; want 3 pages of all rows", pages, next, err)
		}
	}

	explain, err := s.Run(ctx, "EXPLAIN SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	if explain.Repeatable() {
		t.Errorf("EXPLAIN's result is kept")
	}
	count := func() error { return explain.Each(ctx, func(*sql.Rows) error { return nil }) }
	if err := count(); err != nil {
		t.Errorf("EXPLAIN: %v", err)
	}
	if err := count(); err == nil {
		t.Errorf("EXPLAIN's result was read twice")
	}

	spill := s.spill
	if filepath.Dir(spill) != os.Getenv("TMPDIR") {
		t.Errorf("spill directory %s not under TMPDIR %s", spill, os.Getenv("TMPDIR"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spill); !os.IsNotExist(err) {
		t.Errorf("spill directory %s left behind (%v)", spill, err)
	}
}

// A session reads the warehouse and the allowed directories, nothing else,
// and cannot change that.
func TestSessionReadsOnly(t *testing.T) {
	ctx := context.Background()
	allowed, other := t.TempDir(), t.TempDir()
	for _, d := range []string{allowed, other} {
		if err := os.WriteFile(filepath.Join(d, "a.csv"), []byte("x\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, warehouse(t), []string{allowed})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	read := func(dir string) error {
		res, err := s.Run(ctx, "SELECT * FROM read_csv('"+filepath.Join(dir, "a.csv")+"')")
		if err == nil {
			err = WriteCSV(ctx, &bytes.Buffer{}, res)
		}
		return err
	}
	if err := read(allowed); err != nil {
		t.Errorf("read an allowed file: %v", err)
	}
	if err := read(other); err == nil || !strings.Contains(err.Error(), "file system operations are disabled") {
		t.Errorf("read a file outside: %v; want it refused", err)
	}
	if _, err := s.conn.ExecContext(ctx, "SET enable_external_access = true"); err == nil {
		t.Errorf("the session's configuration is not locked")
	}
	if _, err := s.conn.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err == nil {
		t.Errorf("the session can write the warehouse")
	}
}
