package load

import (
	"context"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/extract"
)

// Gap is a stretch of missing UTC days of one device's stream, From
// included, To excluded.
type Gap struct {
	Stream   string
	Device   extract.DeviceID
	From, To time.Time
}

// Gaps lists the missing days of the coverage ledger as contiguous
// stretches, for backfill --gaps.
func (w *Warehouse) Gaps(ctx context.Context) ([]Gap, error) {
	// A device-stream's loaded days are one stretch (schema/coverage.go):
	// what is missing lies before it, after it, or is everything.
	rows, err := w.db.QueryContext(ctx, `SELECT stream, device_kind, device_id, first_day, coalesce(covered_from, last_day + 1)
		  FROM coverage WHERE missing_days > 0 AND (covered_from IS NULL OR covered_from > first_day)
		UNION ALL
		SELECT stream, device_kind, device_id, covered_until + 1, last_day + 1
		  FROM coverage WHERE missing_days > 0 AND covered_until < last_day
		ORDER BY 1, 2, 3, 4`)
	if err != nil {
		return nil, fmt.Errorf("read coverage gaps: %w", err)
	}
	defer rows.Close()
	var out []Gap
	for rows.Next() {
		var g Gap
		if err := rows.Scan(&g.Stream, &g.Device.Kind, &g.Device.ID, &g.From, &g.To); err != nil {
			return nil, fmt.Errorf("read coverage gaps: %w", err)
		}
		g.From, g.To = g.From.UTC(), g.To.UTC()
		out = append(out, g)
	}
	return out, rows.Err()
}
