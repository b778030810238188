package load

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rowsOf runs q and renders each row as its values joined by |, NULL for
// NULL and times in RFC 3339 UTC (format dates in the query).
func rowsOf(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fields := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				fields[i] = "NULL"
			case time.Time:
				fields[i] = v.UTC().Format(time.RFC3339)
			default:
				fields[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(fields, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func exec(t *testing.T, w *Warehouse, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := w.DB().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestUsageMonthly(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	exec(t, w, `INSERT INTO usage_daily (device_kind, device_id, usage_date, bytes_used, sms_used, domestic_usage, international_usage) VALUES
		-- October: one day; a month with RTR figures.
		('iccid', 'A', DATE '2026-10-31', 100, 1, 75, 25),
		-- November: two days sum; one day lacks the RTR figures.
		('iccid', 'A', DATE '2026-11-01', 200, 2, 150, 50),
		('iccid', 'A', DATE '2026-11-30', 300, NULL, NULL, NULL),
		-- Another device: RTR figures both 0, so no share.
		('imei', 'B', DATE '2026-11-15', 5, 0, 0, 0),
		-- No RTR figures at all, and 3 billion bytes a day stays exact.
		('imei', 'B', DATE '2026-12-01', 3000000000, 1, NULL, NULL),
		('imei', 'B', DATE '2026-12-02', 3000000000, 1, NULL, NULL),
		-- Only international usage: share 1.
		('mdn', 'C', DATE '2026-11-02', 10, 0, 0, 10)`)
	got := rowsOf(t, w.DB(), `SELECT device_kind, device_id, strftime(month, '%Y-%m-%d'), bytes_used, sms_used,
		international_usage, domestic_usage, international_share
		FROM usage_monthly ORDER BY device_kind, device_id, month`)
	want := []string{
		"iccid|A|2026-10-01|100|1|25|75|0.25",
		"iccid|A|2026-11-01|500|2|50|150|0.25",
		"imei|B|2026-11-01|5|0|0|0|NULL",
		"imei|B|2026-12-01|6000000000|2|NULL|NULL|NULL",
		"mdn|C|2026-11-01|10|0|10|0|1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage_monthly mismatch (-want +got):\n%s", diff)
	}
	if got := one(t, w, `SELECT typeof(month) || ',' || typeof(bytes_used) || ',' || typeof(international_share) FROM usage_monthly LIMIT 1`); got != "DATE,BIGINT,DOUBLE" {
		t.Errorf("types %s, want DATE,BIGINT,DOUBLE", got)
	}
}

func TestDeviceLatest(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	defer w.Close()
	exec(t, w,
		`INSERT INTO devices (device_kind, device_id, account_name, iccid, imei, mdn, state, last_seen_at) VALUES
			('iccid', 'A', '0000123456-00001', 'A', '350000000000001', '5550000001', 'active', '2026-11-22 02:00:00+00'),
			('imei', 'B', '0000123456-00001', NULL, 'B', NULL, 'deactive', '2026-11-20 02:00:00+00')`,
		// Usage of A on two days, and of a device not (or no longer) in
		// devices: the view starts from devices, so it does not appear.
		`INSERT INTO usage_daily (device_kind, device_id, usage_date, bytes_used) VALUES
			('iccid', 'A', DATE '2026-11-20', 1), ('iccid', 'A', DATE '2026-11-21', 2),
			('iccid', 'GONE', DATE '2026-11-21', 3)`,
		// Two sessions of A, the second still open (its Start is later than
		// every Stop, and must not count as an end).
		`INSERT INTO connection_events (device_kind, device_id, occurred_at, event, account_session_id) VALUES
			('iccid', 'A', '2026-11-21 08:00:00+00', 'Start', 's1'),
			('iccid', 'A', '2026-11-21 09:30:00-05:00', 'Stop', 's1'),
			('iccid', 'A', '2026-11-21 15:00:00+00', 'Start', 's2'),
			('iccid', 'A', '2026-11-21 12:00:00+00', 'Stop', 's0')`,
		// Two billing cycles of A: the later one counts.
		`INSERT INTO rated_usage (device_kind, device_id, billing_start_date, billing_end_date, data_usage, unit, data_usage_bytes) VALUES
			('iccid', 'A', '2026-10-01 00:00:00+00', '2026-10-31 00:00:00+00', 7.5, 'MB', 7500000),
			('iccid', 'A', '2026-11-01 00:00:00+00', '2026-11-30 00:00:00+00', 1.25, 'GB', 1250000000)`,
	)
	got := rowsOf(t, w.DB(), `SELECT device_kind, device_id, account_name, iccid, imei, mdn, msisdn, meid, esn, eid, imsi,
		state, last_seen_at, strftime(last_usage_date, '%Y-%m-%d'), last_session_end,
		billing_start_date, billing_end_date, billing_data_usage, billing_unit, billing_data_usage_bytes
		FROM device_latest ORDER BY device_kind, device_id`)
	want := []string{
		"iccid|A|0000123456-00001|A|350000000000001|5550000001|NULL|NULL|NULL|NULL|NULL|active|2026-11-22T02:00:00Z|2026-11-21|2026-11-21T14:30:00Z|2026-11-01T00:00:00Z|2026-11-30T00:00:00Z|1.25|GB|1250000000",
		"imei|B|0000123456-00001|NULL|B|NULL|NULL|NULL|NULL|NULL|NULL|deactive|2026-11-20T02:00:00Z|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("device_latest mismatch (-want +got):\n%s", diff)
	}
}

// A warehouse made before the views existed, or with an older definition
// of one, gets the current views and their comments when it is opened.
func TestViewsMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := open(t, path)
	exec(t, w,
		`DROP VIEW usage_monthly`,
		`CREATE OR REPLACE VIEW device_latest AS SELECT 1 AS stale`,
	)
	w.Close()
	w = open(t, path)
	defer w.Close()
	for _, v := range []string{"usage_monthly", "device_latest"} {
		if got := one(t, w, `SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND comment <> ''`, v); got != "1" {
			t.Errorf("view %s with a comment: %s, want 1", v, got)
		}
	}
	if got := one(t, w, `SELECT count(*) FROM duckdb_columns() WHERE table_name = 'device_latest' AND column_name = 'stale'`); got != "0" {
		t.Error("device_latest kept its stale definition")
	}
	if got := one(t, w, `SELECT comment FROM duckdb_columns() WHERE table_name = 'usage_monthly' AND column_name = 'month'`); got != "First day of the UTC calendar month." {
		t.Errorf("usage_monthly.month comment %q", got)
	}
}
