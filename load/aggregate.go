package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// Aggregate request states, as aggregate_requests.status holds them.
const (
	RequestPending    = "pending"    // sent; nothing arrived yet
	RequestCompleted  = "completed"  // the "Request Completed Processing" notice arrived
	RequestReceived   = "received"   // the data is stored
	RequestSuperseded = "superseded" // asked again after its deadline
)

// completionNotice is the comment of the callback that announces a
// request's data; it carries no rows.
const completionNotice = "Request Completed Processing"

// ErrUnknownRequest: a callback for a requestId that is not waiting for
// one (never sent, superseded, or from somebody else).
var ErrUnknownRequest = errors.New("no pending aggregate request has this requestId")

// AggregateRequest is one promo aggregate usage request sent to ThingSpace.
type AggregateRequest struct {
	ID          string
	Start, End  time.Time
	Devices     []extract.DeviceID
	Status      string
	RequestedAt time.Time
}

// AddAggregateRequest records a request as pending, in its own
// transaction: the callback may arrive at any moment after the API answered.
func (w *Warehouse) AddAggregateRequest(ctx context.Context, r AggregateRequest) error {
	devs, err := json.Marshal(r.Devices)
	if err != nil {
		return err
	}
	_, err = w.db.ExecContext(ctx, `INSERT INTO aggregate_requests (request_id, start_time, end_time, devices, device_count, status, requested_at, deliveries)
		VALUES (?, ?, ?, ?::JSON, ?, 'pending', ?, 0)`, r.ID, r.Start.UTC(), r.End.UTC(), string(devs), len(r.Devices), r.RequestedAt.UTC())
	if err != nil {
		return fmt.Errorf("record aggregate request %s: %w", r.ID, err)
	}
	return nil
}

// Supersede closes a request whose callback did not come in time: the one
// that replaces it is next.
func (w *Warehouse) Supersede(ctx context.Context, oldID, newID string) error {
	_, err := w.db.ExecContext(ctx, `UPDATE aggregate_requests SET status = 'superseded', superseded_by = ?
		WHERE request_id = ? AND status IN ('pending', 'completed')`, newID, oldID)
	if err != nil {
		return fmt.Errorf("supersede aggregate request %s: %w", oldID, err)
	}
	return nil
}

// waitingForCallbacks is the states of an aggregate request whose
// callbacks have not all been taken in.
const waitingForCallbacks = `status IN ('pending', 'completed')`

// PendingCallbacks counts the aggregate requests still waiting for their
// callbacks.
func (w *Warehouse) PendingCallbacks(ctx context.Context) (int, error) {
	return countPending(ctx, w.db)
}

func countPending(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM aggregate_requests WHERE `+waitingForCallbacks).Scan(&n); err != nil {
		return 0, fmt.Errorf("count aggregate requests waiting for callbacks: %w", err)
	}
	return n, nil
}

// AggregateRequests lists the requests in the given states, oldest first.
func (w *Warehouse) AggregateRequests(ctx context.Context, states ...string) ([]AggregateRequest, error) {
	if len(states) == 0 {
		return nil, nil
	}
	args := make([]any, len(states))
	marks := make([]string, len(states))
	for i, s := range states {
		args[i], marks[i] = s, "?"
	}
	rows, err := w.db.QueryContext(ctx, `SELECT request_id, start_time, end_time, devices::VARCHAR, status, requested_at
		FROM aggregate_requests WHERE status IN (`+strings.Join(marks, ", ")+`) ORDER BY requested_at, request_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read aggregate requests: %w", err)
	}
	defer rows.Close()
	var out []AggregateRequest
	for rows.Next() {
		var r AggregateRequest
		var devs string
		if err := rows.Scan(&r.ID, &r.Start, &r.End, &devs, &r.Status, &r.RequestedAt); err != nil {
			return nil, fmt.Errorf("read aggregate requests: %w", err)
		}
		if err := json.Unmarshal([]byte(devs), &r.Devices); err != nil {
			return nil, fmt.Errorf("aggregate request %s: devices: %w", r.ID, err)
		}
		r.Start, r.End, r.RequestedAt = r.Start.UTC(), r.End.UTC(), r.RequestedAt.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// CallbackResult says what a delivery changed.
type CallbackResult struct {
	Notice    bool // the completion notice, no rows
	Duplicate bool // a repeat of a delivery already stored: nothing changed
	Rows      TableTotals
	Rejected  int
}

// AcceptCallback stores one callback delivery in one transaction: the rows
// of the devices the request asked for, for the period it asked for; the
// request's new state; the devices' aggregate checkpoints (settled once the
// period ended more than lookback before now). A requestId that is not
// pending is ErrUnknownRequest and changes nothing; a repeat of a stored
// delivery changes nothing.
func (w *Warehouse) AcceptCallback(ctx context.Context, cb extract.AggregateCallback, tf *transform.Transformer, now time.Time, lookback time.Duration) (CallbackResult, error) {
	var res CallbackResult
	err := w.Transact(ctx, func(conn *sql.Conn) (err error) {
		res, err = w.acceptCallback(ctx, conn, cb, tf, now, lookback)
		return err
	})
	return res, err
}

// acceptCallback is AcceptCallback inside its transaction.
func (w *Warehouse) acceptCallback(ctx context.Context, conn *sql.Conn, cb extract.AggregateCallback, tf *transform.Transformer, now time.Time, lookback time.Duration) (CallbackResult, error) {
	var res CallbackResult
	var (
		status     string
		start, end time.Time
		devs       string
	)
	err := conn.QueryRowContext(ctx, `SELECT status, start_time, end_time, devices::VARCHAR FROM aggregate_requests WHERE request_id = ?`,
		cb.RequestID).Scan(&status, &start, &end, &devs)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && status != RequestPending && status != RequestCompleted && status != RequestReceived) {
		return res, ErrUnknownRequest
	}
	if err != nil {
		return res, fmt.Errorf("look up aggregate request: %w", err)
	}
	data := cb.DeviceResponse.DevicePromoUsageResponse
	res.Notice = len(data) == 0 && strings.EqualFold(strings.TrimSpace(cb.Comment), completionNotice)
	switch {
	case res.Notice && status != RequestPending, !res.Notice && status == RequestReceived:
		res.Duplicate = true
		return res, nil
	case res.Notice:
		if _, err := conn.ExecContext(ctx, `UPDATE aggregate_requests SET status = 'completed', completed_at = ?, deliveries = deliveries + 1
			WHERE request_id = ?`, now, cb.RequestID); err != nil {
			return res, fmt.Errorf("record completion of %s: %w", cb.RequestID, err)
		}
	default:
		asked := map[extract.DeviceID]bool{}
		var ids []extract.DeviceID
		if err := json.Unmarshal([]byte(devs), &ids); err != nil {
			return res, fmt.Errorf("aggregate request %s: devices: %w", cb.RequestID, err)
		}
		for _, id := range ids {
			asked[extract.DeviceID{Kind: strings.ToLower(id.Kind), ID: id.ID}] = true
		}
		t := schema.MustLookup(schema.AggregateUsage)
		ki, ii, si, ei := t.Index("device_kind"), t.Index("device_id"), t.Index("start_time"), t.Index("end_time")
		tb := &tableBatch{}
		var rejects []transform.Reject
		var units []Unit
		settle := now.Add(-lookback)
		for _, p := range data {
			raw, _ := json.Marshal(p)
			row, err := tf.Aggregate(cb.RequestID, p, now)
			reason := ""
			switch {
			case err != nil:
				reason = err.Error()
			case !asked[extract.DeviceID{Kind: row.Values[ki].(string), ID: row.Values[ii].(string)}]:
				reason = fmt.Sprintf("aggregate usage of request %s: device %s:%s was not asked for", cb.RequestID, row.Values[ki], row.Values[ii])
			case !row.Values[si].(time.Time).Equal(start) || !row.Values[ei].(time.Time).Equal(end):
				reason = fmt.Sprintf("aggregate usage of request %s: period %s–%s is not the one asked for", cb.RequestID,
					row.Values[si].(time.Time).Format(time.RFC3339), row.Values[ei].(time.Time).Format(time.RFC3339))
			}
			if reason != "" {
				rejects = append(rejects, transform.Reject{Stream: schema.StreamAggregate, Reason: reason, Raw: raw})
				continue
			}
			tb.rows = append(tb.rows, row)
			tb.fresh = append(tb.fresh, false)
			dev := extract.DeviceID{Kind: row.Values[ki].(string), ID: row.Values[ii].(string)}
			cp := &CheckpointUpdate{Stream: schema.StreamAggregate, Device: dev, FetchedUntil: end.UTC()}
			if !end.After(settle) {
				cp.SettledUntil = end.UTC()
			}
			units = append(units, Unit{Checkpoint: cp})
		}
		if len(tb.rows) > 0 {
			tt, _, err := w.upsert(ctx, conn, t, tb, now, "")
			if err != nil {
				return res, fmt.Errorf("store aggregate usage of %s: %w", cb.RequestID, err)
			}
			res.Rows = tt
		}
		if err := w.storeRejects(ctx, conn, rejects, "", now); err != nil {
			return res, fmt.Errorf("store rejected aggregate usage: %w", err)
		}
		res.Rejected = len(rejects)
		if err := w.storeCheckpoints(ctx, conn, units, now); err != nil {
			return res, fmt.Errorf("store aggregate checkpoints: %w", err)
		}
		if _, err := conn.ExecContext(ctx, `UPDATE aggregate_requests SET status = 'received', received_at = ?, deliveries = deliveries + 1,
			completed_at = coalesce(completed_at, ?) WHERE request_id = ?`, now, now, cb.RequestID); err != nil {
			return res, fmt.Errorf("record data of %s: %w", cb.RequestID, err)
		}
		if err := dropStaging(ctx, conn); err != nil {
			return res, fmt.Errorf("drop staging: %w", err)
		}
	}
	return res, nil
}

// DeviceICCID is a device with the ICCID aggregate usage is asked by.
type DeviceICCID struct {
	Identity extract.DeviceID
	ICCID    string
}

// DevicesWithICCID lists the devices seen in the device list since seen
// that have an ICCID and are not deactivated.
func (w *Warehouse) DevicesWithICCID(ctx context.Context, seen time.Time) ([]DeviceICCID, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT device_kind, device_id, iccid FROM devices
		WHERE iccid IS NOT NULL AND iccid <> '' AND last_seen_at >= ? AND coalesce(lower(state), '') NOT LIKE 'deactive%'
		ORDER BY device_kind, device_id`, seen.UTC())
	if err != nil {
		return nil, fmt.Errorf("read devices with an ICCID: %w", err)
	}
	defer rows.Close()
	var out []DeviceICCID
	for rows.Next() {
		var d DeviceICCID
		if err := rows.Scan(&d.Identity.Kind, &d.Identity.ID, &d.ICCID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
