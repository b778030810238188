package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// Gap is a stretch of missing UTC days of one device's stream, From
// included, To excluded.
type Gap struct {
	Stream   string
	Device   extract.DeviceID
	From, To time.Time
}

// Gaps lists the missing days of the coverage ledger as contiguous
// stretches, for backfill --gaps. Pending days (after the last fetch of a
// device the idle rule skips) are not gaps: the rule reads them again.
func (w *Warehouse) Gaps(ctx context.Context) ([]Gap, error) {
	// A device-stream's loaded days are one stretch (schema/coverage.go):
	// what is missing lies before it, after it, or is everything.
	rows, err := w.db.QueryContext(ctx, `SELECT stream, device_kind, device_id, first_day, coalesce(covered_from, last_day + 1)
		  FROM coverage WHERE missing_days > 0 AND (covered_from IS NULL OR covered_from > first_day)
		UNION ALL
		SELECT stream, device_kind, device_id, covered_until + 1, last_day + 1
		  FROM coverage WHERE missing_days > 0 AND covered_until < last_day AND pending_days = 0
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

// identifierColumns are the devices table's columns that hold a device
// identifier, by the kind a user names one with.
var identifierColumns = []string{"iccid", "imei", "meid", "esn", "mdn", "msisdn", "eid", "imsi"}

// ResolveDevices maps each of ids, an identifier of any kind the devices
// table holds (imei:… for a device known by its ICCID), to the identity the
// warehouse keys that device by. An id no device carries is left out.
func (w *Warehouse) ResolveDevices(ctx context.Context, ids []extract.DeviceID) (map[extract.DeviceID]extract.DeviceID, error) {
	out := make(map[extract.DeviceID]extract.DeviceID, len(ids))
	for _, id := range ids {
		kind := strings.ToLower(id.Kind)
		q := `SELECT device_kind, device_id FROM devices WHERE device_kind = $1 AND device_id = $2`
		if slices.Contains(identifierColumns, kind) {
			// kind is one of the fixed names above, never the user's text.
			q += ` OR ` + schema.Ident(kind) + ` = $2`
		}
		var got extract.DeviceID
		err := w.db.QueryRowContext(ctx, q+` ORDER BY device_kind, device_id LIMIT 1`, kind, id.ID).Scan(&got.Kind, &got.ID)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up device %s:%s: %w", kind, id.ID, err)
		}
		out[id] = got
	}
	return out, nil
}
