package main

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/internal/clip"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/query"
)

// statusListed caps the failing devices and pending requests status lists.
const statusListed = 10

func runStatus(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("status", "status [--format table|json]\n\n"+
		"Shows, read-only, where each stream stands (devices, checkpoints, devices behind,\n"+
		"failing devices), the last runs, pending aggregate requests and rejected records.\n"+
		"While a sync holds the warehouse it shows the run's progress (from the file the\n"+
		"run keeps beside THINGSYNC_DB) and, when THINGSYNC_SNAPSHOT is set, the snapshot's\n"+
		"state. --format json prints the same as one JSON document (see README).")
	format := fs.String("format", "table", "output format: table or json")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("status: unexpected arguments %v", fs.Args())
	}
	if *format != "table" && *format != "json" {
		return usageErr("status: --format: want table or json, got %q", *format)
	}
	cfg := env.Config
	if err := load.CheckExists(cfg.DB); err != nil {
		return cannotRun(fmt.Errorf("status: %w", err))
	}
	now := a.now()
	// Lists are [] rather than null when empty: scripts iterate them.
	doc := statusDoc{Warehouse: cfg.DB, At: now, Source: "warehouse", Streams: []streamStatus{},
		FailingDevices: []failingDevice{}, Runs: []runRow{}, Pending: []pendingStatus{}, Rejected: map[string]int{}}
	prog, perr := ingest.ReadProgress(ingest.ProgressPath(cfg.DB))
	if perr != nil {
		env.Log.Warn().Err(perr).Msg("status: the run's progress file is unreadable")
	}
	if prog != nil {
		doc.Progress = prog.View(now)
	}
	db, err := load.OpenReadOnly(ctx, cfg.DB)
	if errors.Is(err, load.ErrLocked) {
		// A running sync holds the file: what it last reported, and the
		// snapshot of the last successful run when there is one.
		doc.InUse = true
		db, err = nil, nil
		if cfg.Snapshot != "" {
			if st, serr := os.Stat(cfg.Snapshot); serr == nil {
				if sdb, oerr := load.OpenReadOnly(ctx, cfg.Snapshot); oerr == nil {
					db, doc.Source = sdb, "snapshot"
					doc.Snapshot, doc.SnapshotTime = cfg.Snapshot, st.ModTime().UTC()
				}
			}
		}
		if db == nil {
			doc.Source = "none"
		}
	}
	if err != nil {
		return cannotRun(fmt.Errorf("status: %w", err))
	}
	if db != nil {
		defer db.Close()
		r := &statusReport{db: db, cfg: cfg, now: now, redact: secretRedactor(cfg)}
		for _, section := range []func(context.Context, *statusDoc) error{r.streams, r.coverage, r.runs, r.pending, r.rejected} {
			if err := section(ctx, &doc); err != nil {
				return cannotRun(fmt.Errorf("status: %w", err))
			}
		}
		// Whoever could open the file holds no run: a run still marked
		// running there ended without recording it (killed).
		for i := range doc.Runs {
			if doc.Runs[i].Status == "running" {
				doc.Runs[i].Status = "abandoned"
			}
		}
	}
	out := bufio.NewWriter(a.Stdout)
	if *format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(doc)
	} else {
		writeStatusTable(out, &doc)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return cannotRun(fmt.Errorf("status: write: %w", err))
	}
	return nil
}

// statusDoc is what status shows; --format json prints it as is, so its
// field names are a documented interface (README, "status --format json").
type statusDoc struct {
	Warehouse string    `json:"warehouse"`
	At        time.Time `json:"at"`
	// Source is where the state below was read: warehouse, snapshot
	// (the warehouse is held by a run), or none (held, no snapshot).
	Source       string    `json:"source"`
	Snapshot     string    `json:"snapshot,omitempty"`
	SnapshotTime time.Time `json:"snapshot_time,omitzero"`
	// InUse: another process holds the warehouse file.
	InUse    bool                 `json:"in_use"`
	Progress *ingest.ProgressView `json:"progress"`

	Streams        []streamStatus  `json:"streams"`
	FailingTotal   int             `json:"failing_devices_total"`
	FailingDevices []failingDevice `json:"failing_devices"`
	Coverage       *coverageStatus `json:"coverage"`
	Runs           []runRow        `json:"runs"`
	PendingTotal   int             `json:"pending_requests_total"`
	Pending        []pendingStatus `json:"pending_requests"`
	RejectedTotal  int             `json:"rejected_total"`
	Rejected       map[string]int  `json:"rejected_by_stream"`
}

type failingDevice struct {
	Stream    string     `json:"stream"`
	Kind      string     `json:"device_kind"`
	ID        string     `json:"device_id"`
	Failures  int        `json:"failures"`
	UpdatedAt *time.Time `json:"updated_at"`
	LastError string     `json:"last_error"`
}

type coverageStatus struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	Streams []coverageStream `json:"streams"`
}

type coverageStream struct {
	Stream        string `json:"stream"`
	Devices       int64  `json:"devices"`
	Settled       int64  `json:"settled_days"`
	Provisional   int64  `json:"provisional_days"`
	Missing       int64  `json:"missing_days"`
	DevicesBehind int64  `json:"devices_behind"`
}

type runRow struct {
	Kind       string     `json:"kind"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Status: ok, partial, failed, interrupted, or abandoned (recorded as
	// running by a process that is gone).
	Status        string           `json:"status"`
	Devices       int              `json:"devices"`
	DevicesFailed int              `json:"devices_failed"`
	Requests      int64            `json:"requests"`
	Rejected      int64            `json:"rejected"`
	Rows          map[string]int64 `json:"rows"`
	Error         string           `json:"error,omitempty"`
}

type pendingStatus struct {
	RequestID   string     `json:"request_id"`
	RequestedAt *time.Time `json:"requested_at"`
	Devices     int        `json:"devices"`
}

type statusReport struct {
	db     *sql.DB
	cfg    *config.Config
	now    time.Time
	redact *strings.Replacer
}

// secretRedactor blanks the configured secrets out of text read back from
// the warehouse: an error message stored by some run could quote one.
func secretRedactor(cfg *config.Config) *strings.Replacer {
	var pairs []string
	for _, s := range []config.Secret{cfg.ClientSecret, cfg.Password, cfg.CallbackPassword} {
		// A very short value would blank ordinary text; config refuses none.
		if v := s.Reveal(); len(v) >= 4 {
			pairs = append(pairs, v, "[redacted]")
		}
	}
	return strings.NewReplacer(pairs...)
}

// lookback is the settlement period of a stream, 0 for streams without one.
func (r *statusReport) lookback(stream string) time.Duration {
	switch stream {
	case "usage":
		return r.cfg.LookbackUsage
	case "connections":
		return r.cfg.LookbackConnections
	}
	return 0
}

type streamStatus struct {
	Name    string     `json:"stream"`
	Devices int        `json:"devices"`
	Retired int        `json:"retired"`
	Oldest  *time.Time `json:"oldest_settled"`
	Newest  *time.Time `json:"newest_settled"`
	// Behind: not settled for more than twice the lookback (null for a
	// stream without one).
	Behind  *int `json:"behind"`
	Failing int  `json:"failing"`
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// streams reads one line per stream with checkpoints, then the failing
// devices.
func (r *statusReport) streams(ctx context.Context, doc *statusDoc) error {
	// Retired devices are not asked again: their checkpoints stay where they
	// were and say nothing about how current the warehouse is, so the
	// oldest/newest and behind figures leave them out.
	rows, err := r.db.QueryContext(ctx, `SELECT stream, count(*),
		count(*) FILTER (WHERE coalesce(retired, false)),
		min(settled_until) FILTER (WHERE NOT coalesce(retired, false)),
		max(settled_until) FILTER (WHERE NOT coalesce(retired, false)),
		count(*) FILTER (WHERE coalesce(failures, 0) > 0)
		FROM sync_checkpoints GROUP BY stream`)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	var streams []streamStatus
	for rows.Next() {
		var s streamStatus
		var oldest, newest sql.NullTime
		if err := rows.Scan(&s.Name, &s.Devices, &s.Retired, &oldest, &newest, &s.Failing); err != nil {
			rows.Close()
			return fmt.Errorf("read checkpoints: %w", err)
		}
		s.Oldest, s.Newest = timePtr(oldest), timePtr(newest)
		streams = append(streams, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	slices.SortFunc(streams, func(a, b streamStatus) int {
		return cmp.Or(cmp.Compare(streamRank(a.Name), streamRank(b.Name)), strings.Compare(a.Name, b.Name))
	})
	for i := range streams {
		s := &streams[i]
		if lb := r.lookback(s.Name); lb > 0 {
			// Behind: not settled for twice the settlement period, i.e. at
			// least one nightly run has not moved it as it should have.
			var behind int
			err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM sync_checkpoints
				WHERE stream = ? AND NOT coalesce(retired, false)
				AND (settled_until IS NULL OR settled_until < ?)`, s.Name, r.now.Add(-2*lb)).Scan(&behind)
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
		LIMIT ?`, statusListed)
	if err != nil {
		return fmt.Errorf("read failing devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f failingDevice
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

// streamRank orders streams as THINGSYNC_STREAMS lists them by default;
// unknown ones go last.
func streamRank(s string) int {
	if i := slices.Index([]string{"usage", "connections", "rated", "aggregate"}, s); i >= 0 {
		return i
	}
	return 99
}

// runs reads the last five runs.
func (r *statusReport) runs(ctx context.Context, doc *statusDoc) error {
	rows, err := r.db.QueryContext(ctx, `SELECT coalesce(kind, ''), started_at, finished_at, coalesce(status, ''),
		coalesce(devices, 0), coalesce(devices_failed, 0), coalesce(requests, 0),
		coalesce(usage_inserted, 0), coalesce(usage_updated, 0),
		coalesce(events_inserted, 0), coalesce(events_updated, 0),
		coalesce(rated_upserted, 0), coalesce(aggregate_upserted, 0),
		coalesce(rejected, 0), coalesce(error, '')
		FROM sync_runs ORDER BY started_at DESC NULLS LAST LIMIT 5`)
	if err != nil {
		return fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var run runRow
		var started, finished sql.NullTime
		var usageIns, usageUpd, eventsIns, eventsUpd, rated, aggregate int64
		if err := rows.Scan(&run.Kind, &started, &finished, &run.Status, &run.Devices, &run.DevicesFailed, &run.Requests,
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

// coverage summarises the coverage ledger per history stream.
func (r *statusReport) coverage(ctx context.Context, doc *statusDoc) error {
	rows, err := r.db.QueryContext(ctx, `SELECT stream, min(first_day), max(last_day), count(*),
		sum(settled_days), sum(provisional_days), sum(missing_days), count(*) FILTER (WHERE missing_days > 0)
		FROM coverage GROUP BY stream ORDER BY stream DESC`)
	if err != nil {
		return fmt.Errorf("read coverage: %w", err)
	}
	defer rows.Close()
	var c coverageStatus
	for rows.Next() {
		var s coverageStream
		var first, last time.Time
		if err := rows.Scan(&s.Stream, &first, &last, &s.Devices, &s.Settled, &s.Provisional, &s.Missing, &s.DevicesBehind); err != nil {
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

// pending reads the aggregate requests still waiting for their callback.
func (r *statusReport) pending(ctx context.Context, doc *statusDoc) error {
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM aggregate_requests WHERE status IN ('pending', 'completed')`).Scan(&doc.PendingTotal); err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	if doc.PendingTotal == 0 {
		return nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT request_id, requested_at, coalesce(device_count, 0)
		FROM aggregate_requests WHERE status IN ('pending', 'completed') ORDER BY requested_at NULLS LAST, request_id LIMIT ?`, statusListed)
	if err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p pendingStatus
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
func (r *statusReport) rejected(ctx context.Context, doc *statusDoc) error {
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

// oneLine makes stored text fit one line of at most n bytes in the
// report, secrets removed.
func (r *statusReport) oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(r.redact.Replace(s)), " ")
	if len(s) > n {
		s = clip.Text(s, n-1)
	}
	return s
}

func nullTimeText(t sql.NullTime) string {
	if !t.Valid {
		return "-"
	}
	return t.Time.UTC().Format(time.RFC3339)
}

// durationText renders a duration or an age to the precision a person
// reads: 1.2s, 4m31s, 3h5m, 2d4h.
func durationText(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}

// writeStatusTable renders doc for a person.
func writeStatusTable(w io.Writer, doc *statusDoc) {
	at := doc.At.Format(time.RFC3339)
	switch doc.Source {
	case "snapshot":
		fmt.Fprintf(w, "Warehouse %s (snapshot of %s: the warehouse is in use by a running sync), at %s\n",
			doc.Snapshot, doc.SnapshotTime.Format(time.RFC3339), at)
	case "none":
		fmt.Fprintf(w, "Warehouse %s, at %s: in use by another process; its committed state shows once it lets go\n"+
			"(or at any time from a snapshot: set THINGSYNC_SNAPSHOT)\n", doc.Warehouse, at)
	default:
		fmt.Fprintf(w, "Warehouse %s, at %s\n", doc.Warehouse, at)
	}
	if p := doc.Progress; p != nil {
		fmt.Fprintln(w)
		writeProgress(w, p, doc.At)
	} else if doc.InUse {
		fmt.Fprintln(w, "\nNo run in progress reported (the file is held by a process that is not a sync: a daemon's callback, an sql session, check)")
	}
	if doc.Source == "none" {
		return
	}
	for _, section := range []func(io.Writer, *statusDoc){writeStreams, writeCoverage, writeRuns, writePending, writeRejected} {
		fmt.Fprintln(w)
		section(w, doc)
	}
}

func writeProgress(w io.Writer, p *ingest.ProgressView, now time.Time) {
	head, who := "Run in progress", ""
	switch p.Process {
	case ingest.ProcessRunning:
		who = fmt.Sprintf("pid %d", p.PID)
	case ingest.ProcessGone:
		head = "Run left unfinished"
		who = fmt.Sprintf("pid %d, which is gone: the run ended without recording an outcome (killed?); the next run marks it abandoned", p.PID)
	default:
		who = fmt.Sprintf("pid %d on host %s", p.PID, p.Host)
	}
	fmt.Fprintf(w, "%s: %s %s (%s)\n", head, p.Kind, p.RunID, who)
	listed := fmt.Sprintf("%d listed", p.DevicesListed)
	if p.Listing {
		listed += " so far"
	}
	fmt.Fprintf(w, "  started %s (%s ago), last report %s (%s ago), %s\n", p.StartedAt.Format(time.RFC3339),
		durationText(now.Sub(p.StartedAt)), p.UpdatedAt.Format(time.RFC3339), durationText(now.Sub(p.UpdatedAt)), p.Phase)
	fmt.Fprintf(w, "  devices %s, %d done, %d failed; %d requests, %d records, %.1f devices/s\n",
		listed, p.DevicesDone, p.DevicesFailed, p.Requests, p.Records, p.DevicesPerSecond)
}

func writeStreams(w io.Writer, doc *statusDoc) {
	if len(doc.Streams) == 0 {
		fmt.Fprintln(w, "Streams: no checkpoints yet (run thingsync sync)")
		return
	}
	opt := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	var body [][]string
	for _, s := range doc.Streams {
		behind := "-"
		if s.Behind != nil {
			behind = strconv.Itoa(*s.Behind)
		}
		body = append(body, []string{s.Name, strconv.Itoa(s.Devices), strconv.Itoa(s.Retired),
			opt(s.Oldest), opt(s.Newest), behind, strconv.Itoa(s.Failing)})
	}
	fmt.Fprintln(w, "Streams (behind: not settled for more than twice the stream's lookback)")
	query.WriteColumns(w, []string{"stream", "devices", "retired", "oldest settled", "newest settled", "behind", "failing"},
		body, []bool{false, true, true, false, false, true, true})
	if doc.FailingTotal == 0 {
		return
	}
	fmt.Fprintf(w, "\nFailing devices (%d)\n", doc.FailingTotal)
	body = nil
	for _, f := range doc.FailingDevices {
		body = append(body, []string{f.Stream, f.Kind + ":" + f.ID, strconv.Itoa(f.Failures), opt(f.UpdatedAt), f.LastError})
	}
	query.WriteColumns(w, []string{"stream", "device", "failures", "updated", "last error"}, body, []bool{false, false, true, false, false})
	if more := doc.FailingTotal - len(body); more > 0 {
		fmt.Fprintf(w, "and %d more\n", more)
	}
}

func writeCoverage(w io.Writer, doc *statusDoc) {
	c := doc.Coverage
	if c == nil {
		fmt.Fprintln(w, "Coverage: no devices yet")
		return
	}
	var body [][]string
	for _, s := range c.Streams {
		body = append(body, []string{s.Stream, strconv.FormatInt(s.Devices, 10), strconv.FormatInt(s.Settled, 10),
			strconv.FormatInt(s.Provisional, 10), strconv.FormatInt(s.Missing, 10), strconv.FormatInt(s.DevicesBehind, 10)})
	}
	fmt.Fprintf(w, "Coverage, device-days from %s to %s (missing ones: thingsync backfill --gaps)\n", c.From, c.To)
	query.WriteColumns(w, []string{"stream", "devices", "settled", "provisional", "missing", "devices behind"}, body, []bool{false, true, true, true, true, true})
}

func writeRuns(w io.Writer, doc *statusDoc) {
	if len(doc.Runs) == 0 {
		fmt.Fprintln(w, "Runs: none yet")
		return
	}
	var body [][]string
	for _, run := range doc.Runs {
		duration := "-"
		if run.StartedAt != nil && run.FinishedAt != nil {
			duration = durationText(run.FinishedAt.Sub(*run.StartedAt))
		}
		var counts []string
		add := func(table string, ins, upd int64, upserted bool) {
			switch {
			case upserted && ins > 0:
				counts = append(counts, fmt.Sprintf("%s %d", table, ins))
			case !upserted && ins+upd > 0:
				counts = append(counts, fmt.Sprintf("%s %d/%d", table, ins, upd))
			}
		}
		add("usage", run.Rows["usage_inserted"], run.Rows["usage_updated"], false)
		add("events", run.Rows["events_inserted"], run.Rows["events_updated"], false)
		add("rated", run.Rows["rated_upserted"], 0, true)
		add("aggregate", run.Rows["aggregate_upserted"], 0, true)
		if len(counts) == 0 {
			counts = []string{"none"}
		}
		started := "-"
		if run.StartedAt != nil {
			started = run.StartedAt.Format(time.RFC3339)
		}
		body = append(body, []string{run.Kind, started, duration, run.Status,
			strconv.Itoa(run.Devices), strconv.Itoa(run.DevicesFailed), strconv.FormatInt(run.Requests, 10),
			strconv.FormatInt(run.Rejected, 10), strings.Join(counts, ", ")})
	}
	fmt.Fprintln(w, "Last runs (rows: inserted/updated; abandoned: its process ended without recording an outcome)")
	query.WriteColumns(w, []string{"kind", "started", "duration", "status", "devices", "failed", "requests", "rejected", "rows"},
		body, []bool{false, false, true, false, true, true, true, true, false})
	if e := doc.Runs[0].Error; e != "" {
		fmt.Fprintf(w, "last run's error: %s\n", e)
	}
}

func writePending(w io.Writer, doc *statusDoc) {
	if doc.PendingTotal == 0 {
		fmt.Fprintln(w, "Pending aggregate requests: none")
		return
	}
	var body [][]string
	for _, p := range doc.Pending {
		requested, age := "-", "-"
		if p.RequestedAt != nil {
			requested, age = p.RequestedAt.Format(time.RFC3339), durationText(doc.At.Sub(*p.RequestedAt))
		}
		body = append(body, []string{p.RequestID, requested, age, strconv.Itoa(p.Devices)})
	}
	fmt.Fprintf(w, "Pending aggregate requests (%d)\n", doc.PendingTotal)
	query.WriteColumns(w, []string{"request", "requested", "age", "devices"}, body, []bool{false, false, true, true})
	if more := doc.PendingTotal - len(body); more > 0 {
		fmt.Fprintf(w, "and %d more\n", more)
	}
}

func writeRejected(w io.Writer, doc *statusDoc) {
	if doc.RejectedTotal == 0 {
		fmt.Fprintln(w, "Rejected records: 0")
		return
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(doc.Rejected)) {
		parts = append(parts, fmt.Sprintf("%s %d", s, doc.Rejected[s]))
	}
	fmt.Fprintf(w, "Rejected records: %d (%s; see the rejected_records table)\n", doc.RejectedTotal, strings.Join(parts, ", "))
}
