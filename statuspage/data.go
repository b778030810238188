package statuspage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/load"
)

// Bounds on what one request reads: the page lists at most these many
// runs, top devices and drill-down rows, whatever the warehouse holds.
const (
	RunsShown      = 30
	TopShown       = 10
	DrillRows      = 200
	UsageDaysShown = 60
)

// FleetDays are the spans the fleet's daily data and SMS can be shown
// over; the first is the default.
var FleetDays = []int{30, 90, 365}

// Coverage states, in the order the heatmap draws them.
var coverageStates = []string{"settled", "provisional", "pending", "missing"}

// DayCoverage is one history stream's devices in each coverage state on
// one UTC day.
type DayCoverage struct {
	Day    time.Time
	Counts [4]int64 // settled, provisional, pending, missing
}

// Total is the devices wanted that day.
func (d DayCoverage) Total() int64 { return d.Counts[0] + d.Counts[1] + d.Counts[2] + d.Counts[3] }

// StreamCoverage is one history stream's coverage ledger per day.
type StreamCoverage struct {
	Stream string
	Days   []DayCoverage
}

// readCoverageDays counts per stream and day the devices in each state.
// It is arithmetic on the coverage view's one row per device and stream
// (a device-stream's states are consecutive stretches: settled, then
// provisional, then missing or pending), not a scan of coverage_days'
// row per device-day: each stretch adds one at its first day and takes
// one away after its last, and a running sum over the days counts.
func readCoverageDays(ctx context.Context, db *sql.DB) ([]StreamCoverage, error) {
	rows, err := db.QueryContext(ctx, `WITH c AS (
		SELECT stream, first_day AS f, CAST(last_day + 1 AS DATE) AS e,
		       covered_from AS lo, CAST(covered_from + settled_days AS DATE) AS s,
		       CAST(covered_until + 1 AS DATE) AS hi,
		       CAST(last_day + 1 - pending_days AS DATE) AS p, pending_days
		FROM coverage WHERE last_day >= first_day
	), ev AS (
		SELECT stream, f AS day, 0 AS st, 0 AS pr, 0 AS pe, 1 AS w FROM c
		UNION ALL SELECT stream, e, 0, 0, 0, -1 FROM c
		UNION ALL SELECT stream, lo, 1, 0, 0, 0 FROM c WHERE lo IS NOT NULL
		UNION ALL SELECT stream, s, -1, 1, 0, 0 FROM c WHERE lo IS NOT NULL
		UNION ALL SELECT stream, hi, 0, -1, 0, 0 FROM c WHERE lo IS NOT NULL
		UNION ALL SELECT stream, p, 0, 0, 1, 0 FROM c WHERE pending_days > 0
		UNION ALL SELECT stream, e, 0, 0, -1, 0 FROM c WHERE pending_days > 0
	), d AS (
		SELECT stream, day, sum(st) AS st, sum(pr) AS pr, sum(pe) AS pe, sum(w) AS w FROM ev GROUP BY stream, day
	), span AS (
		SELECT s.stream, CAST(t.day AS DATE) AS day
		FROM (SELECT DISTINCT stream FROM c) s,
		     (SELECT min(f) AS f, max(e) AS e FROM c) r,
		     range(r.f, r.e, INTERVAL 1 DAY) AS t(day)
	)
	SELECT span.stream, span.day,
	       sum(coalesce(d.st, 0)) OVER w, sum(coalesce(d.pr, 0)) OVER w, sum(coalesce(d.pe, 0)) OVER w, sum(coalesce(d.w, 0)) OVER w
	FROM span LEFT JOIN d USING (stream, day)
	WINDOW w AS (PARTITION BY span.stream ORDER BY span.day ROWS UNBOUNDED PRECEDING)
	ORDER BY span.stream DESC, span.day`)
	if err != nil {
		return nil, fmt.Errorf("read the coverage ledger per day: %w", err)
	}
	defer rows.Close()
	var out []StreamCoverage
	for rows.Next() {
		var stream string
		var day time.Time
		var st, pr, pe, w int64
		if err := rows.Scan(&stream, &day, &st, &pr, &pe, &w); err != nil {
			return nil, fmt.Errorf("read the coverage ledger per day: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Stream != stream {
			out = append(out, StreamCoverage{Stream: stream})
		}
		sc := &out[len(out)-1]
		sc.Days = append(sc.Days, DayCoverage{Day: day.UTC(), Counts: [4]int64{st, pr, pe, max(0, w-st-pr-pe)}})
	}
	return out, rows.Err()
}

// Run is one run of the history.
type Run struct {
	ID, Kind, Status string
	Started          time.Time
	Finished         *time.Time
	Devices, Failed  int64
	Requests         int64
	Rows             int64 // rows inserted and updated, every table
	Rejected         int64
	Error            string
}

// Duration is how long the run took (until now while it runs).
func (r Run) Duration(now time.Time) time.Duration {
	end := now
	if r.Finished != nil {
		end = *r.Finished
	}
	return max(0, end.Sub(r.Started))
}

// runsOf are the status document's runs as the page draws them.
func runsOf(recent []load.RecentRun) []Run {
	out := make([]Run, 0, len(recent))
	for _, rr := range recent {
		if rr.StartedAt == nil {
			continue
		}
		r := Run{ID: rr.ID, Kind: rr.Kind, Status: rr.Status, Started: *rr.StartedAt, Finished: rr.FinishedAt,
			Devices: int64(rr.Devices), Failed: int64(rr.DevicesFailed), Requests: rr.Requests, Rejected: rr.Rejected, Error: rr.Error}
		for _, n := range rr.Rows {
			r.Rows += n
		}
		out = append(out, r)
	}
	return out
}

// lastSuccess reads when the last ok, partial or budget run covering each
// stream finished.
func lastSuccess(ctx context.Context, db *sql.DB) (map[string]time.Time, error) {
	rows, err := db.QueryContext(ctx, `SELECT s.stream, max(finished_at)
		FROM sync_runs, unnest(string_split(coalesce(streams, ''), ',')) AS s(stream)
		WHERE status IN ('ok', 'partial', 'budget') AND finished_at IS NOT NULL GROUP BY s.stream`)
	if err != nil {
		return nil, fmt.Errorf("read the last successful runs: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var s string
		var t time.Time
		if err := rows.Scan(&s, &t); err != nil {
			return nil, fmt.Errorf("read the last successful runs: %w", err)
		}
		out[s] = t.UTC()
	}
	return out, rows.Err()
}

// readRates reads a run's request rate per minute.
func readRates(ctx context.Context, db *sql.DB, runID string) ([]load.RateMinute, error) {
	rows, err := db.QueryContext(ctx, `SELECT minute, requests, throttled, rate_limit FROM sync_run_rates
		WHERE run_id = ? ORDER BY minute`, runID)
	if err != nil {
		return nil, fmt.Errorf("read the run's request rate: %w", err)
	}
	defer rows.Close()
	var out []load.RateMinute
	for rows.Next() {
		var m load.RateMinute
		var limit sql.NullFloat64
		if err := rows.Scan(&m.Minute, &m.Requests, &m.Throttled, &limit); err != nil {
			return nil, fmt.Errorf("read the run's request rate: %w", err)
		}
		m.Minute, m.RateLimit = m.Minute.UTC(), limit.Float64
		out = append(out, m)
	}
	return out, rows.Err()
}

// FleetDay is the fleet's usage on one UTC day.
type FleetDay struct {
	Day   time.Time
	Bytes int64
	SMS   int64
}

// readFleet sums usage_daily per day over the days days up to today.
func readFleet(ctx context.Context, db *sql.DB, today time.Time, days int) ([]FleetDay, error) {
	from := today.AddDate(0, 0, -(days - 1))
	// The days as DATE parameters: compared with a TIMESTAMPTZ, every
	// usage row would be cast, and the table's zone maps left unused.
	f, l := from.Format(time.DateOnly), today.Format(time.DateOnly)
	rows, err := db.QueryContext(ctx, `SELECT CAST(t.day AS DATE), coalesce(u.b, 0), coalesce(u.s, 0)
		FROM range(CAST($1 AS DATE), CAST($2 AS DATE) + 1, INTERVAL 1 DAY) AS t(day)
		LEFT JOIN (SELECT usage_date, sum(bytes_used) AS b, sum(sms_used) AS s FROM usage_daily
		           WHERE usage_date BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE) GROUP BY usage_date) u ON u.usage_date = CAST(t.day AS DATE)
		ORDER BY 1`, f, l)
	if err != nil {
		return nil, fmt.Errorf("read the fleet's daily usage: %w", err)
	}
	defer rows.Close()
	var out []FleetDay
	for rows.Next() {
		var d FleetDay
		var b, s sql.NullFloat64 // sum of BIGINT is HUGEINT
		if err := rows.Scan(&d.Day, &b, &s); err != nil {
			return nil, fmt.Errorf("read the fleet's daily usage: %w", err)
		}
		d.Day, d.Bytes, d.SMS = d.Day.UTC(), int64(b.Float64), int64(s.Float64)
		out = append(out, d)
	}
	return out, rows.Err()
}

// TopDevice is one of the devices that used the most data this month.
type TopDevice struct {
	Kind, ID   string
	Bytes, SMS int64
}

func readTop(ctx context.Context, db *sql.DB, today time.Time, limit int) ([]TopDevice, error) {
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	rows, err := db.QueryContext(ctx, `SELECT device_kind, device_id, CAST(sum(bytes_used) AS BIGINT) AS b, CAST(sum(sms_used) AS BIGINT)
		FROM usage_daily WHERE usage_date BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)
		GROUP BY device_kind, device_id HAVING sum(bytes_used) > 0 OR sum(sms_used) > 0
		ORDER BY b DESC NULLS LAST, device_kind, device_id LIMIT ?`, month.Format(time.DateOnly), today.Format(time.DateOnly), limit)
	if err != nil {
		return nil, fmt.Errorf("read this month's top devices: %w", err)
	}
	defer rows.Close()
	var out []TopDevice
	for rows.Next() {
		var d TopDevice
		var b, s sql.NullInt64
		if err := rows.Scan(&d.Kind, &d.ID, &b, &s); err != nil {
			return nil, fmt.Errorf("read this month's top devices: %w", err)
		}
		d.Bytes, d.SMS = b.Int64, s.Int64
		out = append(out, d)
	}
	return out, rows.Err()
}
