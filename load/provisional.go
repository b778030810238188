package load

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/schema"
)

// usage_daily.is_provisional is kept with the usage checkpoints, in their
// transaction, so it agrees with coverage_days at every commit.

// settlingFrom is the earliest usage day the checkpoints staged in
// stage_cp are about to settle: the old settled_until of the usage
// checkpoints that move forward (zero: none moves). Read before they are
// stored.
func settlingFrom(ctx context.Context, conn *sql.Conn) (time.Time, error) {
	var from sql.NullTime
	// Without a settled_until, what was loaded before starts at
	// covered_from.
	err := conn.QueryRowContext(ctx, `SELECT min(coalesce(c.settled_until, c.covered_from, TIMESTAMPTZ '1970-01-01 00:00:00+00'))
		FROM stage_cp s JOIN sync_checkpoints c ON c.stream = s.stream AND c.device_kind = s.device_kind AND c.device_id = s.device_id
		WHERE s.stream = 'usage' AND s.err IS NULL AND s.settled IS NOT NULL AND (c.settled_until IS NULL OR s.settled > c.settled_until)`).Scan(&from)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the usage days about to settle: %w", err)
	}
	return from.Time, nil
}

// settleUsage keeps usage_daily.is_provisional equal to what the usage
// checkpoints (just stored from stage_cp) say, in their transaction: a day
// is provisional from its device's settled_until on (every day, without a
// checkpoint). Two statements, each bounded so DuckDB's zone maps skip
// the rest of a large table: the rows the transaction wrote (their flag
// unset; loaded_at from written on, appended last), and the rows of days
// the checkpoints settled (from settleFrom, the earliest old
// settled_until that moved, on; flagged provisional until now).
func (w *Warehouse) settleUsage(ctx context.Context, conn *sql.Conn, settleFrom, written time.Time) error {
	start := time.Now()
	var n int64
	if !written.IsZero() {
		r, err := conn.ExecContext(ctx, `UPDATE usage_daily u SET is_provisional = coalesce(u.usage_date >= c.sd, true)
			FROM (SELECT DISTINCT s.device_kind, s.device_id, CAST(c.settled_until AT TIME ZONE 'UTC' AS DATE) AS sd
			      FROM stage_cp s LEFT JOIN sync_checkpoints c ON c.stream = s.stream AND c.device_kind = s.device_kind AND c.device_id = s.device_id
			      WHERE s.stream = 'usage' AND s.err IS NULL) c
			WHERE u.device_kind = c.device_kind AND u.device_id = c.device_id AND u.is_provisional IS NULL AND u.loaded_at >= $1`, written.UTC())
		if err != nil {
			return fmt.Errorf("flag the usage rows written: %w", err)
		}
		n, _ = r.RowsAffected()
	}
	if !settleFrom.IsZero() {
		// A date string: a time.Time cast to DATE would go through the
		// session's time zone.
		r, err := conn.ExecContext(ctx, `UPDATE usage_daily u SET is_provisional = false
			FROM (SELECT s.device_kind, s.device_id, CAST(c.settled_until AT TIME ZONE 'UTC' AS DATE) AS sd
			      FROM stage_cp s JOIN sync_checkpoints c ON c.stream = s.stream AND c.device_kind = s.device_kind AND c.device_id = s.device_id
			      WHERE s.stream = 'usage' AND s.err IS NULL) c
			WHERE u.device_kind = c.device_kind AND u.device_id = c.device_id AND u.is_provisional
			AND u.usage_date >= CAST($1 AS DATE) AND u.usage_date < c.sd`, schema.Day(settleFrom).Format(time.DateOnly))
		if err != nil {
			return fmt.Errorf("flag the usage days settled: %w", err)
		}
		m, _ := r.RowsAffected()
		n += m
	}
	if n > 0 || !written.IsZero() || !settleFrom.IsZero() {
		w.log.Debug().Int64("rows", n).Dur(logging.DurationMS, time.Since(start)).Msg("usage_daily is_provisional kept")
	}
	return nil
}
