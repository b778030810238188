package query

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
)

// Example is a query an analyst asks first, as the demo runs it and the
// README shows it.
type Example struct {
	Title string
	SQL   string // one statement, without the closing semicolon
}

// Examples are the demo's queries.
func Examples() []Example {
	examples := []Example{
		{"Top 5 data users this month", `SELECT device_kind, device_id, round(bytes_used / 1e9, 2) AS gb, sms_used
		FROM usage_monthly WHERE month = date_trunc('month', current_date) ORDER BY bytes_used DESC LIMIT 5`},
		{"SMS by day, last 7 days (the last three are provisional)", `SELECT usage_date, sum(mo_sms) AS mo_sms, sum(mt_sms) AS mt_sms, sum(sms_used) AS total
		FROM usage_daily WHERE usage_date >= current_date - 7 GROUP BY ALL ORDER BY usage_date`},
		{"Sessions per day and their median duration, last 7 days", `SELECT started_at::DATE AS day, count(*) AS sessions, count(*) FILTER (WHERE is_open) AS still_open,
		round(median(epoch(duration)) / 60, 1) AS median_minutes
		FROM connection_sessions WHERE started_at >= current_date - 7 GROUP BY ALL ORDER BY day`},
		{"Devices with no data for 7 days", `SELECT d.device_kind, d.device_id, d.state, max(u.usage_date) FILTER (WHERE u.bytes_used > 0) AS last_day_with_data
		FROM devices d LEFT JOIN usage_daily u USING (device_kind, device_id) GROUP BY ALL
		HAVING last_day_with_data IS NULL OR last_day_with_data < current_date - 7 ORDER BY last_day_with_data NULLS FIRST, d.device_id LIMIT 8`},
		{"International share by month", `SELECT month, round(sum(international_usage) / 1e9, 2) AS international_gb,
		round(100 * sum(international_usage) / nullif(sum(domestic_usage) + sum(international_usage), 0), 2) AS international_pct
		FROM usage_monthly GROUP BY month ORDER BY month DESC LIMIT 4`},
	}
	for i, e := range examples {
		examples[i].SQL = unindent(e.SQL)
	}
	return examples
}

// unindent is a query as written in Go source, without its indentation:
// continuation lines are indented by two spaces.
func unindent(q string) string {
	lines := strings.Split(strings.TrimSpace(q), "\n")
	for i, l := range lines {
		if l = strings.TrimLeft(l, "\t "); i > 0 {
			l = "  " + l
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

// WriteExamples runs the examples on db and writes each title, its SQL and
// its result as aligned columns.
func WriteExamples(ctx context.Context, w io.Writer, db *sql.DB) error {
	for _, q := range Examples() {
		fmt.Fprintf(w, "\n-- %s\n%s;\n\n", q.Title, q.SQL)
		rows, err := db.QueryContext(ctx, q.SQL)
		if err != nil {
			return fmt.Errorf("demo query: %w", err)
		}
		err = WriteTable(ctx, w, Once(rows))
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
