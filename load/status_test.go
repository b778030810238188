package load

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadStatus(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { u := now.Add(d); return &u }
	ts := func(d time.Duration) string { return "'" + now.Add(d).Format(time.RFC3339Nano) + "'" }
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	for _, s := range []string{
		`INSERT INTO devices (device_kind, device_id) VALUES ('iccid', 'a')`,
		// usage: a device loaded 06-01..06-07 and settled to 06-05, one
		// behind (failing, its error quoting a secret over several lines),
		// one retired long ago.
		`INSERT INTO sync_checkpoints (stream, device_kind, device_id, covered_from, settled_until, fetched_until, updated_at, last_error, failures, retired) VALUES
			('usage', 'iccid', 'a', '2026-06-01 00:00:00+00', '2026-06-05 00:00:00+00', '2026-06-08 00:00:00+00', ` + ts(-time.Hour) + `, NULL, 0, false),
			('usage', 'imei', 'b', NULL, ` + ts(-10*24*time.Hour) + `, NULL, ` + ts(-2*time.Hour) + `, 'HTTP 500
				(password=s3cret-pw)   again', 2, false),
			('usage', 'esn', 'c', NULL, ` + ts(-200*24*time.Hour) + `, NULL, NULL, NULL, 0, true)`,
		// An idle device: its old checkpoint is not staleness.
		`INSERT INTO sync_checkpoints (stream, device_kind, device_id, settled_until, fetched_until, idle_since, failures, retired) VALUES
			('usage', 'iccid', 'idle', ` + ts(-300*24*time.Hour) + `, ` + ts(-299*24*time.Hour) + `, ` + ts(-24*time.Hour) + `, 0, false)`,
		// rated, a stream without a lookback: eleven failing devices, ten listed.
		`INSERT INTO sync_checkpoints (stream, device_kind, device_id, updated_at, last_error, failures)
			SELECT 'rated', 'iccid', 'r' || lpad(i::VARCHAR, 2, '0'), ` + ts(-time.Hour) + `::TIMESTAMPTZ - i * INTERVAL 1 MINUTE, 'x', 1 FROM range(11) t(i)`,
		`INSERT INTO sync_runs (run_id, kind, started_at, finished_at, wanted_from, status, devices, requests, usage_inserted, error) VALUES
			('r1', 'sync', '2026-06-10 00:00:00+00', '2026-06-10 00:01:00+00', '2026-06-01 00:00:00+00', 'ok', 3, 9, 7, NULL),
			('r2', 'sync', ` + ts(-time.Hour) + `, NULL, NULL, 'running', NULL, NULL, NULL, 'token ` + strings.Repeat("x", 400) + `')`,
		`INSERT INTO aggregate_requests (request_id, status, requested_at, device_count) VALUES
			('q1', 'pending', ` + ts(-3*time.Hour) + `, 2), ('q2', 'completed', ` + ts(-time.Hour) + `, 1), ('q3', 'received', ` + ts(-time.Hour) + `, 4)`,
		`INSERT INTO rejected_records (stream, device_kind, device_id, record_hash, reason, raw, run_id, first_seen_at, last_seen_at, times_seen) VALUES
			('usage', 'iccid', 'a', 'h1', 'bad', '{}', 'r1', ` + ts(0) + `, ` + ts(0) + `, 1),
			('usage', 'iccid', 'a', 'h2', 'bad', '{}', 'r1', ` + ts(0) + `, ` + ts(0) + `, 1),
			('connections', 'iccid', 'a', 'h3', 'bad', '{}', 'r1', ` + ts(0) + `, ` + ts(0) + `, 1)`,
	} {
		if _, err := w.DB().ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	opts := StatusOptions{Now: now, Lookback: map[string]time.Duration{"usage": 3 * 24 * time.Hour},
		Redact: strings.NewReplacer("s3cret-pw", "[redacted]").Replace}
	got, err := ReadStatus(ctx, w.DB(), opts)
	if err != nil {
		t.Fatal(err)
	}
	behind := 1
	failing := make([]FailingDevice, 0, StatusListed)
	failing = append(failing, FailingDevice{Stream: "usage", Kind: "imei", ID: "b", Failures: 2, UpdatedAt: at(-2 * time.Hour),
		LastError: "HTTP 500 (password=[redacted]) again"})
	for i := range StatusListed - 1 {
		failing = append(failing, FailingDevice{Stream: "rated", Kind: "iccid", ID: "r0" + string(rune('0'+i)), Failures: 1,
			UpdatedAt: at(-time.Hour - time.Duration(i)*time.Minute), LastError: "x"})
	}
	want := Status{
		Streams: []StreamStatus{
			{Name: "usage", Devices: 4, Retired: 1, Oldest: at(-10 * 24 * time.Hour), Median: at(-10 * 24 * time.Hour), Newest: at(-(24*5 + 12) * time.Hour), Behind: &behind, Failing: 1},
			{Name: "rated", Devices: 11, Failing: 11},
		},
		FailingTotal:   12,
		FailingDevices: failing,
		Coverage: &CoverageSummary{From: "2026-06-01", To: "2026-06-10", Streams: []CoverageStream{
			{Stream: "usage", Devices: 1, Settled: 4, Provisional: 3, Missing: 3, DevicesBehind: 1},
			{Stream: "connections", Devices: 1, Missing: 10, DevicesBehind: 1},
		}},
		Runs: []RecentRun{
			{ID: "r2", Kind: "sync", StartedAt: at(-time.Hour), Status: "running", Rows: runRows(0), Error: "token " + strings.Repeat("x", 293) + "…"},
			{ID: "r1", Kind: "sync", StartedAt: at(-12 * time.Hour), FinishedAt: at(-12*time.Hour + time.Minute), Status: "ok", Devices: 3, Requests: 9, Rows: runRows(7)},
		},
		PendingTotal:  2,
		Pending:       []PendingRequest{{RequestID: "q1", RequestedAt: at(-3 * time.Hour), Devices: 2}, {RequestID: "q2", RequestedAt: at(-time.Hour), Devices: 1}},
		RejectedTotal: 3,
		Rejected:      map[string]int{"usage": 2, "connections": 1},
		// One run over the fleet so far (the running one does not count);
		// it reached no device.
		NotVisited: &NotVisited{Runs: 1, Devices: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadStatus mismatch (-want +got):\n%s", diff)
	}

	// Read by a process that could open the file, the run still marked
	// running was abandoned.
	opts.NoWriter = true
	got, err = ReadStatus(ctx, w.DB(), opts)
	if err != nil || got.Runs[0].Status != "abandoned" || got.Runs[1].Status != "ok" {
		t.Errorf("with NoWriter: runs %+v, %v; want the running one abandoned", got.Runs, err)
	}
}

func runRows(usageInserted int64) map[string]int64 {
	return map[string]int64{"usage_inserted": usageInserted, "usage_updated": 0, "events_inserted": 0, "events_updated": 0,
		"rated_upserted": 0, "aggregate_upserted": 0}
}

func TestReadStatusEmpty(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "w.duckdb"))
	got, err := ReadStatus(ctx, w.DB(), StatusOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	// Lists are empty, not nil: JSON shows [] and {}.
	if diff := cmp.Diff(EmptyStatus(), got); diff != "" || got.Streams == nil || got.Runs == nil || got.Rejected == nil {
		t.Errorf("empty warehouse (-want +got):\n%s", diff)
	}
}

func TestCheckExists(t *testing.T) {
	dir := t.TempDir()
	w := open(t, filepath.Join(dir, "w.duckdb"))
	w.Close()
	for path, want := range map[string]string{
		filepath.Join(dir, "w.duckdb"):  "",
		filepath.Join(dir, "no.duckdb"): "does not exist (set THINGSYNC_DB, or run thingsync sync first)",
		dir:                             "is a directory",
	} {
		err := CheckExists(path)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckExists(%s) = %v, want %q", path, err, want)
		}
	}
}
