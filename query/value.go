package query

import (
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// column is one result column and how to render its values.
type column struct {
	name   string
	dbType string
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

// cell renders one value of a table: NULL, and one line per row.
func cell(c column, v any) string {
	if v == nil {
		return "NULL"
	}
	// One row, one line: control characters would break the layout.
	return strings.Map(visible, textValue(c, v))
}

func visible(r rune) rune {
	switch r {
	case '\n', '\r', '\t':
		return ' '
	}
	return r
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
