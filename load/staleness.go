package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// VisitRuns is how many of the last runs over the fleet a device may go
// unreached before status and /metrics count it as not visited: a fleet
// larger than one run's budget is reached over several runs, in turn.
const VisitRuns = 3

// FailingRuns is how many runs in a row a device's fetches of a stream may
// fail before /metrics counts it as failing (thingsync_devices_failing): a
// failure counts once per run and stream (sync_checkpoints.failures), and
// one or two failed nights are often the API's, three rarely are.
const FailingRuns = 3

// LearnedListRead names, in sync_learned, when a run last started that
// read the whole device list: a device it did not list has left the
// account, and is not counted as waiting for a visit.
const LearnedListRead = "device_list_read"

// NotVisited counts the devices that none of the last Runs runs over the
// fleet reached.
type NotVisited struct {
	Runs    int `json:"runs"`
	Devices int `json:"devices"`
}

// Staleness is how current the warehouse is across the fleet: per stream
// the oldest and median settled_until of the devices still asked, the
// devices the last runs did not reach, and those that fail run after run.
type Staleness struct {
	Streams    []StreamStatus
	NotVisited *NotVisited
	// Failing counts the devices whose fetches of some stream failed in
	// each of the last FailingRuns runs that asked for it.
	Failing int
}

// Staleness reads how current the warehouse is across the fleet.
func (w *Warehouse) Staleness(ctx context.Context) (Staleness, error) {
	doc := EmptyStatus()
	if err := (statusReader{db: w.db}).streams(ctx, &doc); err != nil {
		return Staleness{}, err
	}
	nv, err := readNotVisited(ctx, w.db)
	if err != nil {
		return Staleness{}, err
	}
	var failing int
	err = w.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT DISTINCT device_kind, device_id
		FROM sync_checkpoints WHERE coalesce(failures, 0) >= ?)`, FailingRuns).Scan(&failing)
	if err != nil {
		return Staleness{}, fmt.Errorf("count failing devices: %w", err)
	}
	return Staleness{Streams: doc.Streams, NotVisited: nv, Failing: failing}, nil
}

// readNotVisited counts the devices listed since the list was last read
// whole that none of the last VisitRuns runs over the fleet reached (nil:
// no such run yet). Runs over the fleet are syncs and scheduled runs that
// got as far as walking the list.
func readNotVisited(ctx context.Context, db *sql.DB) (*NotVisited, error) {
	var since sql.NullTime
	var runs int
	err := db.QueryRowContext(ctx, `SELECT min(started_at), count(*) FROM (SELECT started_at FROM sync_runs
		WHERE kind IN ('sync', 'scheduled') AND status IN ('ok', 'partial', 'budget', 'interrupted')
		ORDER BY started_at DESC LIMIT ?)`, VisitRuns).Scan(&since, &runs)
	if err != nil {
		return nil, fmt.Errorf("read the last runs: %w", err)
	}
	if runs == 0 || !since.Valid {
		return nil, nil
	}
	var listRead sql.NullTime
	var text string
	err = db.QueryRowContext(ctx, `SELECT value FROM sync_learned WHERE name = ?`, LearnedListRead).Scan(&text)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read when the device list was last read whole: %w", err)
	default:
		if t, perr := time.Parse(time.RFC3339Nano, text); perr == nil {
			listRead = sql.NullTime{Time: t, Valid: true}
		}
	}
	nv := &NotVisited{Runs: runs}
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM devices d
		LEFT JOIN device_visits v USING (device_kind, device_id)
		WHERE (v.visited_at IS NULL OR v.visited_at < ?) AND (?::TIMESTAMPTZ IS NULL OR d.last_seen_at >= ?)`,
		since.Time, listRead, listRead).Scan(&nv.Devices)
	if err != nil {
		return nil, fmt.Errorf("count devices not visited: %w", err)
	}
	return nv, nil
}
