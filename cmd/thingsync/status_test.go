package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return "'" + now.Add(d).Format(time.RFC3339Nano) + "'" }
	const secret = "hunter2-client-secret"
	db := newWarehouse(t, "w.duckdb",
		// usage: one current device, one behind and failing, one retired long ago.
		`INSERT INTO sync_checkpoints (stream, device_kind, device_id, settled_until, fetched_until, updated_at, last_error, failures, retired) VALUES
			('usage', 'iccid', '89148000000000000001', `+ts(-72*time.Hour)+`, `+ts(-time.Hour)+`, `+ts(-time.Hour)+`, NULL, 0, false),
			('usage', 'imei', '350000000000002', `+ts(-10*24*time.Hour)+`, `+ts(-10*24*time.Hour)+`, `+ts(-time.Hour)+`,
				'usage page for imei:350000000000002: HTTP 500: Internal Server Error (client_secret=`+secret+`)', 7, false),
			('usage', 'esn', '12345678', `+ts(-200*24*time.Hour)+`, `+ts(-200*24*time.Hour)+`, `+ts(-200*24*time.Hour)+`, NULL, 0, true)`,
		// connections: twelve failing devices, so the list is cut at ten.
		`INSERT INTO sync_checkpoints (stream, device_kind, device_id, settled_until, updated_at, last_error, failures, retired)
			SELECT 'connections', 'iccid', 'c' || lpad(i::VARCHAR, 3, '0'), `+ts(-12*time.Hour)+`, `+ts(-time.Hour)+`,
				'connection history: page did not advance', 1, false
			FROM range(12) t(i)`,
		`INSERT INTO sync_runs (run_id, kind, streams, started_at, finished_at, status, devices, devices_failed, requests, retries,
			usage_inserted, usage_updated, events_inserted, events_updated, rated_upserted, aggregate_upserted, rejected, error) VALUES
			('r1', 'backfill', 'usage', `+ts(-30*time.Hour)+`, `+ts(-30*time.Hour+5*time.Second)+`, 'ok', 3, 0, 12, 0, 300, 0, 0, 0, 0, 0, 0, NULL),
			('r2', 'sync', 'usage,connections', `+ts(-2*time.Hour)+`, `+ts(-2*time.Hour+90*time.Second)+`, 'partial', 15, 13, 4321, 17,
				1000, 20, 400, 0, 0, 0, 1, '13 devices failed')`,
		`INSERT INTO aggregate_requests (request_id, status, requested_at, device_count) VALUES
			('req-pending', 'pending', `+ts(-150*time.Minute)+`, 3),
			('req-done', 'received', `+ts(-48*time.Hour)+`, 5)`,
		`INSERT INTO rejected_records (stream, device_kind, device_id, record_hash, reason, raw, run_id, first_seen_at, last_seen_at, times_seen) VALUES
			('usage', 'iccid', '89148000000000000001', 'abc', 'bad timestamp', '{}', 'r2', `+ts(-2*time.Hour)+`, `+ts(-2*time.Hour)+`, 1)`,
	)
	env := map[string]string{"THINGSYNC_DB": db, "THINGSPACE_CLIENT_SECRET": secret}
	code, out, errOut := runCLI(t, now, "", env, "status")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("status output:\n%s", out)

	// Each expectation is a line of the report, as a regular expression
	// over whitespace-separated fields.
	lines := []string{
		`usage 3 1 2026-05-31T12:00:00Z 10.0 d 10.0 d 2026-06-07T12:00:00Z 1 1`,       // behind: settled before now − 2×3d
		`connections 12 0 2026-06-10T00:00:00Z 0.5 d 0.5 d 2026-06-10T00:00:00Z 0 12`, // 12h old < 2×1d
		`Failing devices \(13\)`,
		`usage imei:350000000000002 7 2026-06-10T11:00:00Z usage page for imei:350000000000002: HTTP 500: Internal Server Error \(client_secret=\[redacted\]\)`,
		`connections iccid:c000 1 2026-06-10T11:00:00Z connection history: page did not advance`,
		`and 3 more`,
		`sync 2026-06-10T10:00:00Z 1m30s partial 15 13 4321 1 usage 1000/20, events 400/0`,
		`backfill 2026-06-09T06:00:00Z 5s ok 3 0 12 0 usage 300/0`,
		`last run's error: 13 devices failed`,
		`Pending aggregate requests \(1\)`,
		`req-pending 2026-06-10T09:30:00Z 2h30m 3`,
		`Rejected records: 1 \(usage 1; see the rejected_records table\)`,
	}
	got := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		got[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range lines {
		re := regexp.MustCompile("^" + want + "$")
		found := false
		for l := range got {
			found = found || re.MatchString(l)
		}
		if !found {
			t.Errorf("status lacks a line %q", want)
		}
	}
	if strings.Contains(out+errOut, secret) {
		t.Errorf("status printed the client secret")
	}
	if strings.Contains(out, "req-done") {
		t.Errorf("status lists a request that is no longer pending")
	}
	// The newest run comes first.
	if i, j := strings.Index(out, "partial"), strings.Index(out, "backfill"); i < 0 || j < i {
		t.Errorf("runs not newest first")
	}

	// --format json: the same, under the documented field names.
	code, out, errOut = runCLI(t, now, "", env, "status", "--format", "json")
	if code != 0 {
		t.Fatalf("--format json: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--format json: %v\n%s", err, out)
	}
	get := func(path ...any) any {
		var v any = doc
		for _, k := range path {
			switch k := k.(type) {
			case string:
				m, _ := v.(map[string]any)
				v = m[k]
			case int:
				a, _ := v.([]any)
				if k >= len(a) {
					return nil
				}
				v = a[k]
			}
		}
		return v
	}
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"source"}, "warehouse"},
		{[]any{"in_use"}, false},
		{[]any{"progress"}, nil},
		{[]any{"streams", 0, "stream"}, "usage"},
		{[]any{"streams", 0, "devices"}, 3.0},
		{[]any{"streams", 0, "behind"}, 1.0},
		{[]any{"streams", 0, "oldest_settled"}, "2026-05-31T12:00:00Z"},
		{[]any{"failing_devices_total"}, 13.0},
		{[]any{"failing_devices", 0, "device_id"}, "350000000000002"},
		{[]any{"runs", 0, "status"}, "partial"},
		{[]any{"runs", 0, "rows", "usage_inserted"}, 1000.0},
		{[]any{"runs", 1, "kind"}, "backfill"},
		{[]any{"pending_requests_total"}, 1.0},
		{[]any{"pending_requests", 0, "request_id"}, "req-pending"},
		{[]any{"rejected_total"}, 1.0},
		{[]any{"rejected_by_stream", "usage"}, 1.0},
	} {
		if got := get(c.path...); got != c.want {
			t.Errorf("--format json: %v = %v, want %v", c.path, got, c.want)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("status --format json printed the client secret")
	}
}

func TestStatusEmptyAndMissing(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	db := newWarehouse(t, "w.duckdb")
	code, out, errOut := runCLI(t, now, "", map[string]string{"THINGSYNC_DB": db}, "status")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, s := range []string{"no checkpoints yet", "Runs: none yet", "Pending aggregate requests: none", "Rejected records: 0"} {
		if !strings.Contains(out, s) {
			t.Errorf("status of an empty warehouse lacks %q:\n%s", s, out)
		}
	}

	missing := filepath.Join(t.TempDir(), "nowhere.duckdb")
	code, out, errOut = runCLI(t, now, "", map[string]string{"THINGSYNC_DB": missing}, "status")
	if code != 3 || !strings.Contains(errOut, missing+" does not exist") {
		t.Errorf("missing warehouse: exit %d, stderr %q; want 3 naming the file", code, errOut)
	}

	code, _, errOut = runCLI(t, now, "", map[string]string{"THINGSYNC_DB": db}, "status", "extra")
	if code != 2 || !strings.Contains(errOut, "unexpected arguments") {
		t.Errorf("extra argument: exit %d, stderr %q; want 2", code, errOut)
	}
}
