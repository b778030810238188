package load

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/schema"
)

// RateMinute is one minute of a run's API requests.
type RateMinute struct {
	Minute    time.Time
	Requests  int
	Throttled int
	// RateLimit is the ceiling the client kept at the end of the minute.
	RateLimit float64
}

// RecordRates keeps a run's request rate per minute in sync_run_rates
// (replacing what an earlier call kept for the run), and forgets the rates
// of all but the last schema.RunRatesKept runs.
func (w *Warehouse) RecordRates(ctx context.Context, runID string, minutes []RateMinute) error {
	return w.Transact(ctx, func(conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, `DELETE FROM sync_run_rates WHERE run_id = ?`, runID); err != nil {
			return fmt.Errorf("record the run's request rate: %w", err)
		}
		for _, m := range minutes {
			if _, err := conn.ExecContext(ctx, `INSERT INTO sync_run_rates VALUES (?, ?, ?, ?, ?)`,
				runID, m.Minute.UTC(), m.Requests, m.Throttled, m.RateLimit); err != nil {
				return fmt.Errorf("record the run's request rate: %w", err)
			}
		}
		_, err := conn.ExecContext(ctx, `DELETE FROM sync_run_rates WHERE run_id NOT IN
			(SELECT run_id FROM sync_runs ORDER BY started_at DESC NULLS LAST LIMIT ?) AND run_id <> ?`, schema.RunRatesKept, runID)
		if err != nil {
			return fmt.Errorf("forget older runs' request rates: %w", err)
		}
		return nil
	})
}
