package load

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/thingsync/thingsync/internal/clip"
)

// StatusListed caps the failing devices and pending requests a Status
// lists; their totals count them all.
const StatusListed = 10

// Status is where the warehouse stands: each stream's checkpoints, the
// coverage ledger, the last runs, the aggregate requests still waiting and
// the records that could not be loaded. The status command prints it, as
// is with --format json, so its field names are a documented interface.
// Lists are [] rather than null when empty: scripts iterate them.
type Status struct {
	Streams        []StreamStatus   `json:"streams"`
	FailingTotal   int              `json:"failing_devices_total"`
	FailingDevices []FailingDevice  `json:"failing_devices"`
	Coverage       *CoverageSummary `json:"coverage"`
	Runs           []RecentRun      `json:"runs"`
	PendingTotal   int              `json:"pending_requests_total"`
	Pending        []PendingRequest `json:"pending_requests"`
	RejectedTotal  int              `json:"rejected_total"`
	Rejected       map[string]int   `json:"rejected_by_stream"`
	// NotVisited counts the devices the last runs over the fleet did not
	// reach (nil before the first run).
	NotVisited *NotVisited `json:"not_visited"`
}

// StreamStatus is one stream's checkpoints.
type StreamStatus struct {
	Name    string `json:"stream"`
	Devices int    `json:"devices"`
	Retired int    `json:"retired"`
	// Oldest, Median and Newest settled_until of the devices still asked
	// (retired and idle ones say nothing about how current the warehouse
	// is).
	Oldest *time.Time `json:"oldest_settled"`
	Median *time.Time `json:"median_settled"`
	Newest *time.Time `json:"newest_settled"`
	// Behind: devices not settled for more than twice the stream's
	// lookback (nil for a stream without one).
	Behind  *int `json:"behind"`
	Failing int  `json:"failing"`
}

// FailingDevice is a device whose last fetches failed.
type FailingDevice struct {
	Stream    string     `json:"stream"`
	Kind      string     `json:"device_kind"`
	ID        string     `json:"device_id"`
	Failures  int        `json:"failures"`
	UpdatedAt *time.Time `json:"updated_at"`
	LastError string     `json:"last_error"`
}

// CoverageSummary sums the coverage ledger per history stream.
type CoverageSummary struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	Streams []CoverageStream `json:"streams"`
}

// CoverageStream is one history stream's device-days.
type CoverageStream struct {
	Stream      string `json:"stream"`
	Devices     int64  `json:"devices"`
	Settled     int64  `json:"settled_days"`
	Provisional int64  `json:"provisional_days"`
	Missing     int64  `json:"missing_days"`
	// Pending days follow the last fetch of devices the idle rule skips.
	Pending       int64 `json:"pending_days"`
	DevicesBehind int64 `json:"devices_behind"`
}

// RecentRun is one of the last runs.
type RecentRun struct {
	ID         string     `json:"run_id"`
	Kind       string     `json:"kind"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Status: ok, partial, failed, interrupted, running, or abandoned
	// (recorded as running by a process that is gone).
	Status        string           `json:"status"`
	Devices       int              `json:"devices"`
	DevicesFailed int              `json:"devices_failed"`
	Requests      int64            `json:"requests"`
	Rejected      int64            `json:"rejected"`
	Rows          map[string]int64 `json:"rows"`
	Error         string           `json:"error,omitempty"`
}

// PendingRequest is an aggregate request still waiting for its callback.
type PendingRequest struct {
	RequestID   string     `json:"request_id"`
	RequestedAt *time.Time `json:"requested_at"`
	Devices     int        `json:"devices"`
}

// StatusOptions says how ReadStatus judges and shows what it reads.
type StatusOptions struct {
	// Now is when the status is read.
	Now time.Time
	// Lookback is each stream's settlement period; a stream without one
	// has no devices behind.
	Lookback map[string]time.Duration
	// Redact removes secrets from stored text (error messages) before it
	// is shown; nil: none.
	Redact func(string) string
	// NoWriter: no process writes the file (the reader could open it), so a
	// run recorded as running ended without recording its outcome: it shows
	// as abandoned.
	NoWriter bool
	// Runs is how many of the last runs to read (default 5).
	Runs int
}

// EmptyStatus is the status of a warehouse that holds nothing yet, or of
// one that could not be read: its lists are empty, not null.
func EmptyStatus() Status {
	return Status{Streams: []StreamStatus{}, FailingDevices: []FailingDevice{}, Runs: []RecentRun{},
		Pending: []PendingRequest{}, Rejected: map[string]int{}}
}

// ReadStatus reads where the warehouse (or a snapshot of it) at db stands.
func ReadStatus(ctx context.Context, db *sql.DB, opts StatusOptions) (Status, error) {
	s := EmptyStatus()
	r := statusReader{db: db, opts: opts}
	for _, section := range []func(context.Context, *Status) error{r.streams, r.coverage, r.runs, r.pending, r.rejected, r.notVisited} {
		if err := section(ctx, &s); err != nil {
			return EmptyStatus(), err
		}
	}
	if opts.NoWriter {
		for i := range s.Runs {
			if s.Runs[i].Status == "running" {
				s.Runs[i].Status = "abandoned"
			}
		}
	}
	return s, nil
}

type statusReader struct {
	db   *sql.DB
	opts StatusOptions
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// oneLine makes stored text fit one line of at most n bytes, secrets
// removed.
func (r statusReader) oneLine(s string, n int) string {
	if r.opts.Redact != nil {
		s = r.opts.Redact(s)
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = clip.Text(s, n-1)
	}
	return s
}

// streamRank orders streams as THINGSYNC_STREAMS lists them by default;
// unknown ones go last.
func streamRank(s string) int {
	if i := slices.Index([]string{"usage", "connections", "rated", "aggregate"}, s); i >= 0 {
		return i
	}
	return 99
}

// stillAsked selects the checkpoints of device-streams runs still fetch:
// not retired, and not skipped as idle.
const stillAsked = `NOT coalesce(retired, false) AND idle_since IS NULL`

// streams reads one line per stream with checkpoints, then the failing
// devices.
func (r statusReader) streams(ctx context.Context, doc *Status) error {
	// Retired devices are not asked again, and idle ones not until they
	// show a sign of life: their checkpoints stay where they were and say
	// nothing about how current the warehouse is, so the oldest, median,
	// newest and behind figures leave them out.
	rows, err := r.db.QueryContext(ctx, `SELECT stream, count(*),
		count(*) FILTER (WHERE coalesce(retired, false)),
		min(settled_until) FILTER (WHERE `+stillAsked+`),
		quantile_disc(settled_until, 0.5) FILTER (WHERE `+stillAsked+`),
		max(settled_until) FILTER (WHERE `+stillAsked+`),
		count(*) FILTER (WHERE coalesce(failures, 0) > 0)
		FROM sync_checkpoints GROUP BY stream`)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	var streams []StreamStatus
	for rows.Next() {
		var s StreamStatus
		var oldest, median, newest sql.NullTime
		if err := rows.Scan(&s.Name, &s.Devices, &s.Retired, &oldest, &median, &newest, &s.Failing); err != nil {
			rows.Close()
			return fmt.Errorf("read checkpoints: %w", err)
		}
		s.Oldest, s.Median, s.Newest = timePtr(oldest), timePtr(median), timePtr(newest)
		streams = append(streams, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	slices.SortFunc(streams, func(a, b StreamStatus) int {
		return cmp.Or(cmp.Compare(streamRank(a.Name), streamRank(b.Name)), strings.Compare(a.Name, b.Name))
	})
	for i := range streams {
		s := &streams[i]
		if lb := r.opts.Lookback[s.Name]; lb > 0 {
			// Behind: not settled for twice the settlement period, i.e. at
			// least one nightly run has not moved it as it should have.
			var behind int
			err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM sync_checkpoints
				WHERE stream = ? AND `+stillAsked+`
				AND (settled_until IS NULL OR settled_until < ?)`, s.Name, r.opts.Now.Add(-2*lb)).Scan(&behind)
			if err != nil {
				return fmt.Errorf("read %s checkpoints: %w", s.Name, err)
			}
			s.Behind = &behind
		}
		doc.FailingTotal += s.Failing
	}
	doc.Streams = append(doc.Streams, streams...)
	if doc.FailingTotal == 0 {
		return nil
	}
	rows, err = r.db.QueryContext(ctx, `SELECT stream, device_kind, device_id, failures,
		coalesce(last_error, ''), updated_at
		FROM sync_checkpoints WHERE coalesce(failures, 0) > 0
		ORDER BY failures DESC, updated_at DESC NULLS LAST, stream, device_kind, device_id
		LIMIT ?`, StatusListed)
	if err != nil {
		return fmt.Errorf("read failing devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f FailingDevice
		var updated sql.NullTime
		if err := rows.Scan(&f.Stream, &f.Kind, &f.ID, &f.Failures, &f.LastError, &updated); err != nil {
			return fmt.Errorf("read failing devices: %w", err)
		}
		f.UpdatedAt, f.LastError = timePtr(updated), r.oneLine(f.LastError, 160)
		doc.FailingDevices = append(doc.FailingDevices, f)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read failing devices: %w", err)
	}
	return nil
}

// runs reads the last runs (StatusOptions.Runs), newest first.
func (r statusReader) runs(ctx context.Context, doc *Status) error {
	limit := r.opts.Runs
	if limit <= 0 {
		limit = 5
	}
	rows, err := r.db.QueryContext(ctx, `SELECT run_id, coalesce(kind, ''), started_at, finished_at, coalesce(status, ''),
		coalesce(devices, 0), coalesce(devices_failed, 0), coalesce(requests, 0),
		coalesce(usage_inserted, 0), coalesce(usage_updated, 0),
		coalesce(events_inserted, 0), coalesce(events_updated, 0),
		coalesce(rated_upserted, 0), coalesce(aggregate_upserted, 0),
		coalesce(rejected, 0), coalesce(error, '')
		FROM sync_runs ORDER BY started_at DESC NULLS LAST LIMIT ?`, limit)
	if err != nil {
		return fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var run RecentRun
		var started, finished sql.NullTime
		var usageIns, usageUpd, eventsIns, eventsUpd, rated, aggregate int64
		if err := rows.Scan(&run.ID, &run.Kind, &started, &finished, &run.Status, &run.Devices, &run.DevicesFailed, &run.Requests,
			&usageIns, &usageUpd, &eventsIns, &eventsUpd, &rated, &aggregate, &run.Rejected, &run.Error); err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		run.StartedAt, run.FinishedAt = timePtr(started), timePtr(finished)
		run.Error = r.oneLine(run.Error, 300)
		run.Rows = map[string]int64{"usage_inserted": usageIns, "usage_updated": usageUpd,
			"events_inserted": eventsIns, "events_updated": eventsUpd,
			"rated_upserted": rated, "aggregate_upserted": aggregate}
		doc.Runs = append(doc.Runs, run)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read runs: %w", err)
	}
	return nil
}

// coverage sums the coverage ledger per history stream.
func (r statusReader) coverage(ctx context.Context, doc *Status) error {
	rows, err := r.db.QueryContext(ctx, `SELECT stream, min(first_day), max(last_day), count(*),
		sum(settled_days), sum(provisional_days), sum(missing_days), count(*) FILTER (WHERE missing_days > 0), sum(pending_days)
		FROM coverage GROUP BY stream ORDER BY stream DESC`)
	if err != nil {
		return fmt.Errorf("read coverage: %w", err)
	}
	defer rows.Close()
	var c CoverageSummary
	for rows.Next() {
		var s CoverageStream
		var first, last time.Time
		if err := rows.Scan(&s.Stream, &first, &last, &s.Devices, &s.Settled, &s.Provisional, &s.Missing, &s.DevicesBehind, &s.Pending); err != nil {
			return fmt.Errorf("read coverage: %w", err)
		}
		c.From, c.To = first.Format(time.DateOnly), last.Format(time.DateOnly)
		c.Streams = append(c.Streams, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read coverage: %w", err)
	}
	if len(c.Streams) > 0 {
		doc.Coverage = &c
	}
	return nil
}

// notVisited counts the devices the last runs over the fleet missed.
func (r statusReader) notVisited(ctx context.Context, doc *Status) error {
	nv, err := readNotVisited(ctx, r.db)
	doc.NotVisited = nv
	return err
}

// pending reads the aggregate requests still waiting for their callback.
func (r statusReader) pending(ctx context.Context, doc *Status) error {
	n, err := countPending(ctx, r.db)
	if err != nil {
		return err
	}
	doc.PendingTotal = n
	if doc.PendingTotal == 0 {
		return nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT request_id, requested_at, coalesce(device_count, 0)
		FROM aggregate_requests WHERE `+waitingForCallbacks+` ORDER BY requested_at NULLS LAST, request_id LIMIT ?`, StatusListed)
	if err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p PendingRequest
		var requested sql.NullTime
		if err := rows.Scan(&p.RequestID, &requested, &p.Devices); err != nil {
			return fmt.Errorf("read aggregate requests: %w", err)
		}
		p.RequestedAt = timePtr(requested)
		doc.Pending = append(doc.Pending, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	return nil
}

// rejected counts the records that could not be loaded, per stream.
func (r statusReader) rejected(ctx context.Context, doc *Status) error {
	rows, err := r.db.QueryContext(ctx, `SELECT stream, count(*) FROM rejected_records GROUP BY stream ORDER BY stream`)
	if err != nil {
		return fmt.Errorf("read rejected records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var stream sql.NullString
		var n int
		if err := rows.Scan(&stream, &n); err != nil {
			return fmt.Errorf("read rejected records: %w", err)
		}
		doc.RejectedTotal += n
		doc.Rejected[cmp.Or(stream.String, "?")] += n
	}
	return rows.Err()
}
