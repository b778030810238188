package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// runCLI drives the program as main does, with a fixed clock and stdin.
func runCLI(t *testing.T, now time.Time, stdin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Version: "test",
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now:       func() time.Time { return now }}
	code = ExitCode(a.Run(context.Background(), args), &errb)
	return code, out.String(), errb.String()
}

// newWarehouse creates a migrated warehouse file in a temporary directory
// and runs the statements in it.
func newWarehouse(t *testing.T, name string, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	ctx := context.Background()
	w, err := load.Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := w.DB().ExecContext(ctx, s); err != nil {
			w.Close()
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

var sqlFixture = []string{
	`INSERT INTO devices (device_kind, device_id, account_name, iccid, state, first_seen_at) VALUES
		('iccid', '89148000000000000001', '0000123456-00001', '89148000000000000001', 'active', '2026-01-02 03:04:05+00'),
		('imei', '350000000000002', '0000123456-00001', NULL, 'deactive', '2026-01-03 00:00:00+00')`,
	`INSERT INTO usage_daily (device_kind, device_id, usage_date, bytes_used, sms_used, source, loaded_at) VALUES
		('iccid', '89148000000000000001', DATE '2026-01-02', 123456789012, 4, 'Raw Usage', '2026-01-05 06:07:08.5-05:00'),
		('imei', '350000000000002', DATE '2026-01-03', 7, NULL, 'Raw, "quoted" Usage', '2026-01-05 00:00:00+00')`,
}

func TestSQLFormats(t *testing.T) {
	db := newWarehouse(t, "w.duckdb", sqlFixture...)
	env := map[string]string{"THINGSYNC_DB": db}
	const q = `SELECT device_kind, device_id, usage_date, bytes_used, sms_used, source, loaded_at
		FROM usage_daily ORDER BY device_kind`

	t.Run("table", func(t *testing.T) {
		code, out, errOut := run(t, env, "sql", q)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		want := strings.Join([]string{
			"device_kind  device_id             usage_date    bytes_used  sms_used  source               loaded_at",
			"-----------  --------------------  ----------  ------------  --------  -------------------  ----------------------",
			"iccid        89148000000000000001  2026-01-02  123456789012         4  Raw Usage            2026-01-05T11:07:08.5Z",
			`imei         350000000000002       2026-01-03             7      NULL  Raw, "quoted" Usage  2026-01-05T00:00:00Z`,
			"(2 rows)",
			"",
		}, "\n")
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("table output mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("csv", func(t *testing.T) {
		code, out, errOut := run(t, env, "sql", "--format", "csv", q)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		got, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("output is not CSV: %v\n%s", err, out)
		}
		want := [][]string{
			{"device_kind", "device_id", "usage_date", "bytes_used", "sms_used", "source", "loaded_at"},
			{"iccid", "89148000000000000001", "2026-01-02", "123456789012", "4", "Raw Usage", "2026-01-05T11:07:08.5Z"},
			{"imei", "350000000000002", "2026-01-03", "7", "", `Raw, "quoted" Usage`, "2026-01-05T00:00:00Z"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("csv mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, errOut := run(t, env, "sql", "--format=json", q)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		dec.UseNumber()
		var got []map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("output is not a JSON array of objects: %v\n%s", err, out)
		}
		want := []map[string]any{
			{"device_kind": "iccid", "device_id": "89148000000000000001", "usage_date": "2026-01-02",
				"bytes_used": json.Number("123456789012"), "sms_used": json.Number("4"), "source": "Raw Usage",
				"loaded_at": "2026-01-05T11:07:08.5Z"},
			{"device_kind": "imei", "device_id": "350000000000002", "usage_date": "2026-01-03",
				"bytes_used": json.Number("7"), "sms_used": nil, "source": `Raw, "quoted" Usage`,
				"loaded_at": "2026-01-05T00:00:00Z"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("json mismatch (-want +got):\n%s", diff)
		}
		// Keys come in column order, as the query asked for them.
		if i, j := strings.Index(out, `"usage_date"`), strings.Index(out, `"bytes_used"`); i < 0 || j < i {
			t.Errorf("keys not in column order:\n%s", out)
		}
	})

	t.Run("json of no rows is an empty array", func(t *testing.T) {
		code, out, errOut := run(t, env, "sql", "--format", "json", "SELECT * FROM devices WHERE false")
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and []", code, out, errOut)
		}
	})

	t.Run("values of other types", func(t *testing.T) {
		code, out, errOut := run(t, env, "sql", "--format", "json", `SELECT 12345678901234567890::HUGEINT AS h,
			1.50::DECIMAL(10,2) AS d, INTERVAL 1 DAY + INTERVAL 90 MINUTE AS i, [1, 2] AS l,
			MAP {'a': 1} AS m, TIMESTAMPTZ '2026-03-04 00:00:00+00' AS midnight, 'x'::BLOB AS b,
			'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u`)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		want := `[
  {"h": 12345678901234567890, "d": 1.5, "i": "1 day 01:30:00", "l": [1,2], "m": {"a":1}, "midnight": "2026-03-04T00:00:00Z", "b": "x", "u": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}
]
`
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("json mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("query from stdin", func(t *testing.T) {
		code, out, errOut := runCLI(t, time.Now(), "SELECT count(*) AS n FROM devices\n", env, "sql", "--format", "csv", "-")
		if code != 0 || out != "n\n2\n" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and n,2", code, out, errOut)
		}
	})
}

func TestSQLErrors(t *testing.T) {
	db := newWarehouse(t, "w.duckdb", sqlFixture...)
	env := map[string]string{"THINGSYNC_DB": db}
	missing := filepath.Join(t.TempDir(), "nowhere.duckdb")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		contains []string
	}{
		{"bad query", env, []string{"sql", "SELEC * FROM devices"}, 1, []string{"Parser Error", `syntax error at or near "SELEC"`}},
		{"unknown table", env, []string{"sql", "SELECT * FROM nothing_here"}, 1, []string{"Catalog Error", "nothing_here"}},
		{"a write is refused", env, []string{"sql", "DELETE FROM devices"}, 1, []string{"refused DELETE", "sql runs exactly one query"}},
		{"a DDL write is refused", env, []string{"sql", "--format", "csv", "CREATE TABLE t (a INTEGER)"}, 1, []string{"refused CREATE"}},
		{"unknown format", env, []string{"sql", "--format", "xml", "SELECT 1"}, 2, []string{`unknown --format "xml"`, "table, csv or json"}},
		{"missing query", env, []string{"sql", "--format", "csv"}, 2, []string{"missing query"}},
		{"extra arguments", env, []string{"sql", "SELECT", "1"}, 2, []string{"expected one query, got 2 arguments"}},
		{"empty query", env, []string{"sql", "  "}, 2, []string{"the query is empty"}},
		{"unknown flag", env, []string{"sql", "--fromat", "csv", "SELECT 1"}, 2, []string{"flag provided but not defined: --fromat"}},
		{"missing database", map[string]string{"THINGSYNC_DB": missing}, []string{"sql", "SELECT 1"}, 3, []string{missing, "does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, s := range tt.contains {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("sql created the missing database %s (stat: %v)", missing, err)
	}
	// The refused DELETE left every row in place.
	if code, out, errOut := run(t, env, "sql", "--format", "csv", "SELECT count(*) AS n FROM devices"); code != 0 || out != "n\n2\n" {
		t.Errorf("after the refused DELETE: exit %d, stdout %q, stderr %q; want 2 devices", code, out, errOut)
	}
}

func TestSQLReadsTheSnapshot(t *testing.T) {
	db := newWarehouse(t, "w.duckdb", `INSERT INTO devices (device_kind, device_id) VALUES ('iccid', 'in-the-warehouse')`)
	snap := newWarehouse(t, "snap.duckdb", `INSERT INTO devices (device_kind, device_id) VALUES ('iccid', 'in-the-snapshot')`)
	const q = "SELECT device_id FROM devices"
	tests := []struct {
		name, snapshot, want string
	}{
		{"snapshot when it exists", snap, "device_id\nin-the-snapshot\n"},
		{"warehouse when the snapshot is not there yet", filepath.Join(t.TempDir(), "later.duckdb"), "device_id\nin-the-warehouse\n"},
		{"warehouse without a snapshot", "", "device_id\nin-the-warehouse\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"THINGSYNC_DB": db, "THINGSYNC_SNAPSHOT": tt.snapshot}
			code, out, errOut := run(t, env, "sql", "--format", "csv", q)
			if code != 0 || out != tt.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

func TestIntervalText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"zero", "INTERVAL 0 SECOND", "00:00:00"},
		{"hours and fraction", "INTERVAL 90 MINUTE + INTERVAL 1500 MILLISECOND", "01:30:01.5"},
		{"years months days", "INTERVAL 14 MONTH + INTERVAL 1 DAY", "1 year 2 months 1 day"},
		{"negative time", "-INTERVAL 61 SECOND", "-00:01:01"},
	}
	db := newWarehouse(t, "w.duckdb")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, map[string]string{"THINGSYNC_DB": db}, "sql", "--format", "csv", "SELECT "+tt.in+" AS i")
			if want := "i\n" + tt.want + "\n"; code != 0 || out != want {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", tt.in, code, out, errOut, want)
			}
		})
	}
}

// fileState is every file under the roots with its size, mode time and a
// hash of its content.
func fileState(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	state := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				state[p] = "dir"
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			state[p] = fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return state
}

// Nothing sql runs writes a file or reads one outside the warehouse and the
// --allow directories: each attack exits 1 with a message, before or
// without touching a file; the warehouse stays byte for byte the same.
func TestSQLWritesNoFile(t *testing.T) {
	root := t.TempDir()
	// sql's spill directory goes under TMPDIR: it must be gone afterwards.
	t.Setenv("TMPDIR", filepath.Join(root, "tmp"))
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	db := newWarehouse(t, "w.duckdb", sqlFixture...)
	env := map[string]string{"THINGSYNC_DB": db}
	lake := filepath.Join(root, "lake")
	if code, _, errOut := run(t, env, "export", "--to", lake); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	outside := filepath.Join(root, "outside.csv")
	if err := os.WriteFile(outside, []byte("secret,value\nx,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := []string{root, filepath.Dir(db)}
	before := fileState(t, roots...)

	q := schema.Literal
	attacks := []struct {
		name  string
		allow bool
		query string
		want  string // or DuckDB's refusal of the file
	}{
		{"COPY over the warehouse", false, "COPY (SELECT 'x') TO " + q(db) + " (FORMAT csv)", "refused COPY"},
		{"COPY elsewhere", false, "COPY (SELECT 'x') TO " + q(filepath.Join(root, "x.csv")) + " (FORMAT csv)", "refused COPY"},
		{"COPY into an allowed directory", true, "COPY (SELECT 'x') TO " + q(filepath.Join(lake, "x.csv")) + " (FORMAT csv)", "refused COPY"},
		{"EXPORT DATABASE", false, "EXPORT DATABASE " + q(filepath.Join(root, "dump")), "refused EXPORT"},
		{"EXPORT DATABASE into an allowed directory", true, "/* a comment */ EXPORT DATABASE " + q(filepath.Join(lake, "dump")), "refused EXPORT"},
		{"ATTACH", false, "ATTACH " + q(filepath.Join(root, "other.duckdb")), "refused ATTACH"},
		{"INSTALL", false, "INSTALL httpfs", "refused INSTALL"},
		{"LOAD", false, "LOAD httpfs", "refused LOAD"},
		{"SET", false, "SET memory_limit = '10GB'", "refused SET"},
		{"PRAGMA that sets", false, "PRAGMA threads = 1", "refused PRAGMA"},
		{"PRAGMA that switches", false, "PRAGMA enable_profiling", "refused PRAGMA"},
		{"CHECKPOINT", false, "CHECKPOINT", "refused CHECKPOINT"},
		{"two statements", false, "SELECT 1; SELECT 2", "refused more than one statement"},
		{"a query then a COPY", false, "SELECT 1; COPY (SELECT 1) TO " + q(filepath.Join(root, "two.csv")), "refused more than one statement"},
		{"read_text of /etc/shadow", false, "SELECT * FROM read_text('/etc/shadow')", "file system operations are disabled"},
		{"read_text as a scalar", false, "SELECT read_text('/etc/shadow')", "read_text"},
		{"read_csv outside", false, "SELECT * FROM read_csv(" + q(outside) + ")", "file system operations are disabled"},
		{"read_csv outside with --allow", true, "SELECT * FROM read_csv(" + q(outside) + ")", "file system operations are disabled"},
		{"glob", false, "SELECT * FROM glob('/etc/*')", "file system operations are disabled"},
		{"a COPY inside query()", false, "SELECT * FROM query('COPY (SELECT 1) TO ''" + filepath.Join(root, "q.csv") + "''')", "Expected a single SELECT statement"},
		{"parquet without --allow", false, "SELECT * FROM read_parquet(" + q(filepath.Join(lake, "devices", "data_0.parquet")) + ")", "file system operations are disabled"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			args := []string{"sql", "--format", "csv"}
			if a.allow {
				args = append(args, "--allow", lake)
			}
			code, out, errOut := run(t, env, append(args, a.query)...)
			refused := strings.Contains(errOut, a.want) || strings.Contains(errOut, "file system operations are disabled")
			if code != 1 || !refused || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, no output and %q", code, out, errOut, a.want)
			}
			if diff := cmp.Diff(before, fileState(t, roots...)); diff != "" {
				t.Fatalf("files changed (-before +after):\n%s", diff)
			}
		})
	}

	// What --allow is for: reading the export's Parquet.
	code, out, errOut := run(t, env, "sql", "--format", "csv", "--allow", lake,
		"SELECT count(*) AS n FROM read_parquet("+q(filepath.Join(lake, "usage_daily", "*", "*.parquet"))+")")
	if code != 0 || out != "n\n2\n" {
		t.Errorf("read_parquet of the export: exit %d, stdout %q, stderr %q; want 2 rows", code, out, errOut)
	}
	if diff := cmp.Diff(before, fileState(t, roots...)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
	if code, _, errOut := run(t, env, "sql", "--allow", filepath.Join(root, "nowhere"), "SELECT 1"); code != 2 || !strings.Contains(errOut, "not a directory") {
		t.Errorf("--allow of a missing directory: exit %d, stderr %q; want 2", code, errOut)
	}
}

// A warehouse path that is not a DuckDB file is refused, and left as it
// was: an existing text file (exit 3), :memory: and other special names
// (configuration errors, exit 2).
func TestWarehouseMustBeADuckDBFile(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.csv")
	const text = "device,note\n1,hello\n"
	if err := os.WriteFile(notes, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, simulator.Options{Devices: 2})
	for _, tt := range []struct {
		db   string
		code int
		want string
	}{
		{notes, 3, "not a DuckDB database; it is left untouched"},
		{dir, 3, "is a directory"},
		{":memory:", 2, "THINGSYNC_DB"},
		{"md:warehouse", 2, "names a DuckDB service"},
		{filepath.Join(dir, "w.duckdb?access_mode=READ_WRITE"), 2, "would pass options"},
	} {
		w.env["THINGSYNC_DB"] = tt.db
		for _, args := range [][]string{{"sync"}, {"sql", "SELECT 1"}, {"export", "--to", filepath.Join(dir, "lake")}} {
			code, out := w.run(args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("THINGSYNC_DB=%s %v: exit %d, want %d and %q:\n%s", tt.db, args, code, tt.code, tt.want, out)
			}
		}
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != text {
		t.Errorf("notes.csv now %q (%v), want it untouched", b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files created beside notes.csv: %v", entries)
	}
}
