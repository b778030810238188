package statuspage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// dayState is the state of one device's stream on a day, from the
// coverage view's stretches, as coverage_days decides it.
const dayState = `CASE WHEN covered_from IS NOT NULL AND $2 >= covered_from AND $2 < covered_from + settled_days THEN 'settled'
	WHEN covered_from IS NOT NULL AND $2 >= covered_from AND $2 <= covered_until THEN 'provisional'
	WHEN pending_days > 0 AND $2 > last_day - pending_days THEN 'pending'
	ELSE 'missing' END`

// DayRow is one device's state on the day drilled into.
type DayRow struct {
	Kind, ID, State string
	FetchedAt       *time.Time
}

// DayDrill is one stream's devices on one day: how many in each state,
// and the first DrillRows of them (of one state when asked), the missing
// first.
type DayDrill struct {
	Stream string
	Day    time.Time
	State  string // the state listed; empty: all
	Counts map[string]int64
	Rows   []DayRow
}

func readDay(ctx context.Context, db *sql.DB, stream string, day time.Time, state string) (*DayDrill, error) {
	dd := &DayDrill{Stream: stream, Day: day, State: state, Counts: map[string]int64{}}
	rows, err := db.QueryContext(ctx, `SELECT `+dayState+` AS state, count(*) FROM coverage
		WHERE stream = $1 AND $2 BETWEEN first_day AND last_day GROUP BY state`, stream, day)
	if err != nil {
		return nil, fmt.Errorf("read the day's coverage: %w", err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the day's coverage: %w", err)
		}
		dd.Counts[s] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the day's coverage: %w", err)
	}
	rows, err = db.QueryContext(ctx, `SELECT device_kind, device_id, state, fetched_at FROM (
		SELECT device_kind, device_id, `+dayState+` AS state, fetched_at FROM coverage
		WHERE stream = $1 AND $2 BETWEEN first_day AND last_day)
		WHERE $3 = '' OR state = $3
		ORDER BY list_position(['missing', 'pending', 'provisional', 'settled'], state), device_kind, device_id LIMIT $4`,
		stream, day, state, DrillRows)
	if err != nil {
		return nil, fmt.Errorf("read the day's devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r DayRow
		var fetched sql.NullTime
		if err := rows.Scan(&r.Kind, &r.ID, &r.State, &fetched); err != nil {
			return nil, fmt.Errorf("read the day's devices: %w", err)
		}
		r.FetchedAt = timePtr(fetched)
		dd.Rows = append(dd.Rows, r)
	}
	return dd, rows.Err()
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// DeviceDrill is what the warehouse holds about one device.
type DeviceDrill struct {
	Kind, ID    string
	Found       bool
	State       string
	FirstSeen   *time.Time
	LastSeen    *time.Time
	Checkpoints []Checkpoint
	Coverage    []CoverageRow
	Usage       []FleetDay // its last UsageDaysShown days of usage, newest first
}

// Checkpoint is one of the device's streams' checkpoint.
type Checkpoint struct {
	Stream                             string
	Settled, Fetched, Updated, IdleSin *time.Time
	Failures                           int64
	Retired                            bool
	LastError                          string
}

// CoverageRow is one of the device's coverage ledger rows.
type CoverageRow struct {
	Stream                                      string
	First, Last                                 time.Time
	Settled, Provisional, Pending, Missing, All int64
}

func readDevice(ctx context.Context, db *sql.DB, kind, id string, redact func(string) string) (*DeviceDrill, error) {
	dv := &DeviceDrill{Kind: kind, ID: id}
	var state sql.NullString
	var first, last sql.NullTime
	err := db.QueryRowContext(ctx, `SELECT state, first_seen_at, last_seen_at FROM devices WHERE device_kind = ? AND device_id = ?`,
		kind, id).Scan(&state, &first, &last)
	switch {
	case err == sql.ErrNoRows:
	case err != nil:
		return nil, fmt.Errorf("read the device: %w", err)
	default:
		dv.Found, dv.State, dv.FirstSeen, dv.LastSeen = true, state.String, timePtr(first), timePtr(last)
	}
	rows, err := db.QueryContext(ctx, `SELECT stream, settled_until, fetched_until, updated_at, idle_since,
		coalesce(failures, 0), coalesce(retired, false), coalesce(last_error, '')
		FROM sync_checkpoints WHERE device_kind = ? AND device_id = ? ORDER BY stream`, kind, id)
	if err != nil {
		return nil, fmt.Errorf("read the device's checkpoints: %w", err)
	}
	for rows.Next() {
		var c Checkpoint
		var s, f, u, i sql.NullTime
		if err := rows.Scan(&c.Stream, &s, &f, &u, &i, &c.Failures, &c.Retired, &c.LastError); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the device's checkpoints: %w", err)
		}
		c.Settled, c.Fetched, c.Updated, c.IdleSin = timePtr(s), timePtr(f), timePtr(u), timePtr(i)
		c.LastError = oneLine(redact(c.LastError), 2000)
		dv.Checkpoints = append(dv.Checkpoints, c)
		dv.Found = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the device's checkpoints: %w", err)
	}
	rows, err = db.QueryContext(ctx, `SELECT stream, first_day, last_day, settled_days, provisional_days, pending_days, missing_days
		FROM coverage WHERE device_kind = ? AND device_id = ? ORDER BY stream DESC`, kind, id)
	if err != nil {
		return nil, fmt.Errorf("read the device's coverage: %w", err)
	}
	for rows.Next() {
		var c CoverageRow
		if err := rows.Scan(&c.Stream, &c.First, &c.Last, &c.Settled, &c.Provisional, &c.Pending, &c.Missing); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the device's coverage: %w", err)
		}
		c.All = c.Settled + c.Provisional + c.Pending + c.Missing
		dv.Coverage = append(dv.Coverage, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the device's coverage: %w", err)
	}
	rows, err = db.QueryContext(ctx, `SELECT usage_date, coalesce(bytes_used, 0), coalesce(sms_used, 0) FROM usage_daily
		WHERE device_kind = ? AND device_id = ? ORDER BY usage_date DESC LIMIT ?`, kind, id, UsageDaysShown)
	if err != nil {
		return nil, fmt.Errorf("read the device's usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d FleetDay
		if err := rows.Scan(&d.Day, &d.Bytes, &d.SMS); err != nil {
			return nil, fmt.Errorf("read the device's usage: %w", err)
		}
		d.Day = d.Day.UTC()
		dv.Usage = append(dv.Usage, d)
	}
	return dv, rows.Err()
}
