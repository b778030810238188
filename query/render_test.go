package query

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/google/go-cmp/cmp"
)

// render runs q on an in-memory database and prints its rows in format f,
// read once (as demo's queries are).
func render(t *testing.T, f Format, q string) string {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out bytes.Buffer
	if err := Write(ctx, &out, f, Once(rows)); err != nil {
		t.Fatalf("Write %s: %v", f, err)
	}
	return out.String()
}

func TestWriteTable(t *testing.T) {
	got := render(t, Table, `SELECT * FROM (VALUES
		('a', 1::INTEGER, 2.5::DOUBLE, DATE '2026-01-02', 'two' || chr(10) || 'lines'),
		('ééé', 12345, NULL, NULL, 'tab' || chr(9) || 'here')) t(name, n, x, day, note)`)
	// Widths count runes; numbers align right; NULL fits the column.
	want := strings.Join([]string{
		"name      n     x  day         note",
		"----  -----  ----  ----------  ---------",
		"a         1   2.5  2026-01-02  two lines",
		"ééé   12345  NULL  NULL        tab here",
		"(2 rows)",
		"",
	}, "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table mismatch (-want +got):\n%s", diff)
	}
	if got := render(t, Table, "SELECT 1 AS one"); got != "one\n---\n  1\n(1 row)\n" {
		t.Errorf("one row: %q", got)
	}
	if got := render(t, Table, "SELECT 1 AS one WHERE false"); got != "one\n---\n(0 rows)\n" {
		t.Errorf("no rows: %q", got)
	}
}

func TestWriteColumns(t *testing.T) {
	var out bytes.Buffer
	err := WriteColumns(&out, []string{"stream", "devices", "note"},
		[][]string{{"usage", "3", ""}, {"connections", "12", "x"}}, []bool{false, true, false})
	want := "stream       devices  note\n" +
		"-----------  -------  ----\n" +
		"usage              3\n" +
		"connections       12  x\n"
	if diff := cmp.Diff(want, out.String()); err != nil || diff != "" {
		t.Errorf("WriteColumns: %v (-want +got):\n%s", err, diff)
	}
}

func TestWriteCSVAndJSON(t *testing.T) {
	const q = `SELECT 'a,"b"' AS s, NULL::INTEGER AS n, 12345678901234567890::HUGEINT AS h, 1.50::DECIMAL(10,2) AS d,
		'NaN'::DOUBLE AS nan, TIMESTAMPTZ '2026-03-04 05:06:07.5+02' AS ts, TIME '01:02:03' AS tm,
		[DATE '2026-01-01'] AS l, {'k': 1} AS st, MAP {2: 'two'} AS m, 'x'::BLOB AS b, '\xFF'::BLOB AS raw,
		'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u, true AS yes`
	wantCSV := "s,n,h,d,nan,ts,tm,l,st,m,b,raw,u,yes\n" +
		`"a,""b""",,12345678901234567890,1.5,NaN,2026-03-04T03:06:07.5Z,01:02:03,"[""2026-01-01""]","{""k"":1}","{""2"":""two""}",x,\xFF,6ba7b810-9dad-11d1-80b4-00c04fd430c8,true` + "\n"
	if diff := cmp.Diff(wantCSV, render(t, CSV, q)); diff != "" {
		t.Errorf("csv mismatch (-want +got):\n%s", diff)
	}
	wantJSON := `[
  {"s": "a,\"b\"", "n": null, "h": 12345678901234567890, "d": 1.5, "nan": "NaN", "ts": "2026-03-04T03:06:07.5Z", "tm": "01:02:03", "l": ["2026-01-01"], "st": {"k":1}, "m": {"2":"two"}, "b": "x", "raw": "\\xFF", "u": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "yes": true}
]
`
	if diff := cmp.Diff(wantJSON, render(t, JSON, q)); diff != "" {
		t.Errorf("json mismatch (-want +got):\n%s", diff)
	}
	if got := render(t, JSON, "SELECT 1 AS a WHERE false"); got != "[]\n" {
		t.Errorf("json of no rows: %q, want []", got)
	}
	if got := render(t, CSV, "SELECT 1 AS a WHERE false"); got != "a\n" {
		t.Errorf("csv of no rows: %q, want the header", got)
	}
}

func TestIntervalText(t *testing.T) {
	tests := []struct {
		in   duckdb.Interval
		want string
	}{
		{duckdb.Interval{}, "00:00:00"},
		{duckdb.Interval{Micros: 5401_500_000}, "01:30:01.5"},
		{duckdb.Interval{Months: 14, Days: 1}, "1 year 2 months 1 day"},
		{duckdb.Interval{Months: -1, Days: 2, Micros: 1}, "-1 month 2 days 00:00:00.000001"},
		{duckdb.Interval{Micros: -61_000_000}, "-00:01:01"},
	}
	for _, tt := range tests {
		if got := intervalText(tt.in); got != tt.want {
			t.Errorf("intervalText(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatValid(t *testing.T) {
	for f, want := range map[Format]bool{Table: true, CSV: true, JSON: true, "xml": false, "": false, "TABLE": false} {
		if f.Valid() != want {
			t.Errorf("Format(%q).Valid() = %v, want %v", f, !want, want)
		}
	}
}
