package load

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// catalogType renders DuckDB's spelling of a type as the schema package
// writes it.
func catalogType(t string) string {
	return strings.ReplaceAll(t, "TIMESTAMP WITH TIME ZONE", schema.TimestampTZ)
}

// The warehouse documents itself: every table, view and column of a fresh
// file, and a column added by schema evolution, carries a comment; and what
// the file holds is exactly what the schema package declares (names, order
// and types), so docs/schema.md, generated from the package, tells the
// truth about views whose columns DuckDB derives from their SQL.
func TestEverythingCommented(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	write(t, w, Unit{Table: schema.UsageDaily, Rows: []transform.Row{
		usageRow(1, 1, extract.Attribute{Key: "RoamingSms", Value: "3"}),
	}})

	for _, q := range []struct{ what, query string }{
		{"table", `SELECT table_name FROM duckdb_tables()
			WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
			AND coalesce(comment, '') = '' ORDER BY ALL`},
		{"view", `SELECT view_name FROM duckdb_views()
			WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
			AND coalesce(comment, '') = '' ORDER BY ALL`},
		{"column", `SELECT table_name || '.' || column_name FROM duckdb_columns()
			WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
			AND coalesce(comment, '') = '' ORDER BY ALL`},
	} {
		if missing := rowsOf(t, w.DB(), q.query); len(missing) > 0 {
			t.Errorf("%ss without a comment: %s", q.what, strings.Join(missing, ", "))
		}
	}
	if got := one(t, w, `SELECT comment FROM duckdb_columns() WHERE database_name = current_database()
		AND table_name = 'usage_daily' AND column_name = 'roaming_sms'`); got != schema.EvolvedComment {
		t.Errorf("evolved column comment %q", got)
	}

	// What the file holds, against what the schema declares.
	var got, want []string
	for _, r := range rowsOf(t, w.DB(), `SELECT c.table_name, c.column_name, c.data_type, c.comment
		FROM duckdb_columns() c
		LEFT JOIN schema_columns e ON e.table_name = c.table_name AND e.column_name = c.column_name
		WHERE c.database_name = current_database() AND c.schema_name = 'main' AND NOT c.internal
		AND e.column_name IS NULL
		ORDER BY c.table_name, c.column_index`) {
		f := strings.SplitN(r, "|", 4)
		got = append(got, f[0]+"."+f[1]+" "+catalogType(f[2])+": "+f[3])
	}
	for _, tb := range schema.Tables() {
		for _, c := range tb.Columns {
			want = append(want, tb.Name+"."+c.Name+" "+c.Type+": "+c.Comment)
		}
	}
	// Sorted by table as the query is; columns keep their declared order.
	slices.SortStableFunc(want, func(a, b string) int {
		return strings.Compare(a[:strings.IndexByte(a, '.')], b[:strings.IndexByte(b, '.')])
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("catalog differs from the schema package (-schema +file):\n%s", diff)
	}
	for _, tb := range schema.Tables() {
		q := `SELECT comment FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?`
		if tb.View != "" {
			q = `SELECT comment FROM duckdb_views() WHERE database_name = current_database() AND view_name = ?`
		}
		if got := one(t, w, q, tb.Name); got != tb.Comment {
			t.Errorf("%s comment %q, want %q", tb.Name, got, tb.Comment)
		}
	}
}
