package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/ingest"
	"github.com/thingsync/thingsync/load"
)

var now = time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := now.Add(d); return &t }

func text(t *testing.T, doc *Document) string {
	t.Helper()
	var out bytes.Buffer
	if err := WriteText(&out, doc); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestWriteText(t *testing.T) {
	behind := 1
	doc := &Document{Warehouse: "/w.duckdb", At: now, Source: SourceWarehouse, Status: load.Status{
		Streams: []load.StreamStatus{
			{Name: "usage", Devices: 3, Retired: 1, Oldest: at(-240 * time.Hour), Median: at(-84 * time.Hour), Newest: at(-72 * time.Hour), Behind: &behind, Failing: 2},
			{Name: "rated", Devices: 12},
		},
		FailingTotal: 3,
		FailingDevices: []load.FailingDevice{
			{Stream: "usage", Kind: "imei", ID: "35", Failures: 7, UpdatedAt: at(-time.Hour), LastError: "HTTP 500"},
			{Stream: "usage", Kind: "iccid", ID: "89", Failures: 1, LastError: "page did not advance"},
		},
		Coverage: &load.CoverageSummary{From: "2026-06-01", To: "2026-06-10", Streams: []load.CoverageStream{
			{Stream: "usage", Devices: 3, Settled: 20, Provisional: 6, Pending: 2, Missing: 4, DevicesBehind: 1}}},
		Runs: []load.RecentRun{
			{Kind: "sync", StartedAt: at(-2 * time.Hour), FinishedAt: at(-2*time.Hour + 90*time.Second), Status: "partial", Devices: 15, DevicesFailed: 13,
				Requests: 4321, Rejected: 1, Rows: map[string]int64{"usage_inserted": 1000, "usage_updated": 20, "events_inserted": 400, "rated_upserted": 5},
				Error: "13 devices failed"},
			{Kind: "backfill", Status: "abandoned", Rows: map[string]int64{}},
		},
		PendingTotal:  11,
		Pending:       []load.PendingRequest{{RequestID: "req-1", RequestedAt: at(-150 * time.Minute), Devices: 3}, {RequestID: "req-2", Devices: 1}},
		RejectedTotal: 3,
		Rejected:      map[string]int{"usage": 1, "connections": 2},
		NotVisited:    &load.NotVisited{Runs: 3, Devices: 40},
	}}
	want := `Warehouse /w.duckdb, at 2026-06-10T12:00:00Z

Streams (age: how long ago settled_until lies; behind: not settled for more than twice the stream's lookback)
stream  devices  retired  oldest settled        oldest age  median age  newest settled        behind  failing
------  -------  -------  --------------------  ----------  ----------  --------------------  ------  -------
usage         3        1  2026-05-31T12:00:00Z      10.0 d       3.5 d  2026-06-07T12:00:00Z       1        2
rated        12        0  -                              -           -  -                          -        0
Devices not reached by the last 3 runs: 40

Failing devices (3)
stream  device    failures  updated               last error
------  --------  --------  --------------------  --------------------
usage   imei:35          7  2026-06-10T11:00:00Z  HTTP 500
usage   iccid:89         1  -                     page did not advance
and 1 more

Coverage, device-days from 2026-06-01 to 2026-06-10 (pending: idle devices, read at their next recheck; missing ones: thingsync backfill --gaps)
stream  devices  settled  provisional  pending  missing  devices behind
------  -------  -------  -----------  -------  -------  --------------
usage         3       20            6        2        4               1

Last runs (rows: inserted/updated; abandoned: its process ended without recording an outcome)
kind      started               duration  status     devices  failed  requests  rejected  rows
--------  --------------------  --------  ---------  -------  ------  --------  --------  ------------------------------------
sync      2026-06-10T10:00:00Z     1m30s  partial         15      13      4321         1  usage 1000/20, events 400/0, rated 5
backfill  -                            -  abandoned        0       0         0         0  none
last run's error: 13 devices failed

Pending aggregate requests (11)
request  requested               age  devices
-------  --------------------  -----  -------
req-1    2026-06-10T09:30:00Z  2h30m        3
req-2    -                         -        1
and 9 more

Rejected records: 3 (connections 2, usage 1; see the rejected_records table)
`
	if diff := cmp.Diff(want, text(t, doc)); diff != "" {
		t.Errorf("WriteText mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteTextEmpty(t *testing.T) {
	got := text(t, &Document{Warehouse: "/w.duckdb", At: now, Source: SourceWarehouse, Status: load.EmptyStatus()})
	want := `Warehouse /w.duckdb, at 2026-06-10T12:00:00Z

Streams: no checkpoints yet (run thingsync sync)

Coverage: no devices yet

Runs: none yet

Pending aggregate requests: none

Rejected records: 0
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("empty warehouse (-want +got):\n%s", diff)
	}
}

// While a run holds the warehouse: its progress, then the snapshot's state
// or nothing.
func TestWriteTextInUse(t *testing.T) {
	report := ingest.RunProgress{PID: 42, Host: "h1", RunID: "run-1", Kind: "sync", StartedAt: now.Add(-5 * time.Minute), UpdatedAt: now.Add(-2 * time.Second),
		Phase: "fetching", Listing: true, DevicesListed: 200, DevicesDone: 50, DevicesFailed: 1, Requests: 300, Records: 9000, DevicesPerSecond: 0.1666, RateLimit: 37.54}
	tests := []struct {
		name string
		doc  Document
		want []string // lines, in order
		not  string
	}{
		{"a running sync, no snapshot", Document{Source: SourceNone, InUse: true, Progress: &ingest.ProgressView{RunProgress: report, Process: ingest.ProcessRunning}}, []string{
			"Warehouse /w.duckdb, at 2026-06-10T12:00:00Z: in use by another process; its committed state shows once it lets go",
			"(or at any time from a snapshot: set THINGSYNC_SNAPSHOT)",
			"",
			"Run in progress: sync run-1 (pid 42)",
			"  started 2026-06-10T11:55:00Z (5m0s ago), last report 2026-06-10T11:59:58Z (2s ago), fetching",
			"  devices 200 listed so far, 50 done, 1 failed; 300 requests, 9000 records, 0.2 devices/s, at most 37.5 requests/s",
		}, "Streams"},
		{"a killed run", Document{Source: SourceWarehouse, Progress: &ingest.ProgressView{RunProgress: report, Process: ingest.ProcessGone}}, []string{
			"Run left unfinished: sync run-1 (pid 42, which is gone: the run ended without recording an outcome (killed?); the next run marks it abandoned)",
		}, ""},
		{"a run on another host", Document{Source: SourceNone, InUse: true, Progress: &ingest.ProgressView{RunProgress: report, Process: "unknown"}}, []string{
			"Run in progress: sync run-1 (pid 42 on host h1)",
		}, ""},
		{"held by something else, with a snapshot", Document{Source: SourceSnapshot, InUse: true, Snapshot: "/s.duckdb", SnapshotTime: now.Add(-time.Hour)}, []string{
			"Warehouse /s.duckdb (snapshot of 2026-06-10T11:00:00Z: the warehouse is in use by a running sync), at 2026-06-10T12:00:00Z",
			"",
			"No run in progress reported (the file is held by a process that is not a sync: a daemon's callback, an sql session, check)",
			"",
			"Streams: no checkpoints yet (run thingsync sync)",
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			doc.Warehouse, doc.At, doc.Status = "/w.duckdb", now, load.EmptyStatus()
			got := text(t, &doc)
			if !strings.Contains(got, strings.Join(tt.want, "\n")+"\n") {
				t.Errorf("lacks\n%s\nin\n%s", strings.Join(tt.want, "\n"), got)
			}
			if tt.not != "" && strings.Contains(got, tt.not) {
				t.Errorf("shows %q while it has no state to show:\n%s", tt.not, got)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{1234 * time.Millisecond, "1.2s"},
		{4*time.Minute + 31*time.Second + 400*time.Millisecond, "4m31s"},
		{3*time.Hour + 5*time.Minute + 10*time.Second, "3h5m"},
		{52*time.Hour + 20*time.Minute, "2d4h"},
	}
	for _, tt := range tests {
		if got := durationText(tt.in); got != tt.want {
			t.Errorf("durationText(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
