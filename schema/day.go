package schema

import "time"

// Day is the start of t's UTC day: the warehouse's days (usage_date, the
// coverage ledger, checkpoints' day bounds) are UTC dates, and the DuckDB
// driver turns a time.Time into a DATE by Unix seconds, so a date is always
// built as a UTC midnight.
func Day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// RetentionFloor is the oldest instant the API still serves history for: it
// keeps 12 months, counted from the start of today (UTC).
func RetentionFloor(now time.Time) time.Time {
	return Day(now).AddDate(-1, 0, 0)
}
