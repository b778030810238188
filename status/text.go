package status

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/query"
)

// Write prints doc as format says: "json" as one indented JSON document,
// else as WriteText does.
func Write(w io.Writer, doc *Document, format string) error {
	if format != "json" {
		return WriteText(w, doc)
	}
	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return out.Flush()
}

// WriteText prints doc for a person: a header saying where the state was
// read, the run in progress, then the streams with their failing devices,
// the coverage, the last runs, the pending aggregate requests and the
// rejected records.
func WriteText(w io.Writer, doc *Document) error {
	out := bufio.NewWriter(w)
	at := doc.At.Format(time.RFC3339)
	switch doc.Source {
	case SourceSnapshot:
		fmt.Fprintf(out, "Warehouse %s (snapshot of %s: the warehouse is in use by a running sync), at %s\n",
			doc.Snapshot, doc.SnapshotTime.Format(time.RFC3339), at)
	case SourceNone:
		fmt.Fprintf(out, "Warehouse %s, at %s: in use by another process; its committed state shows once it lets go\n"+
			"(or at any time from a snapshot: set THINGSYNC_SNAPSHOT)\n", doc.Warehouse, at)
	default:
		fmt.Fprintf(out, "Warehouse %s, at %s\n", doc.Warehouse, at)
	}
	if p := doc.Progress; p != nil {
		fmt.Fprintln(out)
		writeProgress(out, p, doc.At)
	} else if doc.InUse {
		fmt.Fprintln(out, "\nNo run in progress reported (the file is held by a process that is not a sync: a daemon's callback, an sql session, check)")
	}
	if doc.Source != SourceNone {
		for _, section := range []func(io.Writer, *Document){writeStreams, writeCoverage, writeRuns, writePending, writeRejected} {
			fmt.Fprintln(out)
			section(out, doc)
		}
	}
	// A bufio.Writer keeps its first error: Flush reports it.
	return out.Flush()
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
	rate := ""
	if p.RateLimit > 0 {
		rate = fmt.Sprintf(", at most %.1f requests/s", p.RateLimit)
	}
	fmt.Fprintf(w, "  devices %s, %d done, %d failed; %d requests, %d records, %.1f devices/s%s\n",
		listed, p.DevicesDone, p.DevicesFailed, p.Requests, p.Records, p.DevicesPerSecond, rate)
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// ageText is how long before at t lies, in days to one decimal.
func ageText(at time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	return strconv.FormatFloat(at.Sub(*t).Hours()/24, 'f', 1, 64) + " d"
}

func writeStreams(w io.Writer, doc *Document) {
	if len(doc.Streams) == 0 {
		fmt.Fprintln(w, "Streams: no checkpoints yet (run thingsync sync)")
		return
	}
	var body [][]string
	for _, s := range doc.Streams {
		behind := "-"
		if s.Behind != nil {
			behind = strconv.Itoa(*s.Behind)
		}
		body = append(body, []string{s.Name, strconv.Itoa(s.Devices), strconv.Itoa(s.Retired),
			timeText(s.Oldest), ageText(doc.At, s.Oldest), ageText(doc.At, s.Median), timeText(s.Newest), behind, strconv.Itoa(s.Failing)})
	}
	fmt.Fprintln(w, "Streams (age: how long ago settled_until lies; behind: not settled for more than twice the stream's lookback)")
	query.WriteColumns(w, []string{"stream", "devices", "retired", "oldest settled", "oldest age", "median age", "newest settled", "behind", "failing"},
		body, []bool{false, true, true, false, true, true, false, true, true})
	if nv := doc.NotVisited; nv != nil {
		fmt.Fprintf(w, "Devices not reached by the last %d runs: %d\n", nv.Runs, nv.Devices)
	}
	if doc.FailingTotal == 0 {
		return
	}
	fmt.Fprintf(w, "\nFailing devices (%d)\n", doc.FailingTotal)
	body = nil
	for _, f := range doc.FailingDevices {
		body = append(body, []string{f.Stream, f.Kind + ":" + f.ID, strconv.Itoa(f.Failures), timeText(f.UpdatedAt), f.LastError})
	}
	query.WriteColumns(w, []string{"stream", "device", "failures", "updated", "last error"}, body, []bool{false, false, true, false, false})
	if more := doc.FailingTotal - len(body); more > 0 {
		fmt.Fprintf(w, "and %d more\n", more)
	}
}

func writeCoverage(w io.Writer, doc *Document) {
	c := doc.Coverage
	if c == nil {
		fmt.Fprintln(w, "Coverage: no devices yet")
		return
	}
	var body [][]string
	for _, s := range c.Streams {
		body = append(body, []string{s.Stream, strconv.FormatInt(s.Devices, 10), strconv.FormatInt(s.Settled, 10),
			strconv.FormatInt(s.Provisional, 10), strconv.FormatInt(s.Pending, 10), strconv.FormatInt(s.Missing, 10), strconv.FormatInt(s.DevicesBehind, 10)})
	}
	fmt.Fprintf(w, "Coverage, device-days from %s to %s (pending: idle devices, read at their next recheck; missing ones: thingsync backfill --gaps)\n", c.From, c.To)
	query.WriteColumns(w, []string{"stream", "devices", "settled", "provisional", "pending", "missing", "devices behind"}, body, []bool{false, true, true, true, true, true, true})
}

func writeRuns(w io.Writer, doc *Document) {
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
		body = append(body, []string{run.Kind, timeText(run.StartedAt), duration, run.Status,
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

func writePending(w io.Writer, doc *Document) {
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

func writeRejected(w io.Writer, doc *Document) {
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
