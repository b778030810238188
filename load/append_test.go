package load

import (
	"database/sql/driver"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/google/go-cmp/cmp"
)

// appendRows stores exactly the values it is handed, read back row by
// row: text inline and not, NULLs in every column, numbers at their
// limits, dates, instants before 1970 and in other zones, MAP and LIST
// values, over more than two data chunks of 2,048 rows.
func TestAppendRows(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	conn, err := w.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t (id BIGINT, s VARCHAR, b BIGINT, i INTEGER, f DOUBLE,
		ok BOOLEAN, d DATE, ts TIMESTAMPTZ, m MAP(VARCHAR, VARCHAR), l VARCHAR[])`); err != nil {
		t.Fatal(err)
	}
	texts := []string{"", "a", "exactly12byt", "thirteen byte", "ünïcødé ✓ — longer than twelve", strings.Repeat("x", 5000)}
	days := []time.Time{time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)}
	at := []time.Time{
		time.Date(2026, 11, 22, 13, 14, 15, 123456000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 0, time.FixedZone("UTC+13:45", 13*3600+45*60)),
	}
	const n = 5000
	rows := make([][]driver.Value, n)
	for k := range rows {
		r := []driver.Value{int64(k), texts[k%len(texts)], int64(k) * 1_000_003, int32(k%7 - 3), float64(k) / 3,
			k%2 == 0, days[k%len(days)], at[k%len(at)], nil, nil}
		if k%5 == 0 {
			r[8] = duckdb.Map{"k": strconv.Itoa(k), "empty": ""}
		}
		if k%3 == 0 {
			r[9] = []string{"Trucks", texts[k%len(texts)]}
		}
		if k%11 == 0 {
			r[1+k%9] = nil // NULL in every column but id, in turn
		}
		rows[k] = r
	}
	rows[1][2], rows[2][2] = int64(1<<63-1), int64(-1<<63)
	rows[3][3] = int32(-1 << 31)
	if err := appendRows(conn, "", "t", n, func(k int) []driver.Value { return rows[k] }); err != nil {
		t.Fatal(err)
	}

	got, err := conn.QueryContext(ctx, `SELECT * FROM t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	k := 0
	for ; got.Next(); k++ {
		v := make([]any, 10)
		p := make([]any, 10)
		for j := range v {
			p[j] = &v[j]
		}
		if err := got.Scan(p...); err != nil {
			t.Fatal(err)
		}
		if k >= n {
			continue
		}
		if om, ok := v[8].(duckdb.OrderedMap); ok {
			m := duckdb.Map{}
			for i, key := range om.Keys() {
				m[key] = om.Values()[i]
			}
			v[8] = m
		}
		want := expectStored(rows[k])
		if diff := cmp.Diff(want, v); diff != "" {
			t.Fatalf("row %d stored differently (-handed +stored):\n%s", k, diff)
		}
	}
	if err := got.Err(); err != nil {
		t.Fatal(err)
	}
	if k != n {
		t.Fatalf("%d rows stored, want %d", k, n)
	}

	// A value of the wrong type is an error naming the column, not a
	// silent zero, and no row of the call is kept.
	good := []driver.Value{int64(-1), "x", int64(1), int32(1), 1.0, true, days[0], at[0], nil, nil}
	bad := []driver.Value{int64(-1), "x", "not a number", int32(1), 1.0, true, days[0], at[0], nil, nil}
	err = appendRows(conn, "", "t", 2, func(k int) []driver.Value { return [][]driver.Value{good, bad}[k] })
	if err == nil || !strings.Contains(err.Error(), "append to t") || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("wrong type: err = %v, want an error naming the table and the value", err)
	}
	var left int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE id = -1`).Scan(&left); err != nil || left != 0 {
		t.Errorf("after a failed append: %d rows of it stored (err %v), want 0", left, err)
	}
}

// expectStored is what reading a row back gives for the values handed
// to appendRows: instants in UTC, LIST as []any (MAP values are read
// back as duckdb.Map).
func expectStored(r []driver.Value) []any {
	out := make([]any, len(r))
	for j, x := range r {
		switch v := x.(type) {
		case time.Time:
			out[j] = v.UTC()
		case duckdb.Map:
			m := duckdb.Map{}
			for k, e := range v {
				m[k] = e
			}
			out[j] = m
		case []string:
			l := make([]any, len(v))
			for i, s := range v {
				l[i] = s
			}
			out[j] = l
		default:
			out[j] = x
		}
	}
	return out
}

// The loader writes to DuckDB through the driver's public API only: no
// package reads a dependency's unexported fields or lays out its memory,
// which would break silently on a driver upgrade.
func TestNoDriverInternals(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// The driver's C handles are reachable only through its unexported
	// fields, by unsafe, and are typed by the bindings package.
	forbidden := map[string]bool{"unsafe": true, "github.com/duckdb/duckdb-go-bindings": true}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range ast.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); forbidden[p] {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
