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
	"github.com/thingsync/thingsync/load"
)

// Output formats of the sql command.
const (
	formatTable = "table"
	formatCSV   = "csv"
	formatJSON  = "json"
)

func runSQL(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("sql", "sql [--format table|csv|json] 'QUERY'\n\n"+
		"Runs one read-only query on THINGSYNC_DB (on THINGSYNC_SNAPSHOT when it is set and\n"+
		"exists) and prints the result. QUERY - reads the query from standard input.")
	format := fs.String("format", formatTable, "output format: table, csv or json")
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
	db, err := load.OpenReadOnly(ctx, path)
	if err != nil {
		return cannotRun(fmt.Errorf("sql: %w", err))
	}
	defer db.Close()

	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		// DuckDB's own message says what is wrong (parser, binder, a write
		// refused in read-only mode); add nothing to it.
		return &ExitError{Code: exitPartial, Err: err}
	}
	defer rows.Close()
	out := bufio.NewWriter(a.Stdout)
	switch *format {
	case formatCSV:
		err = writeCSV(out, rows)
	case formatJSON:
		err = writeJSON(out, rows)
	default:
		err = writeAligned(out, rows)
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

func resultColumns(rows *sql.Rows) ([]column, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read result columns: %w", err)
	}
	cols := make([]column, len(types))
	for i, t := range types {
		cols[i] = column{name: t.Name(), dbType: strings.ToUpper(t.DatabaseTypeName())}
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

// scanRows calls fn with each row's values (reused between calls).
func scanRows(rows *sql.Rows, n int, fn func(vals []any) error) error {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		clear(vals)
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// writeAligned prints the result as aligned columns under a header.
func writeAligned(w io.Writer, rows *sql.Rows) error {
	cols, err := resultColumns(rows)
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return nil
	}
	header := make([]string, len(cols))
	right := make([]bool, len(cols))
	for i, c := range cols {
		header[i], right[i] = c.name, c.numeric()
	}
	var body [][]string
	err = scanRows(rows, len(cols), func(vals []any) error {
		line := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				line[i] = "NULL"
				continue
			}
			// One row, one line: control characters would break the layout.
			line[i] = strings.Map(visible, textValue(cols[i], v))
		}
		body = append(body, line)
		return nil
	})
	if err != nil {
		return err
	}
	writeColumns(w, header, body, right)
	if len(body) == 1 {
		fmt.Fprintln(w, "(1 row)")
	} else {
		fmt.Fprintf(w, "(%d rows)\n", len(body))
	}
	return nil
}

func visible(r rune) rune {
	switch r {
	case '\n', '\r', '\t':
		return ' '
	}
	return r
}

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

// writeCSV prints the result as CSV with a header; NULL is an empty field.
func writeCSV(w io.Writer, rows *sql.Rows) error {
	cols, err := resultColumns(rows)
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return nil
	}
	cw := csv.NewWriter(w)
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = c.name
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	record := make([]string, len(cols))
	err = scanRows(rows, len(cols), func(vals []any) error {
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
// keys in column order. Numbers stay numbers (exact for HUGEINT and
// DECIMAL), instants and dates are strings, NULL is null, nested values
// nest.
func writeJSON(w io.Writer, rows *sql.Rows) error {
	cols, err := resultColumns(rows)
	if err != nil {
		return err
	}
	keys := make([][]byte, len(cols))
	for i, c := range cols {
		if keys[i], err = json.Marshal(c.name); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	n := 0
	var buf bytes.Buffer
	err = scanRows(rows, len(cols), func(vals []any) error {
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
