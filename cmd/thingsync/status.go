package main

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thingsync/thingsync/config"
	"github.com/thingsync/thingsync/load"
)

// statusListed caps the failing devices and pending requests status lists.
const statusListed = 10

func runStatus(ctx context.Context, a *App, env *Env, args []string) error {
	fs := a.flagSet("status", "status\n\n"+
		"Shows, read-only, where each stream stands (devices, checkpoints, devices behind,\n"+
		"failing devices), the last runs, pending aggregate requests and rejected records.")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("status: unexpected arguments %v", fs.Args())
	}
	cfg := env.Config
	if err := mustExist(cfg.DB); err != nil {
		return cannotRun(fmt.Errorf("status: %w", err))
	}
	path, note := cfg.DB, ""
	db, err := load.OpenReadOnly(ctx, cfg.DB)
	if errors.Is(err, load.ErrLocked) && cfg.Snapshot != "" {
		// A running sync holds the file; the snapshot of the last
		// successful run is the next best thing.
		if st, serr := os.Stat(cfg.Snapshot); serr == nil {
			if sdb, oerr := load.OpenReadOnly(ctx, cfg.Snapshot); oerr == nil {
				db, err, path = sdb, nil, cfg.Snapshot
				note = fmt.Sprintf(" (snapshot of %s: the warehouse is in use by a running sync)",
					st.ModTime().UTC().Format(time.RFC3339))
			}
		}
	}
	if err != nil {
		return cannotRun(fmt.Errorf("status: %w", err))
	}
	defer db.Close()

	now := a.now()
	r := &statusReport{db: db, cfg: cfg, now: now, redact: secretRedactor(cfg)}
	out := bufio.NewWriter(a.Stdout)
	fmt.Fprintf(out, "Warehouse %s%s, at %s\n", path, note, now.Format(time.RFC3339))
	for _, section := range []func(context.Context, io.Writer) error{r.streams, r.coverage, r.runs, r.pending, r.rejected} {
		fmt.Fprintln(out)
		if err := section(ctx, out); err != nil {
			out.Flush()
			return cannotRun(fmt.Errorf("status: %w", err))
		}
	}
	if err := out.Flush(); err != nil {
		return cannotRun(fmt.Errorf("status: write: %w", err))
	}
	return nil
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
	name             string
	devices, retired int
	oldest, newest   sql.NullTime
	behind, failing  int
}

// streams prints one line per stream with checkpoints, then the failing
// devices.
func (r *statusReport) streams(ctx context.Context, w io.Writer) error {
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
		if err := rows.Scan(&s.name, &s.devices, &s.retired, &s.oldest, &s.newest, &s.failing); err != nil {
			rows.Close()
			return fmt.Errorf("read checkpoints: %w", err)
		}
		streams = append(streams, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	if len(streams) == 0 {
		fmt.Fprintln(w, "Streams: no checkpoints yet (run thingsync sync)")
		return nil
	}
	slices.SortFunc(streams, func(a, b streamStatus) int {
		return cmp.Or(cmp.Compare(streamRank(a.name), streamRank(b.name)), strings.Compare(a.name, b.name))
	})

	header := []string{"stream", "devices", "retired", "oldest settled", "newest settled", "behind", "failing"}
	var body [][]string
	failing := 0
	for i := range streams {
		s := &streams[i]
		behind := "-"
		if lb := r.lookback(s.name); lb > 0 {
			// Behind: not settled for twice the settlement period, i.e. at
			// least one nightly run has not moved it as it should have.
			err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM sync_checkpoints
				WHERE stream = ? AND NOT coalesce(retired, false)
				AND (settled_until IS NULL OR settled_until < ?)`, s.name, r.now.Add(-2*lb)).Scan(&s.behind)
			if err != nil {
				return fmt.Errorf("read %s checkpoints: %w", s.name, err)
			}
			behind = strconv.Itoa(s.behind)
		}
		failing += s.failing
		body = append(body, []string{s.name, strconv.Itoa(s.devices), strconv.Itoa(s.retired),
			nullTimeText(s.oldest), nullTimeText(s.newest), behind, strconv.Itoa(s.failing)})
	}
	fmt.Fprintln(w, "Streams (behind: not settled for more than twice the stream's lookback)")
	writeColumns(w, header, body, []bool{false, true, true, false, false, true, true})
	if failing == 0 {
		return nil
	}

	fmt.Fprintf(w, "\nFailing devices (%d)\n", failing)
	rows, err = r.db.QueryContext(ctx, `SELECT stream, device_kind, device_id, failures,
		coalesce(last_error, ''), updated_at
		FROM sync_checkpoints WHERE coalesce(failures, 0) > 0
		ORDER BY failures DESC, updated_at DESC NULLS LAST, stream, device_kind, device_id
		LIMIT ?`, statusListed)
	if err != nil {
		return fmt.Errorf("read failing devices: %w", err)
	}
	defer rows.Close()
	body = nil
	for rows.Next() {
		var stream, kind, id, lastErr string
		var failures int
		var updated sql.NullTime
		if err := rows.Scan(&stream, &kind, &id, &failures, &lastErr, &updated); err != nil {
			return fmt.Errorf("read failing devices: %w", err)
		}
		body = append(body, []string{stream, kind + ":" + id, strconv.Itoa(failures),
			nullTimeText(updated), r.clip(lastErr, 160)})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read failing devices: %w", err)
	}
	writeColumns(w, []string{"stream", "device", "failures", "updated", "last error"}, body, []bool{false, false, true, false, false})
	if more := failing - len(body); more > 0 {
		fmt.Fprintf(w, "and %d more\n", more)
	}
	return nil
}

// streamRank orders streams as SPEC lists them; unknown ones go last.
func streamRank(s string) int {
	if i := slices.Index([]string{"usage", "connections", "rated", "aggregate"}, s); i >= 0 {
		return i
	}
	return 99
}

// runs prints the last five runs.
func (r *statusReport) runs(ctx context.Context, w io.Writer) error {
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
	var body [][]string
	var lastErr string
	for rows.Next() {
		var kind, status, runErr string
		var started, finished sql.NullTime
		var devices, failed int
		var requests, usageIns, usageUpd, eventsIns, eventsUpd, rated, aggregate, rejected int64
		if err := rows.Scan(&kind, &started, &finished, &status, &devices, &failed, &requests,
			&usageIns, &usageUpd, &eventsIns, &eventsUpd, &rated, &aggregate, &rejected, &runErr); err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		duration := "-"
		if started.Valid && finished.Valid {
			duration = durationText(finished.Time.Sub(started.Time))
		} else if started.Valid && status == "running" {
			duration = durationText(r.now.Sub(started.Time)) + " so far"
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
		add("usage", usageIns, usageUpd, false)
		add("events", eventsIns, eventsUpd, false)
		add("rated", rated, 0, true)
		add("aggregate", aggregate, 0, true)
		if len(counts) == 0 {
			counts = []string{"none"}
		}
		body = append(body, []string{kind, nullTimeText(started), duration, status,
			strconv.Itoa(devices), strconv.Itoa(failed), strconv.FormatInt(requests, 10),
			strconv.FormatInt(rejected, 10), strings.Join(counts, ", ")})
		if len(body) == 1 {
			lastErr = runErr
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read runs: %w", err)
	}
	if len(body) == 0 {
		fmt.Fprintln(w, "Runs: none yet")
		return nil
	}
	fmt.Fprintln(w, "Last runs (rows: inserted/updated)")
	writeColumns(w, []string{"kind", "started", "duration", "status", "devices", "failed", "requests", "rejected", "rows"},
		body, []bool{false, false, true, false, true, true, true, true, false})
	if lastErr != "" {
		fmt.Fprintf(w, "last run's error: %s\n", r.clip(lastErr, 300))
	}
	return nil
}

// coverage summarises the coverage ledger per history stream.
func (r *statusReport) coverage(ctx context.Context, w io.Writer) error {
	rows, err := r.db.QueryContext(ctx, `SELECT stream, min(first_day), max(last_day), count(*),
		sum(settled_days), sum(provisional_days), sum(missing_days), count(*) FILTER (WHERE missing_days > 0)
		FROM coverage GROUP BY stream ORDER BY stream DESC`)
	if err != nil {
		return fmt.Errorf("read coverage: %w", err)
	}
	defer rows.Close()
	var body [][]string
	var from, to string
	for rows.Next() {
		var stream string
		var first, last time.Time
		var devices, settled, provisional, missing, behind int64
		if err := rows.Scan(&stream, &first, &last, &devices, &settled, &provisional, &missing, &behind); err != nil {
			return fmt.Errorf("read coverage: %w", err)
		}
		from, to = first.Format(time.DateOnly), last.Format(time.DateOnly)
		body = append(body, []string{stream, strconv.FormatInt(devices, 10), strconv.FormatInt(settled, 10),
			strconv.FormatInt(provisional, 10), strconv.FormatInt(missing, 10), strconv.FormatInt(behind, 10)})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read coverage: %w", err)
	}
	if len(body) == 0 {
		fmt.Fprintln(w, "Coverage: no devices yet")
		return nil
	}
	fmt.Fprintf(w, "Coverage, device-days from %s to %s (missing ones: thingsync backfill --gaps)\n", from, to)
	writeColumns(w, []string{"stream", "devices", "settled", "provisional", "missing", "devices behind"}, body, []bool{false, true, true, true, true, true})
	return nil
}

// pending prints the aggregate requests still waiting for their callback.
func (r *statusReport) pending(ctx context.Context, w io.Writer) error {
	var total int
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM aggregate_requests WHERE status IN ('pending', 'completed')`).Scan(&total); err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	if total == 0 {
		fmt.Fprintln(w, "Pending aggregate requests: none")
		return nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT request_id, requested_at, coalesce(device_count, 0)
		FROM aggregate_requests WHERE status IN ('pending', 'completed') ORDER BY requested_at NULLS LAST, request_id LIMIT ?`, statusListed)
	if err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	defer rows.Close()
	var body [][]string
	for rows.Next() {
		var id string
		var requested sql.NullTime
		var devices int
		if err := rows.Scan(&id, &requested, &devices); err != nil {
			return fmt.Errorf("read aggregate requests: %w", err)
		}
		age := "-"
		if requested.Valid {
			age = durationText(r.now.Sub(requested.Time))
		}
		body = append(body, []string{id, nullTimeText(requested), age, strconv.Itoa(devices)})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read aggregate requests: %w", err)
	}
	fmt.Fprintf(w, "Pending aggregate requests (%d)\n", total)
	writeColumns(w, []string{"request", "requested", "age", "devices"}, body, []bool{false, false, true, true})
	if more := total - len(body); more > 0 {
		fmt.Fprintf(w, "and %d more\n", more)
	}
	return nil
}

// rejected prints how many records could not be loaded, per stream.
func (r *statusReport) rejected(ctx context.Context, w io.Writer) error {
	rows, err := r.db.QueryContext(ctx, `SELECT stream, count(*) FROM rejected_records GROUP BY stream ORDER BY stream`)
	if err != nil {
		return fmt.Errorf("read rejected records: %w", err)
	}
	defer rows.Close()
	total := 0
	var parts []string
	for rows.Next() {
		var stream sql.NullString
		var n int
		if err := rows.Scan(&stream, &n); err != nil {
			return fmt.Errorf("read rejected records: %w", err)
		}
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", cmp.Or(stream.String, "?"), n))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rejected records: %w", err)
	}
	if total == 0 {
		fmt.Fprintln(w, "Rejected records: 0")
		return nil
	}
	fmt.Fprintf(w, "Rejected records: %d (%s; see the rejected_records table)\n", total, strings.Join(parts, ", "))
	return nil
}

// clip makes stored text fit one line of the report, secrets removed.
func (r *statusReport) clip(s string, n int) string {
	s = strings.Join(strings.Fields(r.redact.Replace(s)), " ")
	if len([]rune(s)) > n {
		s = string([]rune(s)[:n-1]) + "…"
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
