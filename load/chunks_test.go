package load

import (
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// The chunk appender is the path the loader takes with the pinned driver,
// and it stores exactly what the driver's Appender stores: text inline
// and not, NULLs in every column, numbers at their limits, dates and
// instants (also before 1970), and a table with a MAP column (NULL: chunk
// path; a value: the driver's Appender).
func TestChunkAppender(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	conn, err := w.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := rawConn(conn, func(dc driver.Conn) error {
		if _, ok := connHandle(dc); !ok {
			return fmt.Errorf("no C connection in %T: the loader would fall back to the driver's Appender", dc)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	q := func(query string) string {
		t.Helper()
		var v any
		if err := conn.QueryRowContext(ctx, query).Scan(&v); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return fmt.Sprint(v)
	}
	const cols = `s VARCHAR, b BIGINT, i INTEGER, f DOUBLE, ok BOOLEAN, d DATE, ts TIMESTAMPTZ, m MAP(VARCHAR, VARCHAR)`
	for _, tbl := range []string{"fast", "slow"} {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", tbl, cols)); err != nil {
			t.Fatal(err)
		}
	}
	texts := []string{"", "a", "exactly12byt", "thirteen byte", "ünïcødé ✓ — longer than twelve", strings.Repeat("x", 5000), "iccid"}
	at := []time.Time{time.Date(2026, 11, 22, 13, 14, 15, 123456000, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)}
	var rows [][]driver.Value
	for i := 0; i < 5000; i++ { // more than two chunks of 2,048
		r := []driver.Value{texts[i%len(texts)], int64(i) * 1_000_003, int32(i%7 - 3), float64(i) / 3, i%2 == 0, at[i%len(at)], at[(i+1)%len(at)], nil}
		if i%11 == 0 {
			r[i%7] = nil
		}
		rows = append(rows, r)
	}
	rows[1][1], rows[2][1] = int64(1<<63-1), int64(-1<<63)
	rows[3][2] = int32(-1 << 31)
	row := func(i int) []driver.Value { return rows[i] }
	if err := appendRows(conn, "", "fast", len(rows), row, false); err != nil {
		t.Fatal(err)
	}
	if err := rawConn(conn, func(dc driver.Conn) error {
		app, err := duckdb.NewAppender(dc, "", "main", "slow")
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := app.AppendRow(r...); err != nil {
				return err
			}
		}
		return app.Close()
	}); err != nil {
		t.Fatal(err)
	}
	if n := q("SELECT count(*) FROM fast"); n != "5000" {
		t.Fatalf("%s rows appended, want 5000", n)
	}
	if diff := q("SELECT count(*) FROM (SELECT * FROM fast EXCEPT ALL SELECT * FROM slow UNION ALL (SELECT * FROM slow EXCEPT ALL SELECT * FROM fast))"); diff != "0" {
		t.Errorf("%s rows differ between the chunk appender and the driver's Appender", diff)
	}
	// Equal text must compare equal however it was stored.
	if n := q("SELECT count(*) FROM fast WHERE s = 'exactly12byt'"); n == "0" {
		t.Error("inline text not found by equality")
	}

	// A MAP value: the driver's Appender takes the rows.
	mapped := []driver.Value{"m", int64(1), int32(1), 1.0, true, at[0], at[0], duckdb.Map{"k": "v"}}
	if err := appendRows(conn, "", "fast", 1, func(int) []driver.Value { return mapped }, true); err != nil {
		t.Fatal(err)
	}
	if got := q("SELECT m['k'] FROM fast WHERE s = 'm'"); got != "v" {
		t.Errorf("map value = %s, want v", got)
	}
	// A value of the wrong type is an error naming the column, not a
	// silent zero.
	bad := []driver.Value{"x", "not a number", int32(1), 1.0, true, at[0], at[0], nil}
	if err := appendRows(conn, "", "fast", 1, func(int) []driver.Value { return bad }, false); err == nil || !strings.Contains(err.Error(), "column 2") {
		t.Errorf("wrong type: err = %v, want an error naming column 2", err)
	}
}
