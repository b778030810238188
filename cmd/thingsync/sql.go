package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

// Output formats of the sql command.
const (
	formatTable = "table"
	formatCSV   = "csv"
	formatJSON  = "json"
)

// dirList is a repeatable flag of directories.
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ",") }

func (d *dirList) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("empty directory")
	}
	*d = append(*d, v)
	return nil
}

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
		"memory limit ("+load.QueryMemoryLimit+", spilling past it) and the program holds a page of\n"+
		fmt.Sprint(load.PageRows)+" rows. --format table reads the result twice (column widths, then\n"+
		"the rows); csv and json stream it once.\n\n"+
		"Exit status: 0; 1 the query failed or was refused (DuckDB's message); 2 bad flags;\n"+
		"3 the warehouse could not be opened.")
	format := fs.String("format", formatTable, "output format: table (aligned columns), csv (with a header; NULL is empty) or json (an array of objects)")
	var allow dirList
	fs.Var(&allow, "allow", "a directory (`DIR`) whose files queries may read, e.g. an export directory for read_parquet('DIR/usage_daily/*/*.parquet'); repeatable (default: none, only the warehouse)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	switch *format {
	case formatTable, formatCSV, formatJSON:
	default:
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
	query := fs.Arg(0)
	if query == "-" {
		if a.Stdin == nil {
			return usageErr("sql: no standard input to read the query from")
		}
		b, err := io.ReadAll(a.Stdin)
		if err != nil {
			return cannotRun(fmt.Errorf("sql: read query from stdin: %w", err))
		}
		query = string(b)
	}
	if strings.TrimSpace(query) == "" {
		return usageErr("sql: the query is empty")
	}

	path, err := queryPath(env.Config)
	if err != nil {
		return cannotRun(fmt.Errorf("sql: %w", err))
	}
	spill, err := os.MkdirTemp("", "thingsync-sql-")
	if err != nil {
		return cannotRun(fmt.Errorf("sql: create a temporary directory (set TMPDIR): %w", err))
	}
	defer os.RemoveAll(spill)
	db, err := load.OpenQuery(ctx, path, load.QueryOptions{Allow: allow, TempDir: spill})
	if errors.Is(err, load.ErrLocked) {
		return cannotRun(fmt.Errorf("sql: %w", ingest.LockedAdvice(path, a.now())))
	}
	if err != nil {
		return cannotRun(fmt.Errorf("sql: %w", err))
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return cannotRun(fmt.Errorf("sql: %w", err))
	}
	defer conn.Close()

	res, err := load.RunQuery(ctx, conn, query)
	if err != nil {
		// DuckDB's own message says what is wrong (parser, binder, a file
		// refused), or RunQuery's what was refused.
		return &ExitError{Code: exitPartial, Err: fmt.Errorf("sql: %w", err)}
	}
	out := bufio.NewWriter(a.Stdout)
	switch *format {
	case formatCSV:
		err = writeCSV(ctx, out, res)
	case formatJSON:
		err = writeJSON(ctx, out, res)
	default:
		err = writeAligned(ctx, out, res)
	}
	if ferr := out.Flush(); err == nil && ferr != nil {
		return cannotRun(fmt.Errorf("sql: write result: %w", ferr))
	}
	if err != nil {
		return &ExitError{Code: exitPartial, Err: err}
	}
	return nil
}

// queryPath is the file analysts' queries read: the published snapshot when
// there is one (a running sync holds the main file's lock), else the
// warehouse itself. A missing file is an error: opening it would create an
// empty database and every query would fail confusingly.
func queryPath(cfg *config.Config) (string, error) {
	if cfg.Snapshot != "" {
		if _, err := os.Stat(cfg.Snapshot); err == nil {
			return cfg.Snapshot, nil
		}
	}
	if err := mustExist(cfg.DB); err != nil {
		return "", err
	}
	return cfg.DB, nil
}

func mustExist(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("warehouse %s does not exist (set THINGSYNC_DB, or run thingsync sync first)", path)
	case err != nil:
		return fmt.Errorf("warehouse %s: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("warehouse %s is a directory, not a DuckDB file", path)
	}
	return nil
}

// column is one result column and how to render its values.
type column struct {
	name   string
	dbType string
}

// result is a query's rows, read a page at a time (load.QueryResult).
type result interface {
	Each(ctx context.Context, fn func(*sql.Rows) error) error
	Repeatable() bool
}

func resultColumns(rows *sql.Rows, names []string) ([]column, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read result columns: %w", err)
	}
	cols := make([]column, len(types))
	for i, t := range types {
		cols[i] = column{name: t.Name(), dbType: strings.ToUpper(t.DatabaseTypeName())}
		if len(names) == len(types) {
			cols[i].name = names[i]
		}
	}
	return cols, nil
}

// numeric reports whether a column holds numbers (right-aligned in tables).
func (c column) numeric() bool {
	t := c.dbType
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = t[:i]
	}
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
		"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
		"FLOAT", "DOUBLE", "DECIMAL":
		return true
	}
	return false
}

// eachRow calls start with the result's columns, then row with each row's
// values (reused between calls), page after page.
func eachRow(ctx context.Context, res result, names []string, start func([]column) error, row func([]column, []any) error) error {
	var cols []column
	var vals, ptrs []any
	return res.Each(ctx, func(rows *sql.Rows) error {
		if cols == nil {
			var err error
			if cols, err = resultColumns(rows, names); err != nil {
				return err
			}
			vals, ptrs = make([]any, len(cols)), make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := start(cols); err != nil {
				return err
			}
		}
		if len(cols) == 0 {
			return nil
		}
		for rows.Next() {
			clear(vals)
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			if err := row(cols, vals); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// queryColumns are the names the query gave its columns, when known.
func queryColumns(res result) []string {
	if q, ok := res.(*load.QueryResult); ok {
		return q.Columns
	}
	return nil
}

// cell renders one value of a table: NULL, and one line per row.
func cell(c column, v any) string {
	if v == nil {
		return "NULL"
	}
	// One row, one line: control characters would break the layout.
	return strings.Map(visible, textValue(c, v))
}

// writeAligned prints the result as aligned columns under a header, each
// column as wide as its widest cell. A result that can be read twice is:
// once for the widths, once to print, so no more than a page of it is
// held; one that cannot (EXPLAIN) is small and held whole.
func writeAligned(ctx context.Context, w io.Writer, res result) error {
	names := queryColumns(res)
	var (
		header []string
		right  []bool
		widths []int
		body   [][]string
		n      int
	)
	start := func(cols []column) error {
		header, right, widths = make([]string, len(cols)), make([]bool, len(cols)), make([]int, len(cols))
		for i, c := range cols {
			header[i], right[i] = c.name, c.numeric()
			widths[i] = utf8.RuneCountInString(c.name)
		}
		return nil
	}
	keep := !res.Repeatable()
	err := eachRow(ctx, res, names, start, func(cols []column, vals []any) error {
		var line []string
		if keep {
			line = make([]string, len(cols))
		}
		for i, v := range vals {
			c := cell(cols[i], v)
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
			if keep {
				line[i] = c
			}
		}
		if keep {
			body = append(body, line)
		}
		n++
		return nil
	})
	if err != nil || len(header) == 0 {
		return err
	}
	printLine := func(line []string) error {
		var b strings.Builder
		for i, c := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		_, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		return err
	}
	if err := printLine(header); err != nil {
		return err
	}
	rule := make([]string, len(widths))
	for i, wd := range widths {
		rule[i] = strings.Repeat("-", wd)
	}
	if _, err := fmt.Fprintln(w, strings.Join(rule, "  ")); err != nil {
		return err
	}
	if keep {
		for _, line := range body {
			if err := printLine(line); err != nil {
				return err
			}
		}
	} else {
		line := make([]string, len(header))
		printed := 0
		err := eachRow(ctx, res, names, func([]column) error { return nil }, func(cols []column, vals []any) error {
			for i, v := range vals {
				line[i] = cell(cols[i], v)
			}
			printed++
			return printLine(line)
		})
		if err != nil {
			return err
		}
		if printed != n {
			return fmt.Errorf("the result changed between its two readings (%d rows, then %d)", n, printed)
		}
	}
	if n == 1 {
		_, err = fmt.Fprintln(w, "(1 row)")
	} else {
		_, err = fmt.Fprintf(w, "(%d rows)\n", n)
	}
	return err
}

// rowsResult is rows already open, read once.
type rowsResult struct{ rows *sql.Rows }

func (r rowsResult) Each(_ context.Context, fn func(*sql.Rows) error) error { return fn(r.rows) }
func (rowsResult) Repeatable() bool                                         { return false }

// writeColumns prints a header, a rule and the rows, each column as wide as
// its widest cell; right marks columns aligned to the right.
func writeColumns(w io.Writer, header []string, body [][]string, right []bool) {
	widths := make([]int, len(header))
	for _, line := range append([][]string{header}, body...) {
		for i, c := range line {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	printLine := func(line []string) {
		var b strings.Builder
		for i, c := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if right != nil && right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	printLine(header)
	rule := make([]string, len(widths))
	for i, wd := range widths {
		rule[i] = strings.Repeat("-", wd)
	}
	fmt.Fprintln(w, strings.Join(rule, "  "))
	for _, line := range body {
		printLine(line)
	}
}

func visible(r rune) rune {
	switch r {
	case '\n', '\r', '\t':
		return ' '
	}
	return r
}

// writeCSV prints the result as CSV with a header, row by row; NULL is an
// empty field.
func writeCSV(ctx context.Context, w io.Writer, res result) error {
	cw := csv.NewWriter(w)
	var record []string
	start := func(cols []column) error {
		if len(cols) == 0 {
			return nil
		}
		header := make([]string, len(cols))
		for i, c := range cols {
			header[i] = c.name
		}
		record = make([]string, len(cols))
		return cw.Write(header)
	}
	err := eachRow(ctx, res, queryColumns(res), start, func(cols []column, vals []any) error {
		for i, v := range vals {
			record[i] = ""
			if v != nil {
				record[i] = textValue(cols[i], v)
			}
		}
		return cw.Write(record)
	})
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}

// writeJSON prints the result as a JSON array with one object per row,
// keys in column order, row by row. Numbers stay numbers (exact for
// HUGEINT and DECIMAL), instants and dates are strings, NULL is null,
// nested values nest.
func writeJSON(ctx context.Context, w io.Writer, res result) error {
	var keys [][]byte
	start := func(cols []column) error {
		keys = make([][]byte, len(cols))
		for i, c := range cols {
			var err error
			if keys[i], err = json.Marshal(c.name); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	n := 0
	var buf bytes.Buffer
	err := eachRow(ctx, res, queryColumns(res), start, func(cols []column, vals []any) error {
		buf.Reset()
		if n > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n  {")
		for i, v := range vals {
			if i > 0 {
				buf.WriteString(", ")
			}
			buf.Write(keys[i])
			buf.WriteString(": ")
			b, err := json.Marshal(jsonValue(cols[i], v))
			if err != nil {
				return fmt.Errorf("column %s: %w", cols[i].name, err)
			}
			buf.Write(b)
		}
		buf.WriteString("}")
		n++
		_, err := w.Write(buf.Bytes())
		return err
	})
	if err != nil {
		return err
	}
	end := "\n]\n"
	if n == 0 {
		end = "]\n"
	}
	_, err = io.WriteString(w, end)
	return err
}

// textValue renders a non-NULL value as text: dates YYYY-MM-DD, instants
// RFC 3339 in UTC, exact decimals, nested values as JSON.
func textValue(c column, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return timeText(c.dbType, x)
	case []byte:
		return bytesText(c.dbType, x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case duckdb.Decimal:
		return x.String()
	case *big.Int:
		return x.String()
	case duckdb.Interval:
		return intervalText(x)
	case duckdb.UUID:
		return uuidText(x[:])
	case []any, map[string]any, duckdb.OrderedMap, duckdb.Union:
		b, err := json.Marshal(jsonValue(c, x))
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// jsonValue turns a scanned value into one encoding/json renders as the
// analyst expects.
func jsonValue(c column, v any) any {
	switch x := v.(type) {
	case nil, bool, string,
		int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
		return x
	case duckdb.Decimal:
		return json.Number(x.String())
	case *big.Int:
		return json.Number(x.String())
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(column{}, e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(column{}, e)
		}
		return out
	case duckdb.OrderedMap:
		keys, vals := x.Keys(), x.Values()
		out := make(map[string]any, len(keys))
		for i, k := range keys {
			ks, ok := k.(string)
			if !ok {
				ks = textValue(column{}, k)
			}
			out[ks] = jsonValue(column{}, vals[i])
		}
		return out
	case duckdb.Union:
		return jsonValue(column{}, x.Value)
	default:
		return textValue(c, x)
	}
}

func timeText(dbType string, t time.Time) string {
	t = t.UTC()
	switch {
	case dbType == "DATE":
		return t.Format(time.DateOnly)
	case strings.HasPrefix(dbType, "TIME") && !strings.HasPrefix(dbType, "TIMESTAMP"):
		// TIME, TIME WITH TIME ZONE, TIME_NS: a time of day.
		return t.Format("15:04:05.999999999")
	case dbType == "":
		// A value nested in a list, map or struct: its type is unknown here.
		if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
			return t.Format(time.DateOnly)
		}
	}
	return t.Format(time.RFC3339Nano)
}

func bytesText(dbType string, b []byte) string {
	if dbType == "UUID" && len(b) == 16 {
		return uuidText(b)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	// DuckDB's own rendering of a BLOB: printable ASCII as is, the rest \xNN.
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, `\x%02X`, c)
		}
	}
	return s.String()
}

func uuidText(b []byte) string {
	h := hex.EncodeToString(b)
	if len(h) != 32 {
		return h
	}
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// intervalText renders an INTERVAL as DuckDB does: "1 year 2 months 3 days
// 04:05:06.5".
func intervalText(iv duckdb.Interval) string {
	var parts []string
	unit := func(n int64, name string) {
		if n == 0 {
			return
		}
		if n != 1 && n != -1 {
			name += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, name))
	}
	unit(int64(iv.Months/12), "year")
	unit(int64(iv.Months%12), "month")
	unit(int64(iv.Days), "day")
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		d := time.Duration(us) * time.Microsecond
		clock := fmt.Sprintf("%s%02d:%02d:%02d", sign, int64(d/time.Hour), int64(d/time.Minute%60), int64(d/time.Second%60))
		if frac := us % 1_000_000; frac != 0 {
			clock += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, clock)
	}
	return strings.Join(parts, " ")
}
