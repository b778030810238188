package load

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/config/logging"
	"github.com/thingsync/thingsync/schema"
)

// device_history keeps one row per device and period in which its state,
// service plan and groups stayed the same. It is maintained from each
// batch of the device list, set-based on the batch's staged rows (the
// devices upsert leaves them deduplicated in its staging table): only the
// devices whose values differ from their open period are touched, one
// UPDATE closing their periods and one INSERT opening the new ones. A
// listing that shows what the history already says writes nothing, so a
// rerun changes nothing.

// historyChanges are the staged devices whose listing starts a period: no
// open period, or an open one with other values that began before this
// listing (an older listing replayed cannot rewrite history).
const historyChanges = `CREATE OR REPLACE TEMP TABLE stage_history AS
SELECT s.device_kind, s.device_id, s.state, s.service_plan, s.group_names, s.last_seen_at AS seen_at,
       h.valid_from IS NOT NULL AS has_open
FROM %s s
LEFT JOIN device_history h ON h.valid_to IS NULL AND h.device_kind = s.device_kind AND h.device_id = s.device_id
WHERE s.last_seen_at IS NOT NULL AND (h.valid_from IS NULL OR (s.last_seen_at > h.valid_from AND (
  h.state IS DISTINCT FROM s.state OR h.service_plan IS DISTINCT FROM s.service_plan
  OR list_sort(h.group_names) IS DISTINCT FROM list_sort(s.group_names))))`

// keepHistory folds the devices batch staged in stage (the devices
// upsert's deduplicated staging table) into device_history. It returns the
// periods opened and closed.
func (w *Warehouse) keepHistory(ctx context.Context, conn *sql.Conn, stage string, now time.Time) (TableTotals, error) {
	start := time.Now()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(historyChanges, schema.Ident(stage))); err != nil {
		return TableTotals{}, fmt.Errorf("compare the device list with device_history: %w", err)
	}
	var tt TableTotals
	if err := conn.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE has_open) FROM stage_history`).Scan(&tt.Inserted, &tt.Updated); err != nil {
		return TableTotals{}, fmt.Errorf("count device_history changes: %w", err)
	}
	if tt.Updated > 0 {
		if _, err := conn.ExecContext(ctx, `UPDATE device_history h SET valid_to = c.seen_at, loaded_at = $1
			FROM stage_history c WHERE c.has_open AND h.valid_to IS NULL AND h.device_kind = c.device_kind AND h.device_id = c.device_id`, now); err != nil {
			return TableTotals{}, fmt.Errorf("close device_history periods: %w", err)
		}
	}
	if tt.Inserted > 0 {
		if _, err := conn.ExecContext(ctx, `INSERT INTO device_history (device_kind, device_id, valid_from, valid_to, state, service_plan, group_names, loaded_at)
			SELECT device_kind, device_id, seen_at, NULL, state, service_plan, group_names, $1 FROM stage_history
			ORDER BY device_kind, device_id`, now); err != nil {
			return TableTotals{}, fmt.Errorf("open device_history periods: %w", err)
		}
	}
	w.log.Debug().Int64("opened", tt.Inserted).Int64("closed", tt.Updated).Dur(logging.DurationMS, time.Since(start)).Msg("device_history kept")
	return tt, nil
}

// CloseVanished ends the open periods of devices that a complete reading
// of the device list, started at listedFrom, did not show: they left the
// account (or the list) at that listing. It returns how many it closed. A
// device that comes back opens a new period.
func (w *Warehouse) CloseVanished(ctx context.Context, listedFrom, now time.Time) (int64, error) {
	var n int64
	err := w.Transact(ctx, func(conn *sql.Conn) error {
		r, err := conn.ExecContext(ctx, `UPDATE device_history h SET valid_to = $1, loaded_at = $2
			FROM devices d WHERE h.valid_to IS NULL AND d.device_kind = h.device_kind AND d.device_id = h.device_id
			AND d.last_seen_at < $1 AND h.valid_from < $1`, listedFrom.UTC(), now.UTC())
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("close the device_history periods of devices the device list no longer shows: %w", err)
	}
	return n, nil
}

// seedHistory gives every device of an older warehouse, made before
// device_history existed, an open period from when the device list last
// showed it: that is all the file knows of its past.
func seedHistory(ctx context.Context, conn *sql.Conn) error {
	t := schema.MustLookup(schema.DeviceHistory)
	if err := execAll(ctx, conn, append([]string{t.CreateSQL()}, t.CommentSQL()...)); err != nil {
		return fmt.Errorf("create %s: %w", t.Name, err)
	}
	_, err := conn.ExecContext(ctx, `INSERT INTO device_history (device_kind, device_id, valid_from, valid_to, state, service_plan, group_names, loaded_at)
		SELECT d.device_kind, d.device_id, d.last_seen_at, NULL, d.state, d.service_plan, d.group_names, now()
		FROM devices d WHERE d.last_seen_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM device_history h WHERE h.device_kind = d.device_kind AND h.device_id = d.device_id)
		ORDER BY d.device_kind, d.device_id`)
	return err
}
